/**
 * `npm run rotate-kek [-- --check] [--batch-size N] [--schema NAME]`: moves every stored private
 * key (token signing keys, appliance CAs) onto the key-encryption key in `KEK`/`KEK_FILE`,
 * opening the old ones with `KEK_PREVIOUS`/`KEK_PREVIOUS_FILE`; reads `DATA_DIR` and
 * `DATABASE_URL` like the service. Runs beside the serving replicas (they must already have the
 * new KEK and the previous one); safe to run again or after an interruption.
 *
 * `--check` changes nothing: it prints how many keys each KEK wraps and exits 1 while any key is
 * not under `KEK` — run it before dropping `KEK_PREVIOUS`.
 *
 * Exit codes: 0 done (or `--check` clean), 1 failure (or `--check` found keys to move), 2 a refused
 * setting or argument (one line naming it).
 */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { createOrm, defaultSchemaFor, type Database } from "@lcp/persistence";
import { ConfigError } from "@lcp/rpc";
import { createKeyring, kekFingerprint } from "@lcp/tokens";
import type { AuditActor } from "../audit.js";
import { readKekSettings } from "../config.js";
import { kekCensus, MAX_BATCH_SIZE, rewrapAll } from "../kek/rewrap.js";
import { entities, migrations } from "../storage/schema.js";

/** Who the audit trail names for a rotation: this command, not the running service. */
const ROTATE_KEK_ACTOR: AuditActor = { kind: "system", id: "rotate-kek" };

const USAGE = "usage: npm run rotate-kek [-- --check] [--batch-size 1..1000] [--schema NAME]";

class UsageError extends Error {
  override name = "UsageError";
}

function options(argv: string[]): { check: boolean; batchSize: number; schema: string | undefined } {
  let values: { check?: boolean; "batch-size"?: string; schema?: string };
  try {
    ({ values } = parseArgs({ args: argv, options: { check: { type: "boolean" }, "batch-size": { type: "string" }, schema: { type: "string" } }, strict: true }));
  } catch (err) {
    throw new UsageError((err as Error).message.split("\n")[0]!);
  }
  const raw = values["batch-size"] ?? "100";
  const batchSize = /^\d{1,4}$/.test(raw) ? Number(raw) : NaN;
  if (!(batchSize >= 1 && batchSize <= MAX_BATCH_SIZE)) throw new UsageError(`--batch-size must be a whole number from 1 to ${MAX_BATCH_SIZE}`);
  if (values.schema !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(values.schema)) throw new UsageError("--schema must be a PostgreSQL schema name (lowercase letters, digits, _)");
  return { check: values.check === true, batchSize, schema: values.schema };
}

async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const args = options(argv);
  const settings = await readKekSettings(env);
  if (!settings.kek) throw new ConfigError("KEK", "is required (or KEK_FILE): it is the key-encryption key every private key is moved onto");
  const keyring = createKeyring(settings.kek, settings.previous);
  const databaseUrl = env.DATABASE_URL?.trim() || undefined;
  const dataDir = resolve(env.DATA_DIR?.trim() || "data");
  // No migrations from a tool: the service owns its schema; an older database is migrated by starting it.
  let db: Database;
  try {
    db = await createOrm({ app: "signing-keys", databaseUrl, dataDir, schema: args.schema ?? defaultSchemaFor("signing-keys"), entities, migrations, migrate: false, pool: { max: 2 } });
  } catch (err) {
    if ((err as Error).name === "DatabaseConfigError") throw new ConfigError("DATABASE_URL", (err as Error).message);
    throw err;
  }
  try {
    const current = kekFingerprint(keyring.current);
    if (args.check) {
      const census = await kekCensus(db);
      const others = Object.entries(census).filter(([fp]) => fp !== current);
      const left = others.reduce((n, [, count]) => n + count, 0);
      console.log(`rotate-kek: ${census[current] ?? 0} keys under KEK ${current}${others.length ? `; ${others.map(([fp, n]) => `${n} under ${fp}`).join(", ")}` : ""}`);
      if (left > 0) console.log(`rotate-kek: ${left} keys still to move; keep KEK_PREVIOUS and run npm run rotate-kek`);
      return left > 0 ? 1 : 0;
    }
    const result = await rewrapAll({
      db,
      keyring,
      batchSize: args.batchSize,
      now: () => new Date(),
      actor: ROTATE_KEK_ACTOR,
      onBatch: ({ table, rewrapped }) => console.log(`rotate-kek: ${rewrapped} re-wrapped so far (${table})`),
    });
    console.log(`rotate-kek: done: ${result.rewrapped} keys re-wrapped under KEK ${result.kek}, ${result.alreadyCurrent} already were`);
    return 0;
  } finally {
    await db.close();
  }
}

main(process.argv.slice(2), process.env).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      console.error(`rotate-kek: ${err.message}\n${USAGE}`);
      process.exitCode = 2;
    } else if (err instanceof ConfigError) {
      console.error(`rotate-kek: configuration error: ${err.message}`);
      process.exitCode = 2;
    } else {
      console.error(`rotate-kek: failed: ${(err as Error)?.message ?? String(err)}`);
      process.exitCode = 1;
    }
  },
);
