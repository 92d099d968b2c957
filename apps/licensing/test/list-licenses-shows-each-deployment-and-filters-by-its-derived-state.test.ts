/**
 * ListLicenses shows, beside each page of licences, each licence's deployment once with its state
 * derived now, and `deployment_states` keeps only licences whose deployment derives one of those
 * states — in SQL, so keyset pages stay whole and tokens stay bound to their filter, and time
 * alone moves a licence from the ACTIVE filter to the GRACE one. Unknown states are refused
 * naming the field.
 */
import { Code } from "@connectrpc/connect";
import { ErrorInfoSchema } from "@lcp/proto/google/rpc/error_details_pb";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ListLicensesRequestSchema } from "@lcp/proto/licensing/v1/licensing_service_pb";
import { DeploymentKind, DeploymentState, LicenseStatus, type License } from "@lcp/proto/licensing/v1/types_pb";
import { testDatabases } from "@lcp/testing/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { activateBox, expectRefusal, newBox, startHarness, type LicensingHarness } from "./support.js";

describe.each(testDatabases())("ListLicenses with deployments ($name)", (tdb) => {
  let h: LicensingHarness;
  beforeAll(async () => {
    h = await startHarness(tdb);
  });
  afterAll(async () => {
    await h?.close();
  });

  /** Every page of a listing, followed by its tokens; checks each page's deployments against its licences. */
  async function walk(req: MessageInitShape<typeof ListLicensesRequestSchema>) {
    const reader = h.admin("auditor");
    const licenses: License[] = [];
    const states = new Map<string, DeploymentState>();
    const sizes: number[] = [];
    let pageToken = "";
    do {
      const page = await reader.listLicenses({ ...req, pageToken });
      sizes.push(page.licenses.length);
      // Each licence's deployment, once, and nothing else.
      const ids = page.deployments.map((d) => d.id);
      expect(new Set(ids).size).toBe(ids.length);
      expect(new Set(ids)).toEqual(new Set(page.licenses.map((l) => l.deploymentId)));
      for (const d of page.deployments) states.set(d.id, d.state);
      licenses.push(...page.licenses);
      pageToken = page.nextPageToken;
    } while (pageToken);
    // The filter ran in SQL: every page but the last is full (a filter applied to fetched pages
    // would leave holes).
    expect(sizes.slice(0, -1).every((n) => n === req.pageSize), `page sizes ${sizes.join(",")}`).toBe(true);
    return { licenses, states, pages: sizes.length };
  }

  it("pairs every page with its deployments and filters by their derived state across pages", async () => {
    const customer = `console-${Date.now()}`;
    const onboarding = h.admin("onboarding");
    const made: { deployment: string; licenses: string[]; activated: boolean }[] = [];
    for (let i = 0; i < 7; i++) {
      const res = await onboarding.provisionDeployment({ name: `d${i}`, customer, kind: DeploymentKind.ON_PREM });
      const licenses = [res.license!.id];
      // The first deployment gets a second licence at once: its two licences share one page.
      if (i === 0) licenses.push((await onboarding.issueLicense({ deploymentId: res.deployment!.id })).license!.id);
      const activated = i % 2 === 0;
      if (activated) {
        const current = (await onboarding.getLicense({ licenseId: licenses[licenses.length - 1]! })).license!;
        await activateBox(h, current, await newBox(h, res.deployment!.id));
      }
      made.push({ deployment: res.deployment!.id, licenses, activated });
    }
    const licensesOf = (activated: boolean) => made.filter((m) => m.activated === activated).flatMap((m) => m.licenses).sort();

    const all = await walk({ customer, pageSize: 2 });
    expect(all.licenses.map((l) => l.id).sort()).toEqual(made.flatMap((m) => m.licenses).sort());
    expect(all.pages).toBe(4);
    const first = await h.admin("auditor").listLicenses({ customer, pageSize: 2 });
    expect(first.licenses.map((l) => l.deploymentId)).toEqual([made[0]!.deployment, made[0]!.deployment]);
    expect(first.deployments).toHaveLength(1);
    expect(first.deployments[0]).toMatchObject({ id: made[0]!.deployment, customer, name: "d0", state: DeploymentState.ACTIVE });
    for (const m of made) expect(all.states.get(m.deployment), m.deployment).toBe(m.activated ? DeploymentState.ACTIVE : DeploymentState.PENDING);

    const active = await walk({ customer, pageSize: 2, deploymentStates: [DeploymentState.ACTIVE] });
    expect(active.licenses.map((l) => l.id).sort()).toEqual(licensesOf(true));
    expect([...active.states.values()].every((s) => s === DeploymentState.ACTIVE)).toBe(true);
    const pending = await walk({ customer, pageSize: 2, deploymentStates: [DeploymentState.PENDING] });
    expect(pending.licenses.map((l) => l.id).sort()).toEqual(licensesOf(false));
    const either = await walk({ customer, pageSize: 3, deploymentStates: [DeploymentState.PENDING, DeploymentState.ACTIVE, DeploymentState.PENDING] });
    expect(either.licenses).toHaveLength(all.licenses.length);

    h.clock.advance(10 * 60_000); // past the heartbeat timeout: the activated ones are in GRACE, with no write
    try {
      expect((await walk({ customer, pageSize: 2, deploymentStates: [DeploymentState.ACTIVE] })).licenses).toEqual([]);
      const grace = await walk({ customer, pageSize: 2, deploymentStates: [DeploymentState.GRACE] });
      expect(grace.licenses.map((l) => l.id).sort()).toEqual(licensesOf(true));
      expect([...grace.states.values()].every((s) => s === DeploymentState.GRACE)).toBe(true);
      // With a licence status: the superseded first licence of d0 drops out, its deployment stays GRACE.
      const current = await walk({ customer, pageSize: 2, deploymentStates: [DeploymentState.GRACE], statuses: [LicenseStatus.ACTIVATED] });
      expect(current.licenses.map((l) => l.id).sort()).toEqual(licensesOf(true).filter((id) => id !== made[0]!.licenses[0]));
    } finally {
      h.clock.advance(-10 * 60_000);
    }

    // A token is bound to its state filter; a filter without one keeps its tokens as before.
    const page = await h.admin("auditor").listLicenses({ customer, pageSize: 1, deploymentStates: [DeploymentState.PENDING] });
    await expectRefusal(
      h.admin("auditor").listLicenses({ customer, pageSize: 1, deploymentStates: [DeploymentState.ACTIVE], pageToken: page.nextPageToken }),
      Code.InvalidArgument,
      "PAGE_TOKEN_INVALID",
    );
    await expectRefusal(h.admin("auditor").listLicenses({ customer, pageSize: 1, pageToken: page.nextPageToken }), Code.InvalidArgument, "PAGE_TOKEN_INVALID");
    const plain = await h.admin("auditor").listLicenses({ customer, pageSize: 1 });
    expect((await h.admin("auditor").listLicenses({ customer, pageSize: 1, pageToken: plain.nextPageToken })).licenses).toHaveLength(1);
  });

  it("refuses unknown deployment states naming the field, and callers without license.read", async () => {
    for (const bad of [99, -1, DeploymentState.UNSPECIFIED]) {
      const err = await expectRefusal(h.admin("auditor").listLicenses({ deploymentStates: [DeploymentState.ACTIVE, bad as DeploymentState] }), Code.InvalidArgument, "INVALID_ARGUMENT");
      expect(err.findDetails(ErrorInfoSchema)[0]?.metadata["field"]).toBe("deployment_states");
      expect(err.rawMessage).toMatch(/deployment_states holds an unknown deployment state/);
    }
    await expectRefusal(h.admin("no-such-role").listLicenses({}), Code.PermissionDenied);
  });
});
