/**
 * The development identity provider as a process (`npm start` runs it first; it can run alone:
 * `node --conditions=source --import tsx tools/dev-idp/main.ts`). Reads `DATA_DIR` (default
 * `./data`; its dev PKI in `pki/`, its state in `dev-idp/`), `HOST`, `PORT` (default 7441) and
 * `CONSOLE_URL` (default `https://localhost:7440`: the console's redirect URIs hang off it), prints
 * the issuer and every dev user with their password, logs `dev-idp ready`, and exits 0 on
 * SIGINT/SIGTERM, 2 on a refused configuration (NODE_ENV=production included), 1 on any other
 * failure to start. The service runner of @lcp/service is for apps only (docs/CONVENTIONS.md), so
 * the same exit codes are kept here by hand.
 */
import { join, resolve } from "node:path";
import { ensureDevPki } from "@lcp/pki";
import { ConfigError, createLogger, parsePort } from "@lcp/rpc";
import { DEV_IDP_PORT, DEV_IDP_STATE_DIR, startDevIdentityProvider, type DevIdentityProvider } from "./provider.js";

const EXIT_CONFIG_ERROR = 2;
const EXIT_FAILURE = 1;

interface DevIdpConfig {
  host: string;
  port: number;
  dataDir: string;
  consoleUrl: URL;
}

function readConfig(env: NodeJS.ProcessEnv): DevIdpConfig {
  const get = (name: string) => {
    const value = env[name]?.trim();
    return value === "" ? undefined : value;
  };
  if (get("NODE_ENV") === "production") {
    throw new ConfigError("NODE_ENV", "the development identity provider never runs in production; configure OIDC_ISSUER, OIDC_AUDIENCE and OIDC_JWKS_URL of your organisation's identity provider instead");
  }
  const consoleText = get("CONSOLE_URL") ?? "https://localhost:7440";
  let consoleUrl: URL;
  try {
    consoleUrl = new URL(consoleText);
  } catch {
    throw new ConfigError("CONSOLE_URL", "is not a URL");
  }
  if (consoleUrl.protocol !== "https:" || consoleUrl.pathname !== "/" || consoleUrl.search || consoleUrl.hash) {
    throw new ConfigError("CONSOLE_URL", "must be the console's https origin, e.g. https://localhost:7440");
  }
  return {
    host: get("HOST") ?? "127.0.0.1",
    port: parsePort(get("PORT"), DEV_IDP_PORT),
    dataDir: resolve(get("DATA_DIR") ?? "data"),
    consoleUrl,
  };
}

async function start(config: DevIdpConfig): Promise<DevIdentityProvider> {
  const pki = await ensureDevPki({ dir: join(config.dataDir, "pki"), services: ["dev-idp"] });
  const own = pki.services["dev-idp"]!;
  const idp = await startDevIdentityProvider({
    host: config.host,
    port: config.port,
    tls: { certPem: own.certPem, keyPem: own.keyPem },
    stateDir: join(config.dataDir, DEV_IDP_STATE_DIR),
    consoleRedirectUris: [new URL("/auth/callback", config.consoleUrl).href],
    consolePostLogoutRedirectUris: [new URL("/auth/signed-out", config.consoleUrl).href],
  });
  const lines = [`dev identity provider ${idp.issuer}`, ...idp.users.map((u) => `  ${u.role}  user ${u.username}  password ${u.password}`)];
  console.log(lines.join("\n"));
  createLogger("dev-idp").info({ url: idp.issuer }, "dev-idp ready");
  return idp;
}

let idp: DevIdentityProvider;
try {
  idp = await start(readConfig(process.env));
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(`dev-idp: configuration error: ${err.message}`);
    process.exit(EXIT_CONFIG_ERROR);
  }
  console.error("dev-idp: failed to start", err);
  process.exit(EXIT_FAILURE);
}
const stop = () => {
  idp.close().then(
    () => process.exit(0),
    () => process.exit(EXIT_FAILURE),
  );
};
process.once("SIGINT", stop);
process.once("SIGTERM", stop);
