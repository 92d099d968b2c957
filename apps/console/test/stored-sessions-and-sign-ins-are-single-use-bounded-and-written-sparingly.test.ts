/**
 * The database side of sessions and pending sign-ins, on SQLite and PostgreSQL, with two stores
 * on one database standing for two replicas: a sign-in is taken once even when both race for it,
 * the refresh claim admits one replica, use is written at most once per touch interval, and the
 * migrations match the entities.
 */
import { randomBytes } from "node:crypto";
import { assertMigrationsUpToDate, createOrm, type Database } from "@lcp/persistence";
import { rawQuery, testDatabases, type TestDatabaseOptions } from "@lcp/testing/db";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createPendingLogins, type PendingLogins } from "../src/pending-logins.js";
import { createSealer } from "../src/sealing.js";
import { createDatabaseSessionStore } from "../src/session-store.js";
import { createSessions, TOUCH_INTERVAL_MS } from "../src/sessions.js";
import { entities, migrations } from "../src/storage/schema.js";

const log = pino({ level: "silent" });
const login = { state: "s".repeat(43), nonce: "n".repeat(43), codeVerifier: "v".repeat(43), returnTo: "/licensing" };

describe.each(testDatabases())("stored sessions and sign-ins ($name)", (tdb) => {
  let opts: TestDatabaseOptions;
  let replicas: Database[];
  let clock: number;
  const key = new Uint8Array(randomBytes(32));
  const now = () => clock;
  beforeEach(async () => {
    clock = Date.UTC(2026, 0, 1);
    opts = tdb.options("console");
    replicas = [];
    for (let i = 0; i < 2; i++) replicas.push(await createOrm({ ...opts, entities, migrations }));
  });
  afterEach(async () => {
    for (const db of replicas) await db.close();
    await opts.cleanup();
  });
  const pendingOn = (db: Database, max = 10): PendingLogins => createPendingLogins({ db, sealer: createSealer(key, "pending-login"), now, max, ttlMs: 60_000 });

  it("the committed migrations match the entities", async () => {
    await assertMigrationsUpToDate(replicas[0]!);
  });

  it("a pending sign-in is taken once, even by two replicas at the same moment; expired and unknown ones are not", async () => {
    const [a, b] = [pendingOn(replicas[0]!), pendingOn(replicas[1]!)];
    for (let round = 0; round < 20; round++) {
      const id = await a.add(login);
      const taken = await Promise.all([a.take(id), b.take(id), a.take(id), b.take(id)]);
      expect(taken.filter((t) => t !== undefined)).toEqual([{ ...login, expiresAt: clock + 60_000 }]);
    }
    const late = await a.add(login);
    clock += 60_000;
    expect(await b.take(late)).toBeUndefined();
    for (const bad of [undefined, "", "x".repeat(43), "../../etc", "é".repeat(43), late + "x"]) expect(await a.take(bad)).toBeUndefined();
  });

  it("a pending sign-in sealed under another key does not open", async () => {
    const id = await pendingOn(replicas[0]!).add(login);
    const other = createPendingLogins({ db: replicas[1]!, sealer: createSealer(new Uint8Array(randomBytes(32)), "pending-login"), now });
    expect(await other.take(id)).toBeUndefined();
  });

  it("at most `max` sign-ins wait: expired ones go first, then the oldest", async () => {
    const pending = pendingOn(replicas[0]!, 3);
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) {
      ids.push(await pending.add(login));
      clock += 1;
    }
    expect(Number((await rawQuery<{ n: number | string }>(opts, "select count(*) as n from console_pending_login"))[0]!.n)).toBe(3);
    expect(await pending.take(ids[0])).toBeUndefined();
    expect(await pending.take(ids[7])).toBeDefined();
    clock += 60_000;
    expect(await pending.deleteExpired(clock)).toBe(2);
  });

  it("one replica at a time claims a session's refresh, until the claim runs out", async () => {
    const stores = replicas.map((db) => createDatabaseSessionStore({ db, sealer: createSealer(key, "session"), maxSessions: 10, log }));
    const id = randomBytes(32).toString("base64url");
    await stores[0]!.create({ id, subject: "sam", name: "Sam", roles: ["support"], csrfToken: "c", accessToken: "at", accessTokenExpiresAt: clock, createdAt: clock, lastUsedAt: clock, expiresAt: clock + 60_000 });
    const claims = await Promise.all([stores[0]!.claimRefresh(id, clock, clock + 1_000), stores[1]!.claimRefresh(id, clock, clock + 1_000), stores[1]!.claimRefresh(id, clock, clock + 1_000)]);
    expect(claims.filter(Boolean)).toHaveLength(1);
    expect(await stores[1]!.claimRefresh(id, clock + 999, clock + 2_000)).toBe(false);
    expect(await stores[1]!.claimRefresh(id, clock + 1_000, clock + 2_000)).toBe(true);
    expect(await stores[0]!.claimRefresh("x".repeat(43), clock, clock + 1)).toBe(false);
  });

  it("use is written at most once per touch interval, and each write extends the idle deadline", async () => {
    const store = createDatabaseSessionStore({ db: replicas[0]!, sealer: createSealer(key, "session"), maxSessions: 10, log });
    const sessions = createSessions({ store, idleTimeoutMs: 30 * 60_000, maxAgeMs: 12 * 3_600_000, now, refresh: () => Promise.reject(new Error("no refresh")), log });
    try {
      const created = await sessions.create({ subject: "sam", name: "Sam", roles: [], accessToken: "at", accessTokenExpiresAt: clock + 3_600_000 });
      const stored = async () => (await rawQuery<{ last_used_at: number | string }>(opts, "select last_used_at from console_session"))[0]!.last_used_at;
      let current = created;
      for (let i = 0; i < 10; i++) {
        clock += Math.floor((TOUCH_INTERVAL_MS - 1) / 10);
        current = await sessions.touch(current);
      }
      expect(Number(await stored())).toBe(created.createdAt);
      clock += 10;
      current = await sessions.touch(current);
      expect(Number(await stored())).toBe(clock);
      expect((await sessions.live(created.id))?.expiresAt).toBe(clock + 30 * 60_000);
    } finally {
      sessions.close();
    }
  });
});
