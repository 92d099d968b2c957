/** Fleet sweeps (licensing/sweeps): placeholder until the screen is built. */
import { Page } from "../components/Page.js";

/** The sweeps screen. */
export function SweepsScreen() {
  return (
    <Page title="Sweeps" permission="fleet.sweep">
      <p className="muted">This screen is being built.</p>
    </Page>
  );
}
