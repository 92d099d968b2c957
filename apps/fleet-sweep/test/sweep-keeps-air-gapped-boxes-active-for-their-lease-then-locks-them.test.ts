/**
 * The sweep over the real licensing, on both drivers (docs/design.md §15): an AIR_GAPPED
 * deployment's health is its lease, so the sweep never moves it to GRACE or LOCKED(OFFLINE) while
 * its last lease answered by file is valid (last seen within air_gapped_lease), however long past
 * the heartbeat timeout and the grace window, and locks it OFFLINE once that has run out — beside
 * an ONLINE box that goes GRACE and LOCKED(OFFLINE) on the grace window as ever. Settings are
 * shrunk to seconds and the apps' shared clock advanced instead of sleeping.
 */
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Connectivity } from "@lcp/proto/licensing/v1/types_pb";
import { testDatabases } from "@lcp/testing/db";
import { afterEach, describe, expect, it } from "vitest";
import { dateParam, outboxEvents, ph, provisionAndActivate, startControlPlane, type ControlPlane } from "./real-licensing.js";

const SECOND = 1_000;


describe.each(testDatabases())("the sweep and air-gapped deployments ($name)", (tdb) => {
  let cp: ControlPlane | undefined;
  afterEach(async () => {
    await cp?.close();
    cp = undefined;
  });

  it("never sends an air-gapped box to GRACE or LOCKED(OFFLINE) within its lease, locks it OFFLINE once the lease has run out, and a renewal by file brings it back", async () => {
    cp = await startControlPlane(tdb);
    await cp.admin("super_admin").updateSettings({
      settings: {
        heartbeatInterval: durationFromMs(SECOND),
        heartbeatTimeout: durationFromMs(2 * SECOND),
        graceWindow: durationFromMs(10 * SECOND),
        leaseRenewAfter: durationFromMs(SECOND),
        airGappedLease: durationFromMs(40 * SECOND),
        airGappedRenewAfter: durationFromMs(30 * SECOND),
      },
      updateMask: { paths: ["heartbeat_interval", "heartbeat_timeout", "grace_window", "lease_renew_after", "air_gapped_lease", "air_gapped_renew_after"] },
    });
    const online = await provisionAndActivate(cp);
    const gapped = await provisionAndActivate(cp, undefined, Connectivity.AIR_GAPPED);
    const stored = async (id: string) =>
      (await cp!.sql<{ state: string; lock_reason: string | null }>(`select state, lock_reason from deployment where id = ${ph(cp!, 1)}`, [id]))[0];
    const maxSeq = async () => Number((await cp!.sql<{ n: number | string | null }>("select max(seq) as n from outbox_event"))[0]!.n ?? 0);
    /** Sweeps; returns each deployment's audited transitions (action from>to) of the run. */
    const sweep = async () => {
      const since = await maxSeq();
      await cp!.sweeper().sweep({});
      const events = await outboxEvents(cp!, since);
      const of = (id: string) =>
        events.filter((e) => e.resource?.id === id && e.action !== "fleet.sweep").map((e) => `${e.action} ${String(e.details?.from)}>${String(e.details?.to)}`);
      return { online: of(online.deploymentId), gapped: of(gapped.deploymentId) };
    };

    // Past the heartbeat timeout: the online box goes GRACE, the air-gapped one stays ACTIVE.
    cp.clock.advance(3 * SECOND);
    expect(await sweep()).toEqual({ online: ["deployment.offline ACTIVE>GRACE"], gapped: [] });

    // Past the grace window: the online box locks, the air-gapped one runs on its lease.
    cp.clock.advance(9 * SECOND);
    expect(await sweep()).toEqual({ online: ["deployment.offline GRACE>LOCKED"], gapped: [] });
    expect(await stored(online.deploymentId)).toEqual({ state: "LOCKED", lock_reason: "OFFLINE" });
    expect(await stored(gapped.deploymentId)).toEqual({ state: "ACTIVE", lock_reason: null });

    // Well into its lease (silent 35 s of 40 s): still nothing.
    cp.clock.advance(23 * SECOND);
    expect((await sweep()).gapped).toEqual([]);
    expect(await stored(gapped.deploymentId)).toEqual({ state: "ACTIVE", lock_reason: null });

    // Past the lease: LOCKED(OFFLINE), audited deployment.offline, no LOCK queued (the box locked itself).
    cp.clock.advance(7 * SECOND);
    expect((await sweep()).gapped).toEqual(["deployment.offline ACTIVE>LOCKED"]);
    expect(await stored(gapped.deploymentId)).toEqual({ state: "LOCKED", lock_reason: "OFFLINE" });
    expect((await cp.sql<{ type: string }>(`select type from directive where deployment_id = ${ph(cp, 1)}`, [gapped.deploymentId])).map((d) => d.type)).toEqual([]);

    // A renewal answered by file refreshes last seen (server time): the sweep brings it back to ACTIVE.
    await cp.sql(`update deployment set last_seen_at = ${ph(cp, 1)} where id = ${ph(cp, 2)}`, [dateParam(cp, cp.clock.now()), gapped.deploymentId]);
    expect((await sweep()).gapped).toEqual(["deployment.online LOCKED>ACTIVE"]);
    expect(await stored(gapped.deploymentId)).toEqual({ state: "ACTIVE", lock_reason: null });
    // Replaying changes nothing.
    expect(await sweep()).toEqual({ online: [], gapped: [] });
  });
});
