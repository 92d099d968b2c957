/**
 * `npm run token -- --role <role>`
 *
 * Signs in to the running development identity provider (`npm start`'s, https://localhost:7441, or
 * `OIDC_ISSUER`) as the dev user of that role, through the real authorization-code flow with PKCE,
 * and prints the access token. Only the token goes to stdout, so
 * `$(npm run -s token -- --role support)` works; every error goes to stderr with exit code 2.
 */
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { isRole, ROLES } from "@lcp/domain";
import { DEV_IDP_PORT, DEV_IDP_STATE_DIR } from "../dev-idp/constants.js";
import { readDevUsers } from "../dev-idp/state.js";
import { SignInError, signInAs } from "../dev-idp/sign-in.js";

const HELP = `Usage: npm run -s token -- --role <role>

Signs in to the development identity provider that npm start runs (https://localhost:${DEV_IDP_PORT})
as its dev user for <role> and prints the access token (valid for 10 minutes; ask again after).

  --role <role>   exactly one of: ${ROLES.join(", ")}
                  Each dev user has one role, so a token carries one role. To act with
                  another role, ask for another token.
  -h, --help      show this help

Environment:
  DATA_DIR       npm start's data folder (default ./data): the dev users' passwords are read from
                 $DATA_DIR/dev-idp/users.json and the CA from $DATA_DIR/pki/ca.crt
  OIDC_ISSUER    the identity provider to sign in to (default https://localhost:${DEV_IDP_PORT})
  OIDC_CA_FILE   the CA its certificate chains to (default $DATA_DIR/pki/ca.crt)

Example:
  grpcurl -cacert data/pki/ca.crt -H "authorization: Bearer $(npm run -s token -- --role support)" \\
    localhost:7443 licensing.v1.LicensingService/ListLicenses
`;

class UsageError extends Error {
  override name = "UsageError";
}

/** A failure that is not a usage mistake: printed as it is, exit 2. */
class TokenError extends Error {
  override name = "TokenError";
}

async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        role: { type: "string", multiple: true },
        // Declared only to be refused with a reason rather than as unknown options.
        ttl: { type: "string" },
        subject: { type: "string" },
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
  if (values.ttl !== undefined) {
    throw new UsageError("--ttl is no longer accepted: the identity provider sets the lifetime (10 minutes); ask for a new token when it expires");
  }
  if (values.subject !== undefined) {
    throw new UsageError("--subject is no longer accepted: the subject is the dev user of the role (--role support signs in as support)");
  }
  const roles = values.role ?? [];
  if (roles.length === 0) throw new UsageError(`--role is required (one of: ${ROLES.join(", ")})`);
  if (roles.length > 1) throw new UsageError("--role may be given once: each dev user has exactly one role, so ask for one token per role");
  const role = roles[0]!;
  if (!isRole(role)) throw new UsageError(`unknown role ${JSON.stringify(role.slice(0, 64))}; known roles: ${ROLES.join(", ")}`);

  const get = (name: string) => env[name]?.trim() || undefined;
  const dataDir = resolve(get("DATA_DIR") ?? "./data");
  const issuer = get("OIDC_ISSUER") ?? `https://localhost:${DEV_IDP_PORT}`;
  const caFile = get("OIDC_CA_FILE") ?? join(dataDir, "pki", "ca.crt");
  const stateDir = join(dataDir, DEV_IDP_STATE_DIR);

  const users = await readDevUsers(stateDir).catch((error: unknown) => {
    const missing = (error as NodeJS.ErrnoException).code === "ENOENT";
    throw new TokenError(
      missing ? `no dev users in ${stateDir}: the dev identity provider is not set up; start it with npm start` : (error as Error).message,
    );
  });
  const user = users.find((u) => u.role === role);
  if (!user) throw new TokenError(`no dev user with role ${role} in ${stateDir}; restart npm start to add it`);
  const caPem = await readFile(caFile, "utf8").catch((error: unknown) => {
    throw new TokenError(`cannot read the CA ${caFile} (${(error as NodeJS.ErrnoException).code ?? "error"}); start npm start once to make the dev PKI, or set OIDC_CA_FILE`);
  });

  try {
    const { accessToken } = await signInAs({ issuer, caPem, username: user.username, password: user.password });
    process.stdout.write(`${accessToken}\n`);
  } catch (error) {
    if (error instanceof SignInError && error.reason === "unreachable") {
      throw new TokenError(`the dev identity provider at ${issuer} is not running (${error.message}); start it with npm start`);
    }
    throw new TokenError(`signing in as ${user.username} failed: ${(error as Error).message}`);
  }
}

main(process.argv.slice(2), process.env).catch((error: unknown) => {
  const message = error instanceof UsageError ? `${error.message}\nRun with --help for usage.` : String((error as Error)?.message ?? error);
  process.stderr.write(`token: ${message}\n`);
  process.exitCode = 2;
});
