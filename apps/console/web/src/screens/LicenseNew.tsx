/** New license: placeholder until the screen is built. */
import { Page } from "../components/Page.js";

/** The New license screen. */
export function LicenseNewScreen() {
  return (
    <Page title="New license" permission="license.issue">
      <p className="muted">This screen is being built.</p>
    </Page>
  );
}
