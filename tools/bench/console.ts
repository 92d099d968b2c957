/**
 * `npm run bench -- console`: the reads the web console makes, through the real licensing and
 * audit services (each a process of its own, over TLS with an admin bearer token), each beside
 * the bare SQL query for the same page — same rows, same ORDER BY and LIMIT on the same index —
 * timed in the same run on a connection of the bench's own. Goal: each within 2× its bare query
 * (docs/design.md §11). Then the console itself in Chromium: the first page of Licenses after a
 * navigation (goal: under 1 s at 1,000,000 deployments) and its first-load JavaScript (goal: at
 * most 250 KB gzipped).
 *
 * - Admins sign in as they do in production: the development OIDC provider (tools/dev-idp) runs in
 *   this process on a free port over TLS (the test PKI's certificate for localhost), and
 *   signing-keys, licensing and audit trust its issuer, audience and JWKS (fetched over TLS
 *   trusting the test CA, as `OIDC_CA_FILE` makes them). The API figures' tokens are its support
 *   dev user's (super_admin's for the settings), signed in through its login form; the browser
 *   signs in on its login page.
 * - The fleet: 100,000 deployments with their licences on SQLite, 1,000,000 on PostgreSQL
 *   (DATABASE_URL set), `CONSOLE_BENCH_DEPLOYMENTS` to change it; in every derived state
 *   (77 % ACTIVE, 10 % GRACE by time alone, 5 % PENDING, 2 % each SUSPENDED and LOCKED for each
 *   reason), one customer in ten the big one. The heartbeat timeout is set to 6 h first, so the
 *   states hold however long the run takes. As many audit events (`CONSOLE_BENCH_EVENTS`), one
 *   a second up to now, eight actions in turn, one in ten by an admin. Seeded by one multi-row
 *   INSERT … SELECT per table (generate_series on PostgreSQL, a recursive CTE on SQLite).
 * - ListLicenses and ListDeployments, no filter, state GRACE (the derived state) and the big
 *   customer; ListEvents, no filter, one action and one actor: page 1 and page 100 (reached by
 *   following the tokens once, then asked again and again with the token of page 100; the bare
 *   query follows its own keyset to the same page, and both are checked to return the same
 *   rows). With a small fleet the last page there is stands in for page 100, and says so.
 * - GetFleetSummary beside a GROUP BY of the stored state (what counting costs without the
 *   derivation), and CountEvents (the last day, hourly) beside its own statement: informative.
 * - Interleaved rounds (`CONSOLE_BENCH_ROUNDS`, default 21) after warm-up rounds not counted
 *   (`CONSOLE_BENCH_WARMUP_ROUNDS`, default 3): each round asks the bare query and the RPC once
 *   each, in alternating order; the table shows medians.
 * - The console page load, by a {@link ConsolePageLoad} given the running, seeded services:
 *   {@link measureConsolePageLoad} (console-page-load.ts) builds the web app if it is stale,
 *   starts the console server in this process, signs in as support in Chromium, and times
 *   `CONSOLE_BENCH_PAGE_LOADS` loads (default 7, median) of `/licensing` until the first licence
 *   row shows, cold (a new browser context: empty cache) and warm (cached assets), beside the
 *   ListLicenses RPC for the same page from node; and weighs the first-load JavaScript gzipped
 *   (first-load-js.ts) beside its raw size. `CHROMIUM_PATH` overrides `/usr/bin/chromium`.
 * Runnable alone: `node --conditions=source --import tsx tools/bench/console.ts`.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Client } from "@connectrpc/connect";
import { startAudit } from "@lcp/audit/app";
import { startLicensing } from "@lcp/licensing/app";
import { AuditService } from "@lcp/proto/audit/v1/audit_service_pb";
import { LicensingService } from "@lcp/proto/licensing/v1/licensing_service_pb";
import { DeploymentState } from "@lcp/proto/licensing/v1/types_pb";
import { createAdminClient, type AdminTokensConfig } from "@lcp/rpc";
import { startTestSigningKeys } from "@lcp/signing-keys/testing";
import { rawQuery, testDatabases, type TestDatabaseOptions } from "@lcp/testing/db";
import { createTestPki } from "@lcp/testing/pki";
import type { DevIdentityProvider } from "../dev-idp/provider.js";
import type { SignedIn } from "../dev-idp/sign-in.js";
import { ask, forkBenchChild, stop } from "./children.js";
import { heldConnection, type HeldConnection } from "./fleet-db.js";
import { median, printResults, type BenchResult } from "./result.js";

const ISSUER = "https://lcp.bench/licensing";
/** The lists' default page sizes (licensing 50, audit 100): what the console asks for. */
const LICENSING_PAGE = 50;
const EVENTS_PAGE = 100;
/** The deep page measured. */
const DEEP_PAGE = 100;
const BIG_CUSTOMER = "Big Hospital Group";
const ACTION = "deployment.lock";
const ACTOR = "carol@example.org";
const MINUTE = 60_000;
const DAY = 86_400_000;
const GOAL = "≥ 0.5 (within 2×)";
/**
 * The heartbeat timeout the bench runs with (set through UpdateSettings): a fleet seeded as just
 * seen stays ACTIVE for the whole run, however long a large one takes, instead of turning GRACE
 * at the default 5 minutes while it is measured.
 */
const HEARTBEAT_TIMEOUT_MS = 6 * 60 * MINUTE;
const GRACE_WINDOW_MS = 14 * DAY;

/** What a browser measurement of the console is given: the running services over a seeded fleet. */
export interface ConsoleBenchFleet {
  pg: boolean;
  deployments: number;
  events: number;
  licensingUrl: string;
  auditUrl: string;
  signingKeysUrl: string;
  /** The CA the services', the identity provider's and the console's certificates chain to. */
  caPem: string;
  /**
   * An admin bearer token of the dev user of this one role, signed in at the identity provider
   * (the services trust nothing else), valid for at least five more minutes.
   */
  adminToken(roles: readonly string[]): Promise<string>;
  /** The dev OIDC provider the services trust: where a console signs its admins in. */
  identityProvider: {
    issuer: string;
    /** The console's confidential client, registered for {@link ConsoleBenchFleet.console}'s redirect URIs. */
    consoleClient: { clientId: string; clientSecret: string };
    /** The dev user of each role, by role: what a browser types on the provider's login page. */
    users: Readonly<Record<string, { username: string; password: string }>>;
  };
  /**
   * Where a console is to listen: the port the identity provider's redirect URIs name
   * (`<url>/auth/callback`, `<url>/auth/signed-out`), and a certificate for localhost.
   */
  console: { port: number; url: string; tls: { certPem: string; keyPem: string } };
  /** Registers a close to run with the bench's own (newest first), however the run ends. */
  defer(close: () => Promise<unknown>): void;
  /** The customer holding a tenth of the fleet. */
  bigCustomer: string;
}

/** A console page load measured in a browser over {@link ConsoleBenchFleet}, as bench rows. */
export type ConsolePageLoad = (fleet: ConsoleBenchFleet) => Promise<BenchResult[]>;

/**
 * The console's page load measured in Chromium (console-page-load.ts, loaded only when it runs):
 * handed the running services over the seeded fleet after the API figures are taken, it starts a
 * console against them, signs in through the identity provider's login page, and returns the
 * first page of Licenses, cold and warm, and the first-load JavaScript as rows of the same table
 * (goals: under 1 s at 1,000,000 deployments, at most 250 KB gzipped; docs/design.md §11).
 */
export const measureConsolePageLoad: ConsolePageLoad = async (fleet) => (await import("./console-page-load.js")).measureConsolePageLoadInChromium(fleet);

/** Options of {@link benchConsole}. */
export interface ConsoleBenchOptions {
  /** The browser measurement (default {@link measureConsolePageLoad}). */
  pageLoad?: ConsolePageLoad;
}

/** A page as both sides report it: its keys in order and where the next page starts. */
interface Page {
  keys: string[];
  next: string;
}

/** One list measured: the RPC with page tokens, and the bare query with its own keyset cursor. */
interface ListCase {
  name: string;
  /** What the list pages through: the fleet or the audit log. */
  of: "deployments" | "events";
  baseline: string;
  rpc(token: string): Promise<Page>;
  bare(cursor: string): Promise<Page>;
}

/** A bare statement and its parameters, taken when it runs (the derived states move with the clock). */
interface BareQuery {
  sql: string;
  params(): unknown[];
}

/** Runs the console benchmark (see the module comment). */
export async function benchConsole(options: ConsoleBenchOptions = {}): Promise<BenchResult[]> {
  const pg = Boolean(process.env.DATABASE_URL);
  const deployments = Number(process.env.CONSOLE_BENCH_DEPLOYMENTS ?? (pg ? 1_000_000 : 100_000));
  const events = Number(process.env.CONSOLE_BENCH_EVENTS ?? deployments);
  const rounds = Number(process.env.CONSOLE_BENCH_ROUNDS ?? 21);
  const warmup = Number(process.env.CONSOLE_BENCH_WARMUP_ROUNDS ?? 3);
  for (const [name, n] of [["CONSOLE_BENCH_DEPLOYMENTS", deployments], ["CONSOLE_BENCH_EVENTS", events], ["CONSOLE_BENCH_ROUNDS", rounds]] as const) {
    if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer (got ${n})`);
  }
  const tdb = testDatabases().find((t) => t.name === (pg ? "postgresql" : "sqlite"))!;
  const pki = await createTestPki();
  const dbs = { sk: tdb.options("signing-keys"), lic: tdb.options("licensing"), audit: tdb.options("audit") };
  const tls = async (name: string) => {
    const c = await pki.service(name);
    return { certPem: c.certPem, keyPem: c.keyPem, caPem: pki.ca.certPem, source: "files" as const };
  };
  const common = (db: TestDatabaseOptions) => ({ host: "127.0.0.1", port: 0, dataDir: db.dataDir, databaseUrl: db.databaseUrl, databaseSchema: db.schema });
  const closers: Array<() => Promise<unknown>> = [];
  try {
    // The identity provider first: the services are told its issuer and keys at start, and its
    // console client's redirect URIs name the port a console will listen on.
    const consolePort = await freePort();
    const consoleUrl = `https://localhost:${consolePort}`;
    const idpState = await mkdtemp(join(tmpdir(), "lcp-bench-idp-"));
    closers.push(() => rm(idpState, { recursive: true, force: true }));
    const { startDevIdentityProvider } = await import("../dev-idp/provider.js");
    const idpCert = await pki.service("dev-idp");
    const idp = await startDevIdentityProvider({
      port: 0,
      tls: { certPem: idpCert.certPem, keyPem: idpCert.keyPem },
      stateDir: idpState,
      consoleRedirectUris: [`${consoleUrl}/auth/callback`],
      consolePostLogoutRedirectUris: [`${consoleUrl}/auth/signed-out`],
      accessTokenTtlSeconds: 3_600,
    });
    closers.push(() => idp.close());
    // As a service reads OIDC_ISSUER, OIDC_AUDIENCE, OIDC_JWKS_URL and OIDC_CA_FILE.
    const adminTokens: AdminTokensConfig = {
      issuer: idp.issuer,
      audience: idp.audience,
      jwksUrl: new URL(idp.jwksUrl),
      jwksCaPem: pki.ca.certPem,
      rolesClaim: idp.rolesClaim,
      dev: false,
    };
    const tokenOf = await devUserTokens(idp, pki.ca.certPem);

    const signingKeys = await startTestSigningKeys({ pki, db: dbs.sk, adminTokens, tokenIssuer: ISSUER });
    closers.push(() => signingKeys.close());
    const licensing = await startChild("licensing", {
      app: "licensing",
      ...common(dbs.lic),
      trustDomain: pki.trustDomain,
      tls: await tls("licensing"),
      adminTokens,
      logLevel: "silent",
      signingKeysUrl: signingKeys.url,
      tokenIssuer: ISSUER,
      replicaId: "bench",
    });
    closers.push(() => licensing.close());
    const audit = await startChild("audit", {
      app: "audit",
      ...common(dbs.audit),
      trustDomain: pki.trustDomain,
      tls: await tls("audit"),
      adminTokens,
      logLevel: "silent",
      maxClockSkewMs: 5 * MINUTE,
    });
    closers.push(() => audit.close());

    // Settings first, through the API as an operator would: what the seeded states are made for.
    const superAdmin = createAdminClient(LicensingService, {
      baseUrl: licensing.url,
      caPem: pki.ca.certPem,
      token: () => tokenOf("super_admin"),
      retries: 0,
    });
    await superAdmin.updateSettings({ settings: { heartbeatTimeout: { seconds: BigInt(HEARTBEAT_TIMEOUT_MS / 1000), nanos: 0 } }, updateMask: { paths: ["heartbeat_timeout"] } });
    const now = new Date();
    const seeding = performance.now();
    await seedConsoleFleet(dbs.lic, deployments, now);
    await seedAuditEvents(dbs.audit, events, deployments, now);
    console.error(
      `  seeded ${deployments.toLocaleString("en-US")} deployments with licences and ${events.toLocaleString("en-US")} audit events (${pg ? "PostgreSQL" : "SQLite"}) in ${Math.round(performance.now() - seeding)} ms`,
    );

    // The support user's token, signed in once and again only near its expiry: the sign-in is not
    // what is measured (the services' verification of the token is, on every call, as in production).
    const token = () => tokenOf("support");
    const client = <S extends typeof LicensingService | typeof AuditService>(service: S, url: string): Client<S> =>
      createAdminClient(service, { baseUrl: url, caPem: pki.ca.certPem, token, retries: 0, timeoutMs: 10 * MINUTE });
    const lic = client(LicensingService, licensing.url);
    const aud = client(AuditService, audit.url);
    const licDb = await heldConnection(dbs.lic);
    closers.push(() => licDb.close());
    const auditDb = await heldConnection(dbs.audit);
    closers.push(() => auditDb.close());
    const sql = bareSql(pg);

    const cases: ListCase[] = [
      ...licensingCases(lic, licDb, sql),
      ...eventCases(aud, auditDb, sql),
    ];
    const results: BenchResult[] = [];
    const scale = (of: ListCase["of"]) =>
      `${(of === "events" ? events : deployments).toLocaleString("en-US")} ${of}, ${pg ? "PostgreSQL" : "SQLite"}; median of ${rounds}; ms, lower is better`;
    for (const c of cases) {
      const deep = await reachPage(c, DEEP_PAGE);
      for (const [label, token, cursor] of [["page 1", "", ""], [`page ${deep.page}${deep.page < DEEP_PAGE ? ` (the last; no page ${DEEP_PAGE} at this size)` : ""}`, deep.token, deep.cursor]] as const) {
        await samePage(c, token, cursor, label);
        const timed = await interleaved(
          () => c.bare(cursor),
          () => c.rpc(token),
          rounds,
          warmup,
        );
        console.error(`  ${c.name}, ${label}: RPC ${timed.rpcMs.toFixed(2)} ms, bare ${timed.bareMs.toFixed(2)} ms`);
        results.push({ name: `${c.name}, ${label} (${scale(c.of)})`, value: timed.rpcMs, unit: "ms", baseline: c.baseline, baselineValue: timed.bareMs, ratio: timed.bareMs / timed.rpcMs, goal: GOAL });
      }
    }

    // The heartbeats screen's counts and the audit screen's chart: one statement each.
    const summary = await interleaved(() => licDb.all(sql.storedStateCounts, []), () => lic.getFleetSummary({}), rounds, warmup);
    results.push({
      name: `GetFleetSummary, the fleet by derived state (${scale("deployments")})`,
      value: summary.rpcMs,
      unit: "ms",
      baseline: "bare GROUP BY of the stored state (no derivation)",
      baselineValue: summary.bareMs,
      ratio: summary.bareMs / summary.rpcMs,
    });
    const dayAgo = now.getTime() - DAY;
    const count = sql.countEvents(dayAgo, now.getTime(), 60 * MINUTE);
    const counted = await interleaved(
      () => auditDb.all(count.sql, count.params()),
      () => aud.countEvents({ startTime: timestampFromMs(dayAgo), endTime: timestampFromMs(now.getTime()), bucketWidth: { seconds: 3_600n, nanos: 0 } }),
      rounds,
      warmup,
    );
    results.push({
      name: `CountEvents, last day hourly (${scale("events")})`,
      value: counted.rpcMs,
      unit: "ms",
      baseline: "bare GROUP BY over the occurred_at range",
      baselineValue: counted.bareMs,
      ratio: counted.bareMs / counted.rpcMs,
    });

    // The console page load in a browser, over the same running services and fleet.
    const pageLoad = options.pageLoad ?? measureConsolePageLoad;
    const consoleCert = await pki.service("console");
    results.push(
      ...(await pageLoad({
        pg,
        deployments,
        events,
        licensingUrl: licensing.url,
        auditUrl: audit.url,
        signingKeysUrl: signingKeys.url,
        caPem: pki.ca.certPem,
        adminToken: async (roles) => {
          if (roles.length !== 1) throw new Error(`a dev user holds one role; asked for [${roles.join(", ")}]`);
          return tokenOf(roles[0]!);
        },
        identityProvider: {
          issuer: idp.issuer,
          consoleClient: { clientId: idp.consoleClient.clientId, clientSecret: idp.consoleClient.clientSecret },
          users: Object.fromEntries(idp.users.map((u) => [u.role, { username: u.username, password: u.password }])),
        },
        console: { port: consolePort, url: consoleUrl, tls: { certPem: consoleCert.certPem, keyPem: consoleCert.keyPem } },
        defer: (close) => void closers.push(close),
        bigCustomer: BIG_CUSTOMER,
      })),
    );
    return results;
  } finally {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    for (const db of Object.values(dbs)) await db.cleanup().catch(() => undefined);
  }
}

/** How long before its expiry a dev user's token is replaced by a new sign-in. */
const TOKEN_MARGIN_MS = 5 * MINUTE;

/**
 * Access tokens of the provider's dev users, by role: each signed in through the provider's login
 * form (`signInAs`) when first asked for, and again once it has less than {@link TOKEN_MARGIN_MS}
 * left. A token still good is returned as it is, without a promise, so a client asking for it on
 * every call adds nothing to what is timed.
 */
async function devUserTokens(idp: DevIdentityProvider, caPem: string): Promise<(role: string) => string | Promise<string>> {
  const { signInAs } = await import("../dev-idp/sign-in.js");
  const held = new Map<string, SignedIn>();
  const signing = new Map<string, Promise<string>>();
  return (role) => {
    const current = held.get(role);
    if (current && current.expiresAt.getTime() - Date.now() > TOKEN_MARGIN_MS) return current.accessToken;
    const pending = signing.get(role);
    if (pending) return pending;
    const user = idp.users.find((u) => u.role === role);
    if (!user) throw new Error(`the identity provider has no dev user for role ${JSON.stringify(role)}`);
    const signIn = signInAs({ issuer: idp.issuer, caPem, username: user.username, password: user.password })
      .then((signedIn) => {
        held.set(role, signedIn);
        return signedIn.accessToken;
      })
      .finally(() => signing.delete(role));
    signing.set(role, signIn);
    return signIn;
  };
}

/** A TCP port free on 127.0.0.1 now: for a server whose URL must be known before it starts. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The bare statements, in the driver's own placeholders; the times they compare against are taken as they run. */
function bareSql(pg: boolean) {
  let n = 0;
  // `?` → `$n` on PostgreSQL (the statements hold no `?` in literals).
  const ph = (text: string) => {
    n = 0;
    return pg ? text.replace(/\?/g, () => `$${++n}`) : text;
  };
  const t = (ms: number) => (pg ? new Date(ms) : ms);
  const ts = pg ? "cast(? as timestamptz)" : "?";
  // GRACE written by hand as the facts say it (docs/design.md §5): a live, bound licence, seen
  // within the grace window, subscription valid, silent past the heartbeat timeout.
  const seen = "coalesce(d.last_seen_at, d.activated_at)";
  const grace = {
    sql:
      `d.license_revoked_at is null and d.license_expires_at > ${ts} and d.activated_at is not null and d.fingerprint_hash is not null ` +
      `and ${seen} >= ${ts} and d.subscription_status <> 'INVALID' and ${seen} < ${ts}`,
    params: () => {
      const at = Date.now();
      return [t(at), t(at - GRACE_WINDOW_MS), t(at - HEARTBEAT_TIMEOUT_MS)];
    },
  };
  const fixed = (...params: unknown[]) => () => params;
  const deployments = (where: string) => ph(`select d.* from deployment d where ${where}d.id > ? order by d.id limit ${LICENSING_PAGE + 1}`);
  // A licence with its deployment: the page the RPC answers (licences and their deployments).
  // The licence's columns last, so its `id` is the one a row object keeps.
  const licenses = (where: string) =>
    ph(`select d.*, l.* from license l join deployment d on d.id = l.deployment_id where ${where}l.id > ? order by l.id limit ${LICENSING_PAGE + 1}`);
  const events = (where: string) => ph(`select * from audit_event where ${where}seq < ? order by seq desc limit ${EVENTS_PAGE + 1}`);
  return {
    deployments: {
      none: { sql: deployments(""), params: fixed() },
      grace: { sql: deployments(`${grace.sql} and `), params: grace.params },
      customer: { sql: deployments("d.customer = ? and "), params: fixed(BIG_CUSTOMER) },
    } satisfies Record<string, BareQuery>,
    licenses: {
      none: { sql: licenses(""), params: fixed() },
      grace: { sql: licenses(`${grace.sql} and `), params: grace.params },
      customer: { sql: licenses("l.customer = ? and "), params: fixed(BIG_CUSTOMER) },
    } satisfies Record<string, BareQuery>,
    events: {
      none: { sql: events(""), params: fixed() },
      action: { sql: events("action = ? and "), params: fixed(ACTION) },
      actor: { sql: events("actor_id = ? and "), params: fixed(ACTOR) },
    } satisfies Record<string, BareQuery>,
    storedStateCounts: "select state, lock_reason, count(*) as n from deployment group by state, lock_reason",
    countEvents(startMs: number, endMs: number, widthMs: number): BareQuery {
      const bucket = pg
        ? "div(cast(round(extract(epoch from (occurred_at - cast(? as timestamptz))) * 1000) as bigint), cast(? as bigint))"
        : "(occurred_at - cast(? as integer)) / cast(? as integer)";
      return {
        sql: ph(`select ${bucket} as b, action, count(*) as n from audit_event where occurred_at >= ${ts} and occurred_at < ${ts} group by 1, 2`),
        params: fixed(t(startMs), widthMs, t(startMs), t(endMs)),
      };
    },
  };
}

type Sql = ReturnType<typeof bareSql>;

/** The keyset cursor the bare query starts from when there is none: below every id, above every seq. */
const FIRST_ID = "";
const FIRST_SEQ = String(Number.MAX_SAFE_INTEGER);

function licensingCases(lic: Client<typeof LicensingService>, db: HeldConnection, sql: Sql): ListCase[] {
  const page = (rows: { id: string }[], size: number): Page => ({
    keys: rows.slice(0, size).map((r) => r.id),
    next: rows.length > size ? rows[size - 1]!.id : "",
  });
  const bare = (q: BareQuery) => async (cursor: string) => page(await db.all<{ id: string }>(q.sql, [...q.params(), cursor || FIRST_ID]), LICENSING_PAGE);
  const filters = [
    { label: "no filter", deployments: {}, licenses: {}, dSql: sql.deployments.none, lSql: sql.licenses.none },
    { label: "state GRACE", deployments: { states: [DeploymentState.GRACE] }, licenses: { deploymentStates: [DeploymentState.GRACE] }, dSql: sql.deployments.grace, lSql: sql.licenses.grace },
    { label: "the big customer", deployments: { customer: BIG_CUSTOMER }, licenses: { customer: BIG_CUSTOMER }, dSql: sql.deployments.customer, lSql: sql.licenses.customer },
  ];
  return filters.flatMap((f) => [
    {
      name: `ListLicenses (with their deployments), ${f.label}`,
      of: "deployments" as const,
      baseline: `bare SQL, same page (licence ⋈ deployment, ORDER BY id LIMIT ${LICENSING_PAGE + 1})`,
      rpc: async (pageToken: string) => {
        const res = await lic.listLicenses({ ...f.licenses, pageSize: LICENSING_PAGE, pageToken });
        return { keys: res.licenses.map((l) => l.id), next: res.nextPageToken };
      },
      bare: bare(f.lSql),
    },
    {
      name: `ListDeployments, ${f.label}`,
      of: "deployments" as const,
      baseline: `bare SQL, same page (ORDER BY id LIMIT ${LICENSING_PAGE + 1})`,
      rpc: async (pageToken: string) => {
        const res = await lic.listDeployments({ ...f.deployments, pageSize: LICENSING_PAGE, pageToken });
        return { keys: res.deployments.map((d) => d.id), next: res.nextPageToken };
      },
      bare: bare(f.dSql),
    },
  ]);
}

function eventCases(aud: Client<typeof AuditService>, db: HeldConnection, sql: Sql): ListCase[] {
  const filters = [
    { label: "no filter", req: {}, q: sql.events.none },
    { label: `action ${ACTION}`, req: { action: ACTION }, q: sql.events.action },
    { label: "one actor", req: { actorId: ACTOR }, q: sql.events.actor },
  ];
  return filters.map((f) => ({
    name: `ListEvents, ${f.label}`,
    of: "events" as const,
    baseline: `bare SQL, same page (ORDER BY seq DESC LIMIT ${EVENTS_PAGE + 1})`,
    rpc: async (pageToken: string) => {
      const res = await aud.listEvents({ ...f.req, pageSize: EVENTS_PAGE, pageToken });
      return { keys: res.events.map((e) => String(e.seq)), next: res.nextPageToken };
    },
    bare: async (cursor: string) => {
      const rows = await db.all<{ seq: number | string }>(f.q.sql, [...f.q.params(), Number(cursor || FIRST_SEQ)]);
      const keys = rows.slice(0, EVENTS_PAGE).map((r) => String(r.seq));
      return { keys, next: rows.length > EVENTS_PAGE ? keys[keys.length - 1]! : "" };
    },
  }));
}

/** Follows both sides to page `target` (or the last page before it): its RPC token and bare cursor. */
async function reachPage(c: ListCase, target: number): Promise<{ page: number; token: string; cursor: string }> {
  let page = 1;
  let token = "";
  let cursor = "";
  while (page < target) {
    const [r, b] = await Promise.all([c.rpc(token), c.bare(cursor)]);
    if (!r.next || !b.next) break;
    token = r.next;
    cursor = b.next;
    page++;
  }
  return { page, token, cursor };
}

/** The RPC and the bare query must answer the same page, or the ratio compares nothing. */
async function samePage(c: ListCase, token: string, cursor: string, label: string): Promise<void> {
  const [r, b] = await Promise.all([c.rpc(token), c.bare(cursor)]);
  if (r.keys.length === 0 || r.keys.join() !== b.keys.join()) {
    throw new Error(`${c.name}, ${label}: the RPC and the bare query answer different pages (${r.keys.length} vs ${b.keys.length} rows, first ${r.keys[0]} vs ${b.keys[0]})`);
  }
}

/** Medians of `rounds` interleaved timings of each (the order alternating per round), after `warmup` rounds not counted. */
async function interleaved(bare: () => Promise<unknown>, rpc: () => Promise<unknown>, rounds: number, warmup: number): Promise<{ bareMs: number; rpcMs: number }> {
  const time = async (fn: () => Promise<unknown>) => {
    const t = performance.now();
    await fn();
    return performance.now() - t;
  };
  const bareMs: number[] = [];
  const rpcMs: number[] = [];
  for (let round = -warmup; round < rounds; round++) {
    let b: number;
    let r: number;
    if (round % 2 === 0) {
      b = await time(bare);
      r = await time(rpc);
    } else {
      r = await time(rpc);
      b = await time(bare);
    }
    if (round >= 0) {
      bareMs.push(b);
      rpcMs.push(r);
    }
  }
  return { bareMs: median(bareMs), rpcMs: median(rpcMs) };
}

/**
 * Seeds `count` deployments, each with its current licence, in every derived state at `now` by
 * their facts under the bench's settings (`g % 100`: 0–4 PENDING, 5–14 GRACE (silent past the
 * 6 h heartbeat timeout), 15–16 LOCKED(REVOKED), 17–18 LOCKED(EXPIRED),
 * 19–20 LOCKED(OFFLINE), 21–22 SUSPENDED, the rest ACTIVE), the stored state agreeing; every
 * tenth the big customer's. Ids in key order as `g` grows, as provisioning mints them.
 */
export async function seedConsoleFleet(db: TestDatabaseOptions, count: number, now: Date): Promise<void> {
  const pg = Boolean(db.databaseUrl);
  const at = now.getTime();
  const t = (ms: number) => (pg ? new Date(ms).toISOString() : ms);
  const times = {
    now: t(at),
    // Silent past the bench's heartbeat timeout, well within the grace window.
    grace: t(at - HEARTBEAT_TIMEOUT_MS - 60 * MINUTE),
    offline: t(at - 15 * DAY),
    issued: t(at - 30 * DAY),
    expired: t(at - DAY),
    expires: t(at + 365 * DAY),
  };
  const v = (name: keyof typeof times) => (pg ? `cast(:${name} as timestamptz)` : `:${name}`);
  const id = (kind: string) => (pg ? `'00000000-0000-7000-${kind}-' || lpad(cast(g as text), 12, '0')` : `'00000000-0000-7000-${kind}-' || substr('000000000000' || g, -12)`);
  const from = pg ? `from (select g, g % 100 as r from generate_series(1, ${count}) g) s` : `from (select g, g % 100 as r from s)`;
  const prefix = pg ? "" : `with recursive s(g) as (select 1 union all select g + 1 from s where g < ${count}) `;
  const hash = `'${"a".repeat(64)}'`;
  const customer = `case when g % 10 = 0 then '${BIG_CUSTOMER}' else 'customer-' || (g % 997) end`;
  const pending = "r < 5";
  const revoked = "r between 15 and 16";
  const expired = "r between 17 and 18";
  const fact = {
    activated: `case when ${pending} then null else ${v("issued")} end`,
    fingerprint: `case when ${pending} then null else ${hash} end`,
    expires: `case when ${expired} then ${v("expired")} else ${v("expires")} end`,
    revoked: `case when ${revoked} then ${v("issued")} else null end`,
  };
  const run = (sql: string) => {
    const bound = named(sql, times, pg);
    return rawQuery(db, bound.sql, bound.params);
  };
  await run(
    `insert into deployment (id, name, customer, kind, subscription_status, subscription_reason, subscription_changed_at, license_id, license_expires_at, license_revoked_at, ` +
      `activated_at, fingerprint_hash, last_seen_at, agent_version, state, lock_reason, state_changed_at, version, created_at, updated_at) ` +
      `${prefix}select ${id("8000")}, 'site-' || g, ${customer}, 'ON_PREM', case when r between 21 and 22 then 'INVALID' else 'VALID' end, null, null, ${id("9000")}, ` +
      `${fact.expires}, ${fact.revoked}, ${fact.activated}, ${fact.fingerprint}, ` +
      `case when ${pending} then null when r < 15 then ${v("grace")} when r between 19 and 20 then ${v("offline")} else ${v("now")} end, ` +
      `case when ${pending} then null else 'agent/3.1' end, ` +
      `case when ${pending} then 'PENDING' when r < 15 then 'GRACE' when r <= 20 then 'LOCKED' when r <= 22 then 'SUSPENDED' else 'ACTIVE' end, ` +
      `case when ${revoked} then 'REVOKED' when ${expired} then 'EXPIRED' when r between 19 and 20 then 'OFFLINE' else null end, ` +
      `${v("now")}, 1, ${v("issued")}, ${v("now")} ${from}`,
  );
  // A token of a real licence token's size: what a licence row carries.
  const token = `'eyJhbGciOiJFZERTQSIsImtpZCI6ImJlbmNoIiwidHlwIjoibGljZW5zZStqd3QifQ.${"x".repeat(420)}.${"s".repeat(86)}'`;
  await run(
    `insert into license (id, deployment_id, customer, entitlements, token, kid, fingerprint_hash, issued_at, expires_at, activated_at, revoked_at, revoke_reason, ` +
      `superseded_at, superseded_by, lease_seq, lease_issued_at) ` +
      `${prefix}select ${id("9000")}, ${id("8000")}, ${customer}, '["imaging","max-users:50"]', ${token}, 'bench-kid', ${fact.fingerprint}, ${v("issued")}, ` +
      `${fact.expires}, ${fact.activated}, ${fact.revoked}, case when ${revoked} then 'contract ended' else null end, null, null, ` +
      `case when ${pending} then 0 else 1 end, case when ${pending} then null else ${v("now")} end ${from}`,
  );
  // As autovacuum would soon; SQLite gets no ANALYZE, as the apps never run one.
  if (pg) await rawQuery(db, "vacuum analyze deployment, license");
}

/**
 * Seeds `count` audit events, one a second up to a minute before `now`, eight actions in turn,
 * one in ten by an admin, on the fleet's deployments; and moves the chain head past them (the
 * hashes are not a chain: nothing here verifies it).
 */
export async function seedAuditEvents(db: TestDatabaseOptions, count: number, fleet: number, now: Date): Promise<void> {
  const pg = Boolean(db.databaseUrl);
  const first = now.getTime() - MINUTE - count * 1_000;
  const id = pg ? `'00000000-0000-7000-a000-' || lpad(cast(g as text), 12, '0')` : `'00000000-0000-7000-a000-' || substr('000000000000' || g, -12)`;
  const resource = pg ? `'00000000-0000-7000-8000-' || lpad(cast(g % ${fleet} + 1 as text), 12, '0')` : `'00000000-0000-7000-8000-' || substr('000000000000' || (g % ${fleet} + 1), -12)`;
  const at = pg ? "cast(:first as timestamptz) + g * interval '1 second'" : ":first + g * 1000";
  const actions = ["deployment.lock", "deployment.online", "deployment.offline", "license.issue", "license.activate", "directive.send", "fleet.sweep", "subscription.update"];
  const action = `case g % 8 ${actions.map((a, i) => `when ${i} then '${a}'`).join(" ")} end`;
  const zeros = `'${"0".repeat(64)}'`;
  const from = pg ? `from generate_series(1, ${count}) g` : `from s`;
  const prefix = pg ? "" : `with recursive s(g) as (select 1 union all select g + 1 from s where g < ${count}) `;
  const sql =
    `insert into audit_event (seq, id, occurred_at, recorded_at, actor_kind, actor_id, actor_roles, action, resource_type, resource_id, outcome, request_id, details, producer, prev_hash, hash) ` +
    `${prefix}select g, ${id}, ${at}, ${at}, case when g % 10 = 0 then 'admin' else 'system' end, case when g % 10 = 0 then '${ACTOR}' else 'licensing' end, ` +
    `case when g % 10 = 0 then '["support"]' else '[]' end, ${action}, case when g % 8 in (3, 4) then 'license' else 'deployment' end, ${resource}, 'success', ` +
    `'req-' || g, '{"reason":"bench"}', 'licensing', ${zeros}, ${zeros} ${from}`;
  const bound = named(sql, { first: pg ? new Date(first).toISOString() : first }, pg);
  await rawQuery(db, bound.sql, bound.params);
  await rawQuery(db, pg ? "update audit_chain_head set seq = $1 where id = 1" : "update audit_chain_head set seq = ? where id = 1", [count]);
  if (pg) await rawQuery(db, "vacuum analyze audit_event");
}

/** `:name` placeholders → the driver's, with their values in order. */
function named(sql: string, values: Record<string, unknown>, pg: boolean): { sql: string; params: unknown[] } {
  const params: unknown[] = [];
  const text = sql.replace(/(?<![:\w]):([a-z]+)\b/g, (_m, name: string) => {
    if (!(name in values)) throw new Error(`no value for :${name}`);
    params.push(values[name]);
    return pg ? `$${params.length}` : "?";
  });
  return { sql: text, params };
}

/** What a child process starts (JSON over IPC). */
type ChildRequest = { app: "licensing"; config: Parameters<typeof startLicensing>[0] } | { app: "audit"; config: Parameters<typeof startAudit>[0] };

/** Starts an app in a child process of its own; resolves with its URL once it listens. */
async function startChild<A extends ChildRequest["app"]>(app: A, config: Extract<ChildRequest, { app: A }>["config"]): Promise<{ url: string; close(): Promise<void> }> {
  const child = forkBenchChild(import.meta.url, "--serve-app");
  const { url } = await ask<{ url: string }>(child, { app, config });
  return { url, close: () => stop(child) };
}

/** Child: starts the app it is told to, answers its URL, and closes it on SIGTERM. */
async function serveApp(): Promise<void> {
  const req = await new Promise<ChildRequest>((resolve) => process.once("message", (m) => resolve(m as ChildRequest)));
  // IPC carries JSON: the JWKS URL arrives as its text.
  const tokens = req.config.adminTokens as { jwksUrl?: URL | string };
  if (typeof tokens.jwksUrl === "string") tokens.jwksUrl = new URL(tokens.jwksUrl);
  const app = req.app === "licensing" ? await startLicensing(req.config) : await startAudit(req.config);
  process.once("SIGTERM", () => void app.close().finally(() => process.exit(0)));
  process.send?.({ url: app.url });
}

// Run directly (`node --conditions=source --import tsx tools/bench/console.ts`) as well as from main.ts.
const entry = process.argv[1] ? fileURLToPath(import.meta.url) === process.argv[1] : false;
if (process.argv[2] === "--serve-app") await serveApp();
else if (entry) printResults(await benchConsole());
