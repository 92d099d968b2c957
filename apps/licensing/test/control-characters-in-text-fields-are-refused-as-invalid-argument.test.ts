/**
 * A control character (NUL above all), a C1 control, a line separator or a bidirectional
 * override in any text field of a write RPC or a list filter is refused as InvalidArgument
 * naming the field, over real mTLS on both drivers, before anything is written: no row changes
 * and no success is audited. Before this, a NUL answered Internal on SQLite and Unavailable on
 * PostgreSQL (the statement text broke the wire protocol), so clients retried it for ever.
 * Reasons may run over several lines (LF, tab); a carriage return is refused there too.
 */
import { Code, type ConnectError } from "@connectrpc/connect";
import { DeploymentKind, SubscriptionStatus } from "@lcp/proto/licensing/v1/types_pb";
import { DirectiveType } from "@lcp/proto/licensing/v1/types_pb";
import { ErrorInfoSchema } from "@lcp/proto/google/rpc/error_details_pb";
import { testDatabases } from "@lcp/testing/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditEvents, expectRefusal, newBox, provisionOnPrem, snapshot, startHarness, type LicensingHarness } from "./support.js";

/** Characters no text field may hold, by what they are. */
const FORBIDDEN: Record<string, string> = {
  NUL: "\u0000",
  BEL: "\u0007",
  ESC: "\u001b[31m",
  DEL: "\u007f",
  "C1 NEL": "\u0085",
  "line separator": "\u2028",
  "right-to-left override": "\u202e",
};
/** Allowed in a reason only; refused in names, customers, entitlements and filters. */
const LINE_BREAKS: Record<string, string> = { LF: "\n", TAB: "\t" };

describe.each(testDatabases())("control characters in text fields ($name)", (tdb) => {
  let h: LicensingHarness;
  let licenseId: string;
  let deploymentId: string;
  beforeAll(async () => {
    h = await startHarness(tdb);
    const { deployment, license } = await provisionOnPrem(h);
    licenseId = license.id;
    deploymentId = deployment.id;
  });
  afterAll(async () => {
    await h?.close();
  });

  /** Expects InvalidArgument naming `field`, the character not echoed, no row changed and no success audited. */
  async function refused(field: string, call: () => Promise<unknown>) {
    const before = await snapshot(h);
    const eventsBefore = (await auditEvents(h)).length;
    const err: ConnectError = await expectRefusal(call(), Code.InvalidArgument, "INVALID_ARGUMENT");
    expect(err.findDetails(ErrorInfoSchema)[0]?.metadata["field"]).toBe(field);
    expect(err.rawMessage).toMatch(new RegExp(`^${field} must be plain text`));
    const after = await snapshot(h);
    for (const table of ["deployment", "license", "settings", "certificate", "directive"]) expect(after[table], table).toBe(before[table]);
    for (const e of (await auditEvents(h)).slice(eventsBefore)) expect(e.outcome, e.action).not.toBe("OUTCOME_SUCCESS");
  }

  const admin = () => h.admin("super_admin");
  const provision = (fields: { name?: string; customer?: string; entitlements?: string[] }) =>
    admin().provisionDeployment({ name: "site", customer: "St. Example Hospital", kind: DeploymentKind.ON_PREM, entitlements: ["imaging"], ...fields });

  for (const [what, bad] of Object.entries({ ...FORBIDDEN, ...LINE_BREAKS })) {
    it(`${what} in names, customers, entitlements and filters`, async () => {
      await refused("name", () => provision({ name: `site${bad}name` }));
      await refused("customer", () => provision({ customer: `St. Example${bad}Hospital` }));
      await refused("entitlements", () => provision({ entitlements: ["imaging", `max-users${bad}:50`] }));
      await refused("entitlements", () => admin().issueLicense({ deploymentId, entitlements: [`imaging${bad}`] }));
      await refused("customer", () => admin().listDeployments({ customer: `St. Example${bad}` }));
      await refused("customer", () => admin().listLicenses({ customer: `St. Example${bad}` }));
    });
  }

  for (const [what, bad] of Object.entries({ ...FORBIDDEN, CR: "\r" })) {
    it(`${what} in reasons`, async () => {
      await refused("reason", () => admin().revokeLicense({ licenseId, reason: `fraud${bad}confirmed` }));
      await refused("reason", () => admin().rebindLicense({ licenseId, newFingerprint: "new-box", reason: `swap${bad}` }));
      await refused("reason", () => admin().setSubscriptionStatus({ deploymentId, status: SubscriptionStatus.INVALID, reason: `unpaid${bad}` }));
      await refused("reason", () => admin().sendDirective({ deploymentId, type: DirectiveType.REFRESH_KEYS, reason: `rotate${bad}` }));
    });
  }

  it("an agent version with a control character does not activate", async () => {
    const { deployment, license } = await provisionOnPrem(h);
    const box = await newBox(h, deployment.id);
    for (const bad of Object.values(FORBIDDEN)) {
      await refused("agent_version", () =>
        h.anonymousAppliance.activate({ licenseId: license.id, licenseToken: license.token, fingerprint: box.fingerprint, csrPem: box.csrPem, agentVersion: `1.2${bad}` }),
      );
    }
  });

  it("a reason over several lines is kept as written; ordinary non-ASCII text is accepted everywhere", async () => {
    const reason = "unpaid since March\n\tticket FIN-1234";
    await admin().setSubscriptionStatus({ deploymentId, status: SubscriptionStatus.INVALID, reason });
    const events = await auditEvents(h);
    expect(events.at(-1)!.details).toMatchObject({ reason });
    const res = await provision({ name: "Zürich – 東京 👩‍⚕️", customer: "Hôpital Saint-Éloi" });
    expect(res.deployment!.name).toBe("Zürich – 東京 👩‍⚕️");
    const listed = await admin().listDeployments({ customer: "Hôpital Saint-Éloi" });
    expect(listed.deployments.map((d) => d.id)).toEqual([res.deployment!.id]);
  });
});
