/** Heartbeats and directives (licensing/heartbeats): placeholder until the screen is built. */
import { Page } from "../components/Page.js";

/** The heartbeats screen. */
export function HeartbeatsScreen() {
  return (
    <Page title="Heartbeats" permission="heartbeat.read">
      <p className="muted">This screen is being built.</p>
    </Page>
  );
}
