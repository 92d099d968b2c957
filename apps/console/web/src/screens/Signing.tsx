/** Signing keys (licensing/signing, super_admin only): placeholder until the screen is built. */
import { Page } from "../components/Page.js";

/** The signing keys screen. */
export function SigningScreen() {
  return (
    <Page title="Signing keys" permission="signing.manage">
      <p className="muted">This screen is being built.</p>
    </Page>
  );
}
