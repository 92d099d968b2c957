/**
 * `npm run token -- --role <role> [--role <role>…] [--ttl <duration>] [--subject <s>]`
 *
 * Mints an admin bearer token from the development issuer in `$DATA_DIR/pki` (created on first
 * use). Only the token goes to stdout, so `$(npm run -s token -- --role support)` works; every
 * error goes to stderr with exit code 2.
 */
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { isRole, ROLES } from "@lcp/domain";
import { ensureDevAdminIssuer, parseDuration } from "@lcp/tokens";

const DEFAULT_TTL = "1h";
// A day at most: these are development tokens, and a leaked one should not outlive the day.
const MAX_TTL_MS = 24 * 3_600_000;

const HELP = `Usage: npm run -s token -- --role <role> [--role <role>...] [--ttl <duration>] [--subject <name>]

Prints an admin bearer token minted by the development issuer in $DATA_DIR/pki (default ./data/pki).

  --role <role>      role to grant; repeat for several. One of: ${ROLES.join(", ")}
  --ttl <duration>   lifetime, e.g. 15m, 1h, 8h (default ${DEFAULT_TTL}, at most 24h)
  --subject <name>   the token's subject (default dev-admin)
  -h, --help         show this help

Example:
  grpcurl -cacert data/pki/ca.crt -H "authorization: Bearer $(npm run -s token -- --role support)" \\
    localhost:7443 licensing.v1.LicensingService/ListLicenses
`;

class UsageError extends Error {
  override name = "UsageError";
}

async function main(argv: string[]): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        role: { type: "string", multiple: true },
        ttl: { type: "string", default: DEFAULT_TTL },
        subject: { type: "string", default: "dev-admin" },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  const roles = values.role ?? [];
  if (roles.length === 0) throw new UsageError(`--role is required (one of: ${ROLES.join(", ")})`);
  for (const role of roles) {
    if (!isRole(role)) throw new UsageError(`unknown role ${JSON.stringify(role)}; known roles: ${ROLES.join(", ")}`);
  }
  let ttlMs: number;
  try {
    ttlMs = parseDuration(values.ttl);
  } catch (error) {
    throw new UsageError(`--ttl: ${(error as Error).message}`);
  }
  if (ttlMs < 1000 || ttlMs > MAX_TTL_MS) throw new UsageError("--ttl must be between 1s and 24h");
  if (!values.subject) throw new UsageError("--subject must not be empty");

  const dataDir = resolve(process.env["DATA_DIR"] || "./data");
  const issuer = await ensureDevAdminIssuer(join(dataDir, "pki"));
  const token = await issuer.mint({ subject: values.subject, roles: [...new Set(roles)], ttlSeconds: Math.floor(ttlMs / 1000) });
  process.stdout.write(`${token}\n`);
}

main(process.argv.slice(2)).catch((error: unknown) => {
  const message = error instanceof UsageError ? `${error.message}\nRun with --help for usage.` : String((error as Error)?.message ?? error);
  process.stderr.write(`token: ${message}\n`);
  process.exitCode = 2;
});
