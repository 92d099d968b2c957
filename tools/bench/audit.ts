/**
 * `npm run bench -- audit`: audit `Append` throughput (events/s, batches of 100, over mTLS with
 * the licensing service's certificate) against a bare batched INSERT of the same rows into a
 * plain table of the same database, measured in the same run. SQLite always; PostgreSQL too when
 * `DATABASE_URL` is set. Goal: ratio ≥ 0.4 (docs/design.md §11).
 *
 * - The audit app runs in a child process, as in production (producers' relays call it over the
 *   network), so client and server do not share one event loop.
 * - The load generator must not be the bottleneck on a 2-core box: it speaks gRPC over
 *   `node:http2` with mTLS directly and sends pre-encoded requests (one AppendRequest encoded
 *   once, fresh UUIDv7 ids written into its bytes per batch), so no client-side protobuf work is
 *   measured — the producers are other processes in production. The events are in the form the
 *   producers' outbox relay sends (newAuditEvent → outbox payload → outboxDeliveryEvent: details
 *   as canonical `details_json`).
 * - Append: fresh event ids in every batch (no duplicates), several producers in flight, each
 *   batch decoded, validated, de-duplicated, hashed, chained under the head lock and inserted.
 * - Baseline: one connection, one transaction per batch of 100, one multi-row INSERT of the
 *   same 16 columns (values precomputed, hashes included) into `bench_plain_insert`, a table with
 *   the same columns and primary key but none of the log's secondary indexes.
 * - Three interleaved rounds (Append, plain INSERT, indexed INSERT; 2 s each) after a warm-up;
 *   the table shows the medians, stderr the ratio of each round. Every table (the log and both
 *   baselines) keeps its rows across rounds, so all three grow alike.
 * Runnable alone: `node --conditions=source --import tsx tools/bench/audit.ts`.
 */
import { fork, type ChildProcess } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as http2 from "node:http2";
import { create, fromBinary, toBinary, toJsonString } from "@bufbuild/protobuf";
import { canonicalJson, newAuditEvent, outboxDeliveryEvent, SQLITE_CONNECTION_PRAGMAS } from "@lcp/persistence";
import { ensureDevPki } from "@lcp/pki";
import { AppendRequestSchema, AppendResponseSchema, AuditEventSchema, type AuditEvent } from "@lcp/proto/audit/v1/audit_service_pb";
import pg from "pg";
import { v7 as uuidv7 } from "uuid";
import { measureRate, median, printResults, type BenchResult } from "./result.js";

const BATCH = 100;
const PRODUCERS = 4;
const ROUNDS = 3;
const DURATION_MS = 2_000;
const WARMUP_MS = 750;

const COLUMNS = [
  "seq", "id", "occurred_at", "recorded_at", "actor_kind", "actor_id", "actor_roles", "action",
  "resource_type", "resource_id", "outcome", "request_id", "details", "producer", "prev_hash", "hash",
] as const;

// What licensing records for a revoke: a typical event, details included.
const DETAILS = { reason: "contract terminated", ticket: "OPS-1234", from: "ACTIVE", to: "LOCKED" };

/**
 * A batch as producers send it: each event made by `newAuditEvent`, stored as an outbox payload
 * and read back the way the outbox relay delivers it (details as canonical `details_json`).
 */
function batchOfEvents(): AuditEvent[] {
  const now = new Date();
  return Array.from({ length: BATCH }, (_, i) => {
    const recorded = newAuditEvent({
      action: "license.revoke",
      actor: { kind: "admin", id: "carol@example.org", roles: ["support"] },
      resource: { type: "license", id: `lic-${i}` },
      outcome: "success",
      requestId: randomUUID(),
      details: DETAILS,
      now,
    });
    return outboxDeliveryEvent({ payload: toJsonString(AuditEventSchema, recorded) });
  });
}

/**
 * Batches of the 16 values of stored rows, as the service would write them, made before the
 * clock starts so the baseline is the INSERT alone; only `seq` changes from batch to batch.
 */
function baselineBatches(driver: "sqlite" | "postgresql", count: number): unknown[][][] {
  const now = new Date();
  const at = driver === "sqlite" ? now.getTime() : now;
  return Array.from({ length: count }, () =>
    Array.from({ length: BATCH }, (_, i) => [
      0, uuidv7(), at, at, "admin", "carol@example.org", '["support"]', "license.revoke", "license", `lic-${i}`,
      "success", randomUUID(), canonicalJson(DETAILS), "licensing", randomBytes(32).toString("hex"), randomBytes(32).toString("hex"),
    ]),
  );
}

/**
 * The flat values of batch number `n`: seq gapless, ids unique and increasing like the UUIDv7s
 * producers make (so the unique index is appended to, as in the service).
 */
function baselineValues(batches: unknown[][][], n: number): unknown[] {
  const template = batches[n % batches.length]!;
  const out: unknown[] = [];
  template.forEach((row, i) => {
    const seq = n * BATCH + i + 1;
    out.push(seq, `0190a000-0000-7000-8000-${seq.toString(16).padStart(12, "0")}`, ...row.slice(2));
  });
  return out;
}

const TABLE_COLUMNS_SQLITE = `(seq bigint not null primary key, id text not null, occurred_at datetime not null, recorded_at datetime not null, actor_kind text not null, actor_id text not null, actor_roles text not null, action text not null, resource_type text not null, resource_id text not null, outcome text not null, request_id text not null, details text not null, producer text not null, prev_hash text not null, hash text not null)`;
const TABLE_COLUMNS_PG = `(seq bigint not null primary key, id varchar(36) not null, occurred_at timestamptz not null, recorded_at timestamptz not null, actor_kind varchar(16) not null, actor_id varchar(256) not null, actor_roles text not null, action varchar(128) not null, resource_type varchar(64) not null, resource_id varchar(256) not null, outcome varchar(16) not null, request_id varchar(128) not null, details text not null, producer varchar(64) not null, prev_hash varchar(64) not null, hash varchar(64) not null)`;

/**
 * A baseline table: `bench_plain_insert` (primary key only) or `bench_indexed_insert` (also the
 * log's own unique and secondary indexes, storage/entities.ts, for the informative baseline).
 * It lives across rounds and `batches` counts what it holds, so it grows like the log does
 * instead of starting empty each round.
 */
interface BaselineTable {
  readonly name: string;
  readonly indexes: readonly string[];
  batches: number;
}

function baselineTable(indexed: boolean): BaselineTable {
  const name = indexed ? "bench_indexed_insert" : "bench_plain_insert";
  const indexes = indexed
    ? [
        `create unique index ${name}_id on ${name} (id)`,
        `create index ${name}_action on ${name} (action, seq)`,
        `create index ${name}_resource on ${name} (resource_type, resource_id, seq)`,
        `create index ${name}_actor on ${name} (actor_id, seq)`,
        `create index ${name}_occurred on ${name} (occurred_at)`,
      ]
    : [];
  return { name, indexes, batches: 0 };
}

interface SqliteDb {
  pragma(sql: string): unknown;
  exec(sql: string): void;
  prepare(sql: string): { run(...params: unknown[]): unknown };
  transaction<T extends (...args: never[]) => unknown>(fn: T): T;
  close(): void;
}

/** Bare batched INSERT rate (rows/s) into SQLite: same file, same pragmas as the app. */
function sqliteBaseline(file: string, durationMs: number, table: BaselineTable): number {
  const Sqlite = createRequire(import.meta.url)("better-sqlite3") as new (file: string) => SqliteDb;
  const db = new Sqlite(file);
  try {
    for (const pragma of SQLITE_CONNECTION_PRAGMAS) db.pragma(pragma);
    if (table.batches === 0) {
      db.exec(`drop table if exists ${table.name}`);
      db.exec(`create table ${table.name} ${TABLE_COLUMNS_SQLITE}`);
      for (const sql of table.indexes) db.exec(sql);
    }
    const row = `(${COLUMNS.map(() => "?").join(",")})`;
    const insert = db.prepare(`insert into ${table.name} (${COLUMNS.join(",")}) values ${Array(BATCH).fill(row).join(",")}`);
    const insertBatch = db.transaction((values: unknown[]) => insert.run(...values));
    const batches = baselineBatches("sqlite", 64);
    const first = table.batches;
    const start = performance.now();
    while (performance.now() - start < durationMs) insertBatch(baselineValues(batches, table.batches++));
    return ((table.batches - first) * BATCH) / ((performance.now() - start) / 1000);
  } finally {
    db.close();
  }
}

/** Bare batched INSERT rate (rows/s) into PostgreSQL: one connection, a transaction per batch. */
async function pgBaseline(databaseUrl: string, schema: string, durationMs: number, table: BaselineTable): Promise<number> {
  const client = new pg.Client({ connectionString: databaseUrl, options: `-c search_path=${schema}` });
  await client.connect();
  try {
    if (table.batches === 0) {
      await client.query(`drop table if exists ${table.name}`);
      await client.query(`create table ${table.name} ${TABLE_COLUMNS_PG}`);
      for (const sql of table.indexes) await client.query(sql);
    }
    const placeholders = Array.from({ length: BATCH }, (_, r) => `(${COLUMNS.map((_, c) => `$${r * COLUMNS.length + c + 1}`).join(",")})`).join(",");
    const sql = `insert into ${table.name} (${COLUMNS.join(",")}) values ${placeholders}`;
    const batches = baselineBatches("postgresql", 64);
    const first = table.batches;
    const start = performance.now();
    while (performance.now() - start < durationMs) {
      await client.query("begin");
      await client.query({ name: table.name, text: sql, values: baselineValues(batches, table.batches++) });
      await client.query("commit");
    }
    return ((table.batches - first) * BATCH) / ((performance.now() - start) / 1000);
  } finally {
    await client.end();
  }
}

/**
 * A producer's connection: mTLS with the licensing certificate, gRPC framing by hand, and a
 * request template whose event ids are rewritten in place per batch.
 */
async function openProducer(url: string, caPem: string, cert: { certPem: string; keyPem: string }) {
  const template = Buffer.from(toBinary(AppendRequestSchema, create(AppendRequestSchema, { events: batchOfEvents() })));
  // Where each event's id sits in the encoded bytes (UUIDs are 36 ASCII bytes, unique).
  const idOffsets = fromBinary(AppendRequestSchema, template).events.map((e) => template.indexOf(e.id));
  if (idOffsets.some((o) => o < 0)) throw new Error("bench: could not locate event ids in the encoded request");
  const session = http2.connect(url, { ca: caPem, cert: cert.certPem, key: cert.keyPem });
  session.on("error", () => undefined);
  await new Promise<void>((resolve, reject) => {
    session.once("connect", () => resolve());
    session.once("error", reject);
  });
  const request = () => {
    const body = Buffer.allocUnsafe(5 + template.length);
    body[0] = 0;
    body.writeUInt32BE(template.length, 1);
    template.copy(body, 5);
    for (const offset of idOffsets) body.write(uuidv7(), 5 + offset, "latin1");
    return body;
  };
  return {
    append: () =>
      new Promise<void>((resolve, reject) => {
        const stream = session.request({
          ":method": "POST",
          ":path": "/audit.v1.AuditService/Append",
          "content-type": "application/grpc+proto",
          te: "trailers",
        });
        const chunks: Buffer[] = [];
        stream.on("data", (c: Buffer) => chunks.push(c));
        stream.on("trailers", (trailers) => {
          const status = trailers["grpc-status"];
          if (status !== "0") return reject(new Error(`Append failed: grpc-status ${String(status)} ${String(trailers["grpc-message"] ?? "")}`));
          const frame = Buffer.concat(chunks);
          const res = fromBinary(AppendResponseSchema, frame.subarray(5));
          if (res.appended !== BATCH) return reject(new Error(`expected ${BATCH} appended, got ${res.appended}`));
          resolve();
        });
        stream.on("error", reject);
        stream.end(request());
      }),
    close: () => session.close(),
  };
}

/** Starts the audit app in a child process (this file, with --serve) and resolves with its URL. */
async function startServer(dataDir: string, databaseUrl: string | undefined, schema: string | undefined): Promise<{ url: string; child: ChildProcess }> {
  const child = fork(fileURLToPath(import.meta.url), ["--serve", dataDir, schema ?? ""], {
    execArgv: ["--conditions=source", "--import", "tsx", ...(process.env.BENCH_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_PROF}`] : [])],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    env: { ...process.env, DATABASE_URL: databaseUrl ?? "" },
  });
  const url = await new Promise<string>((resolve, reject) => {
    child.once("message", (m) => resolve((m as { url: string }).url));
    child.once("exit", (code) => reject(new Error(`audit bench server exited with ${code}`)));
  });
  return { url, child };
}

async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  await exited;
}

async function benchOn(driver: "sqlite" | "postgresql", databaseUrl: string | undefined): Promise<BenchResult[]> {
  const dataDir = mkdtempSync(join(tmpdir(), "lcp-bench-audit-"));
  const schema = driver === "postgresql" ? `bench_audit_${randomBytes(4).toString("hex")}` : undefined;
  const pki = await ensureDevPki({ dir: join(dataDir, "pki"), services: ["audit", "licensing"] });
  const { url, child } = await startServer(dataDir, databaseUrl, schema);
  const rounds: { append: number; plain: number; indexed: number }[] = [];
  try {
    const producer = await openProducer(url, pki.caCertPem, pki.services.licensing!);
    try {
      const call = () => producer.append();
      const file = join(dataDir, "audit.sqlite");
      const tables = { plain: baselineTable(false), indexed: baselineTable(true) };
      const baseline = (indexed: boolean, ms: number) => {
        const table = indexed ? tables.indexed : tables.plain;
        return driver === "sqlite" ? Promise.resolve(sqliteBaseline(file, ms, table)) : pgBaseline(databaseUrl!, schema!, ms, table);
      };
      await measureRate(call, PRODUCERS, WARMUP_MS);
      await baseline(false, WARMUP_MS);
      await baseline(true, WARMUP_MS);
      // Interleaved rounds, medians reported: on a shared 2-core box the load shifts within
      // seconds, and one Append figure against baselines measured later swung the ratio 2×.
      for (let r = 0; r < ROUNDS; r++) {
        const append = (await measureRate(call, PRODUCERS, DURATION_MS)) * BATCH;
        rounds.push({ append, plain: await baseline(false, DURATION_MS), indexed: await baseline(true, DURATION_MS) });
      }
    } finally {
      producer.close();
    }
    const append = median(rounds.map((r) => r.append));
    const plain = median(rounds.map((r) => r.plain));
    const indexed = median(rounds.map((r) => r.indexed));
    console.error(`audit bench (${driver}): per-round Append/plain ratios ${rounds.map((r) => (r.append / r.plain).toFixed(2)).join(" ")}`);
    const name = `audit Append over mTLS (gRPC), batches of ${BATCH}, ${PRODUCERS} in flight (${driver})`;
    return [
      {
        name,
        value: append,
        unit: "events/s",
        baseline: `bare batched INSERT, ${BATCH} rows/tx, plain table (${driver})`,
        baselineValue: plain,
        ratio: append / plain,
        goal: "≥ 0.4",
      },
      {
        // Informative: the same INSERT paying for the log's indexes, so the table shows how much
        // of the gap is storage design and how much is the service (RPC, decode, hash, lock).
        name,
        value: append,
        unit: "events/s",
        baseline: `same INSERT into a table with the log's indexes (${driver})`,
        baselineValue: indexed,
        ratio: append / indexed,
      },
    ];
  } finally {
    await stopServer(child);
    if (schema) {
      const c = new pg.Client({ connectionString: databaseUrl });
      await c.connect();
      await c.query(`drop schema if exists "${schema}" cascade`);
      await c.end();
    }
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Runs the audit benchmark on SQLite, and on PostgreSQL when DATABASE_URL is set. */
export async function benchAudit(): Promise<BenchResult[]> {
  const results = await benchOn("sqlite", undefined);
  const databaseUrl = process.env.DATABASE_URL;
  if (databaseUrl) results.push(...(await benchOn("postgresql", databaseUrl)));
  else console.error("audit bench: DATABASE_URL unset, PostgreSQL skipped");
  return results;
}

/** The child side: the real audit app on the bench's dev PKI, reporting its URL to the parent. */
async function serve(dataDir: string, schema: string): Promise<void> {
  const { startAudit } = await import("@lcp/audit/app");
  const { ensureDevAdminIssuer } = await import("@lcp/tokens");
  const pki = await ensureDevPki({ dir: join(dataDir, "pki"), services: ["audit", "licensing"] });
  const own = pki.services.audit!;
  const dev = await ensureDevAdminIssuer(join(dataDir, "pki"));
  const databaseUrl = process.env.DATABASE_URL || undefined;
  const app = await startAudit({
    app: "audit",
    host: "127.0.0.1",
    port: 0,
    dataDir,
    ...(databaseUrl ? { databaseUrl } : {}),
    databaseSchema: schema || undefined,
    trustDomain: "lcp.local",
    tls: { certPem: own.certPem, keyPem: own.keyPem, caPem: pki.caCertPem, source: "files" },
    adminTokens: { issuer: dev.issuer, audience: dev.audience, jwks: dev.jwks, rolesClaim: "roles", dev: true },
    // Request logs at warn: the figure is the Append path, not terminal output.
    logLevel: "warn",
    maxClockSkewMs: 5 * 60_000,
  });
  process.send?.({ url: app.url });
  process.once("SIGTERM", () => void app.close().then(() => process.exit(0)));
}

const entry = process.argv[1] ? fileURLToPath(import.meta.url) === process.argv[1] : false;
if (process.argv[2] === "--serve") {
  await serve(process.argv[3]!, process.argv[4] ?? "");
} else if (entry) {
  printResults(await benchAudit());
}
