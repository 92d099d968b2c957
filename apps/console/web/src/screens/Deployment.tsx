/** Deployment: placeholder until the screen is built. */
import { Page } from "../components/Page.js";

/** The Deployment screen. */
export function DeploymentScreen({ id }: { id: string }) {
  return (
    <Page title="Deployment" permission="license.read">
      <p className="muted">Deployment <code>{id}</code>: this screen is being built.</p>
    </Page>
  );
}
