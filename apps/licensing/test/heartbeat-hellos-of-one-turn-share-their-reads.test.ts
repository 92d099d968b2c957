/**
 * A reconnect storm brings hundreds of hellos in one event-loop turn; their reads (licence,
 * deployment, pending directives) are batched per turn (heartbeat/hello-reads.ts): one statement
 * per kind for the whole turn, not one per hello. Each hello must still get exactly what its
 * single read returns — the same rows, unknown ids as null, pending directives filtered by the
 * activation time, unacknowledged only, oldest first and capped at 100 — a later turn must read
 * again (nothing is cached across turns), and a failed statement fails every hello waiting on it.
 * Admission's certificate-serial check, made for every stream before its hello, is batched the
 * same way outside a transaction. On both drivers.
 */
import type { Database } from "@lcp/persistence";
import { testDatabases } from "@lcp/testing/db";
import { v7 as uuidv7 } from "uuid";
import { describe, expect, it } from "vitest";
import { loadPendingDirectives, newDirectiveRow } from "../src/heartbeat/directive-store.js";
import { createHelloReads } from "../src/heartbeat/hello-reads.js";
import { CertificateEntity, DeploymentEntity, DirectiveEntity, LicenseEntity } from "../src/storage/entities.js";
import { isCertificateUsable, loadDeployment, loadLicense } from "../src/storage/repository.js";
import { licensingDatabase } from "./storage-db.js";

const MINUTE = 60_000;

describe.each(testDatabases())("hello reads batched per turn ($name)", (tdb) => {
  const store = licensingDatabase(tdb);

  /** The database, and a view of it that counts the entity managers taken (one per statement the reads make). */
  async function setup() {
    const { db: real } = await store.open();
    const counted = { statements: 0, failNext: false };
    const view: Database = {
      ...real,
      em() {
        counted.statements++;
        const em = real.em();
        if (counted.failNext) {
          counted.failNext = false;
          em.find = () => Promise.reject(new Error("connection lost"));
        }
        return em;
      },
    };
    return { real, view, counted };
  }

  const now = new Date("2026-11-01T12:00:00Z");

  async function seedDeployment(real: Database, activatedAt: Date | null) {
    const id = uuidv7();
    const licenseId = uuidv7();
    const em = real.em();
    await em.insert(DeploymentEntity, {
      id, name: `site-${id.slice(-6)}`, customer: "St. Example", kind: "ON_PREM", subscriptionStatus: "VALID", subscriptionReason: null,
      subscriptionChangedAt: null, licenseId, licenseExpiresAt: new Date(now.getTime() + 365 * 24 * 60 * MINUTE), licenseRevokedAt: null,
      activatedAt, fingerprintHash: activatedAt ? "a".repeat(64) : null, lastSeenAt: activatedAt, agentVersion: "test/1",
      state: activatedAt ? "ACTIVE" : "PENDING", lockReason: null, stateChangedAt: now, version: 3, createdAt: now, updatedAt: now,
    });
    await em.insert(LicenseEntity, {
      id: licenseId, deploymentId: id, customer: "St. Example", entitlements: "[]", token: "t", kid: "k", fingerprintHash: null,
      issuedAt: now, expiresAt: new Date(now.getTime() + 365 * 24 * 60 * MINUTE), activatedAt, revokedAt: null, revokeReason: null,
      supersededAt: null, supersededBy: null, leaseSeq: 4, leaseIssuedAt: now,
    });
    return { id, licenseId };
  }

  async function directive(real: Database, deploymentId: string, createdAt: Date, acked = false) {
    const row = { ...newDirectiveRow(deploymentId, "RENEW_LEASE", { reason: "test" }, createdAt), ackedAt: acked ? createdAt : null };
    await real.em().insert(DirectiveEntity, row);
    return row.id;
  }

  it("answers every hello of a turn as its single read would, with one statement per kind", async () => {
    const { real, view, counted } = await setup();
    const activatedAt = new Date(now.getTime() - 10 * MINUTE);
    const a = await seedDeployment(real, activatedAt);
    const b = await seedDeployment(real, activatedAt);
    const c = await seedDeployment(real, null);
    // a: 2 directives from before its activation (meant for the box it replaced), one acked, 105 pending.
    await directive(real, a.id, new Date(activatedAt.getTime() - MINUTE));
    await directive(real, a.id, new Date(activatedAt.getTime() - 1));
    await directive(real, a.id, activatedAt, true);
    for (let i = 0; i < 105; i++) await directive(real, a.id, new Date(activatedAt.getTime() + i));
    await directive(real, b.id, new Date(activatedAt.getTime() + MINUTE));

    const reads = createHelloReads(view);
    const unknown = uuidv7();
    const asked = {
      licenses: [a.licenseId, a.licenseId, b.licenseId, unknown].map((id) => reads.license(id)),
      deployments: [a.id, c.id, unknown, a.id].map((id) => reads.deployment(id)),
      pending: [
        reads.pending(a.id, activatedAt),
        reads.pending(a.id, null),
        reads.pending(b.id, activatedAt),
        reads.pending(c.id, null),
        reads.pending(unknown, null),
        // Since the last pending one: the boundary is inclusive, as in SQL's >=.
        reads.pending(a.id, new Date(activatedAt.getTime() + 104)),
      ],
    };
    const licenses = await Promise.all(asked.licenses);
    const deployments = await Promise.all(asked.deployments);
    const pending = await Promise.all(asked.pending);
    expect(counted.statements).toBe(3);

    const em = real.em();
    expect(licenses).toEqual([await loadLicense(em, a.licenseId), await loadLicense(em, a.licenseId), await loadLicense(em, b.licenseId), null]);
    expect(licenses[0]!.leaseSeq).toBe(4);
    const single = async (id: string) => (await loadDeployment(em, id))?.deployment ?? null;
    expect(deployments).toEqual([await single(a.id), await single(c.id), null, await single(a.id)]);
    const expected = [
      await loadPendingDirectives(em, a.id, activatedAt),
      await loadPendingDirectives(em, a.id, null),
      await loadPendingDirectives(em, b.id, activatedAt),
      await loadPendingDirectives(em, c.id, null),
      await loadPendingDirectives(em, unknown, null),
      await loadPendingDirectives(em, a.id, new Date(activatedAt.getTime() + 104)),
    ];
    expect(pending).toEqual(expected);
    expect(pending.map((rows) => rows.length)).toEqual([100, 100, 1, 0, 0, 1]);
    // Without the activation filter the two rows meant for the replaced box come first.
    expect(pending[1]![0]!.createdAt.getTime()).toBe(activatedAt.getTime() - MINUTE);
    expect(pending[0]!.every((row) => row.ackedAt === null && row.createdAt >= activatedAt)).toBe(true);
  });

  it("reads again in a later turn, and splits a turn of more than 500 keys", async () => {
    const { real, view, counted } = await setup();
    const a = await seedDeployment(real, new Date(now.getTime() - MINUTE));
    const reads = createHelloReads(view);
    expect(await reads.pending(a.id, null)).toEqual([]);
    const id = await directive(real, a.id, now);
    expect((await reads.pending(a.id, null)).map((row) => row.id)).toEqual([id]);
    expect(counted.statements).toBe(2);

    const many = Array.from({ length: 501 }, () => uuidv7());
    const found = await Promise.all([...many.map((k) => reads.license(k)), reads.license(a.licenseId)]);
    expect(found.slice(0, 501).every((row) => row === null)).toBe(true);
    expect(found[501]!.id).toBe(a.licenseId);
    expect(counted.statements).toBe(4);
  });

  it("fails every hello waiting on a failed statement, and the next turn reads normally", async () => {
    const { real, view, counted } = await setup();
    const a = await seedDeployment(real, new Date(now.getTime() - MINUTE));
    const reads = createHelloReads(view);
    counted.failNext = true;
    const outcomes = await Promise.allSettled([reads.license(a.licenseId), reads.license(a.licenseId), reads.license(uuidv7())]);
    expect(outcomes.map((o) => (o.status === "rejected" ? (o.reason as Error).message : "fulfilled"))).toEqual([
      "connection lost",
      "connection lost",
      "connection lost",
    ]);
    expect((await reads.license(a.licenseId))?.id).toBe(a.licenseId);
  });

  it("checks the certificate serials of one turn with one statement, each answer as the single check's", async () => {
    const { real } = await setup();
    const a = await seedDeployment(real, now);
    const b = await seedDeployment(real, now);
    const cert = (serialNumber: string, deploymentId: string, revokedAt: Date | null) => ({
      serialNumber, deploymentId, licenseId: uuidv7(), fingerprintHash: "a".repeat(64), issuedAt: now,
      notAfter: new Date(now.getTime() + 60 * MINUTE), revokedAt, revokeReason: revokedAt ? "rebind" : null,
    });
    await real.em().insert(CertificateEntity, cert("0A", a.id, null));
    await real.em().insert(CertificateEntity, cert("0B", b.id, null));
    await real.em().insert(CertificateEntity, cert("0C", a.id, now));
    // The checks fork the entity manager they are given once per statement: count the forks.
    const em = real.em();
    const fork = em.fork.bind(em);
    let statements = 0;
    em.fork = (...args: Parameters<typeof em.fork>) => {
      statements++;
      return fork(...args);
    };
    const asked: [string, string][] = [[a.id, "0A"], [a.id, "0A"], [b.id, "0A"], [b.id, "0B"], [a.id, "0C"], [a.id, "0D"]];
    const answers = await Promise.all(asked.map(([deploymentId, serial]) => isCertificateUsable(em, deploymentId, serial)));
    expect(answers).toEqual([true, true, false, true, false, false]);
    expect(statements).toBe(1);
    // Inside a transaction the check reads on the transaction's own connection, at once.
    const inTx = await real.transactional((tx) => Promise.all(asked.map(([deploymentId, serial]) => isCertificateUsable(tx, deploymentId, serial))));
    expect(inTx).toEqual(answers);
    expect(statements).toBe(1);
    // A revocation is seen by the next turn's statement: nothing is cached.
    await real.em().nativeUpdate(CertificateEntity, { serialNumber: "0A" }, { revokedAt: now });
    expect(await isCertificateUsable(em, a.id, "0A")).toBe(false);
    expect(statements).toBe(2);
  });
});
