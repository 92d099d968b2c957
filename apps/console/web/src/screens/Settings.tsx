/** Settings: placeholder until the screen is built. */
import { Page } from "../components/Page.js";

/** The Settings screen. */
export function SettingsScreen() {
  return (
    <Page title="Settings" permission="license.read">
      <p className="muted">This screen is being built.</p>
    </Page>
  );
}
