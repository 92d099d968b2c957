/**
 * The signing-keys configuration: the settings every app shares (`readCommonConfig`: HOST, PORT,
 * DATA_DIR, DATABASE_URL, TRUST_DOMAIN, TLS_*, OIDC_*, LOG_LEVEL) plus this app's own, parsed once
 * at start. A bad value fails fast with a ConfigError naming the variable.
 *
 * - `KEK`: the key-encryption key, base64 or hex of 32 bytes; or `KEK_FILE`: a file holding it
 *   (not both). With neither, a development KEK is generated into `<DATA_DIR>/kek` (mode 0600)
 *   — refused when `NODE_ENV=production`, because a generated KEK next to the database it
 *   protects protects nothing.
 * - `TOKEN_ISSUER`: the `iss` of every signed token; default `https://lcp.local/licensing`.
 * - `AUDIT_URL`: the audit service (`https://host:7445`); when set, the outbox is delivered to
 *   its Append with this app's service certificate; when unset, events wait in the outbox.
 */
import { readFile } from "node:fs/promises";
import type { Logger } from "pino";
import { ConfigError, readCommonConfig, type CommonConfig } from "@lcp/rpc";
import { parseKek } from "@lcp/tokens";

/** The default port of signing-keys (docs/design.md §12). */
export const DEFAULT_PORT = 7444;
/** The default `iss` of signed tokens. */
export const DEFAULT_TOKEN_ISSUER = "https://lcp.local/licensing";

/** Where the key-encryption key comes from. */
export type KekSource =
  /** From `KEK` / `KEK_FILE` (or given directly by a test). */
  | { kind: "configured"; key: Uint8Array }
  /** Development only: generated into (and read back from) `<dataDir>/kek`. */
  | { kind: "dev"; dataDir: string };

/** Everything `startSigningKeys` needs. */
export interface SigningKeysConfig extends CommonConfig {
  kek: KekSource;
  /** `iss` of every signed token. */
  tokenIssuer: string;
  /** The audit service's URL; unset leaves events in the outbox. */
  auditUrl?: string | undefined;
  /** PostgreSQL schema for this app's tables (default `signing_keys`); tests isolate with it. */
  databaseSchema?: string | undefined;
  /** Test seams: the clock, how often the ACTIVE key is re-read (default 1 s), a logger. */
  now?: () => Date;
  activeKeyRecheckMs?: number;
  logger?: Logger;
}

/** Reads and validates the signing-keys configuration from the environment. */
export async function readSigningKeysConfig(env: NodeJS.ProcessEnv): Promise<SigningKeysConfig> {
  const get = (name: string): string | undefined => {
    const value = env[name]?.trim();
    return value === "" ? undefined : value;
  };
  const production = get("NODE_ENV") === "production";

  // App settings first: they need no I/O, so a typo fails before any PKI or KEK is generated.
  const tokenIssuer = get("TOKEN_ISSUER") ?? DEFAULT_TOKEN_ISSUER;
  if (!isHttpUrl(tokenIssuer)) throw new ConfigError("TOKEN_ISSUER", "must be an http(s) URL (it becomes the tokens' iss)");
  const auditUrl = get("AUDIT_URL");
  if (auditUrl !== undefined && !isHttpUrl(auditUrl, ["https:"])) {
    throw new ConfigError("AUDIT_URL", "must be an https:// URL of the audit service");
  }
  const kekValue = get("KEK");
  const kekFile = get("KEK_FILE");
  if (kekValue !== undefined && kekFile !== undefined) throw new ConfigError("KEK_FILE", "set KEK or KEK_FILE, not both");
  if (production && kekValue === undefined && kekFile === undefined) {
    throw new ConfigError("KEK", "is required when NODE_ENV=production (or KEK_FILE); the generated development KEK is refused");
  }

  const common = await readCommonConfig(env, "signing-keys", { port: DEFAULT_PORT });
  let kek: KekSource;
  if (kekValue !== undefined) kek = { kind: "configured", key: kekFrom("KEK", kekValue) };
  else if (kekFile !== undefined) kek = { kind: "configured", key: kekFrom("KEK_FILE", await readKekFile(kekFile)) };
  else kek = { kind: "dev", dataDir: common.dataDir };

  return { ...common, kek, tokenIssuer, auditUrl };
}

function kekFrom(variable: string, value: string): Uint8Array {
  try {
    return parseKek(value);
  } catch (err) {
    // parseKek's message never echoes the value, so it is safe to show.
    throw new ConfigError(variable, (err as Error).message);
  }
}

async function readKekFile(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    throw new ConfigError("KEK_FILE", `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
}

function isHttpUrl(value: string, protocols = ["https:", "http:"]): boolean {
  try {
    return protocols.includes(new URL(value).protocol);
  } catch {
    return false;
  }
}
