/** Audit: placeholder until the screen is built. */
import { Page } from "../components/Page.js";

/** The Audit screen. */
export function AuditScreen() {
  return (
    <Page title="Audit" permission="audit.read">
      <p className="muted">This screen is being built.</p>
    </Page>
  );
}
