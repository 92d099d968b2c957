/**
 * The signing-keys configuration: the settings every app shares (`readCommonConfig`: HOST, PORT,
 * DATA_DIR, DATABASE_URL, TRUST_DOMAIN, TLS_*, OIDC_*, LOG_LEVEL) plus this app's own, parsed once
 * at start. A bad value fails fast with a ConfigError naming the variable.
 *
 * - `KEK`: the key-encryption key, base64 or hex of 32 bytes; or `KEK_FILE`: a file holding it
 *   (not both). With neither, a development KEK is generated into `<DATA_DIR>/kek` (mode 0600)
 *   — refused when `NODE_ENV=production`, because a generated KEK next to the database it
 *   protects protects nothing.
 * - `KEK_PREVIOUS` / `KEK_PREVIOUS_FILE`: during a KEK rotation, the KEK being replaced (same
 *   encodings, not both). Keys wrapped under it are still opened; new keys are wrapped under
 *   `KEK`. Needs `KEK`/`KEK_FILE`, and must differ from it. Drop it once `npm run rotate-kek`
 *   reports every key under the new KEK.
 * - `TOKEN_ISSUER`: the `iss` of every signed token; default `https://lcp.local/licensing`.
 * - `AUDIT_URL`: the audit service (`https://host:7445`); when set, the outbox is delivered to
 *   its Append with this app's service certificate; when unset, events wait in the outbox.
 */
import { readFile } from "node:fs/promises";
import type { Logger } from "pino";
import { ConfigError, readCommonConfig, type CommonConfig } from "@lcp/rpc";
import { kekFingerprint, parseKek } from "@lcp/tokens";

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
  /** KEKs being rotated away from (`KEK_PREVIOUS`): they only open keys wrapped before the rotation. */
  kekPrevious?: Uint8Array[] | undefined;
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
  if (production && get("KEK") === undefined && get("KEK_FILE") === undefined) {
    throw new ConfigError("KEK", "is required when NODE_ENV=production (or KEK_FILE); the generated development KEK is refused");
  }
  const kekSettings = await readKekSettings(env);

  const common = await readCommonConfig(env, "signing-keys", { port: DEFAULT_PORT });
  const kek: KekSource = kekSettings.kek ? { kind: "configured", key: kekSettings.kek } : { kind: "dev", dataDir: common.dataDir };
  return { ...common, kek, kekPrevious: kekSettings.previous, tokenIssuer, auditUrl };
}

/** The KEK settings of the environment: the configured KEK (undefined: none set) and the previous ones. */
export interface KekSettings {
  kek: Uint8Array | undefined;
  previous: Uint8Array[];
}

/**
 * Reads `KEK`/`KEK_FILE` and `KEK_PREVIOUS`/`KEK_PREVIOUS_FILE` (each pair: one or neither). Shared
 * by the service and `npm run rotate-kek`, so both read the same keys the same way.
 */
export async function readKekSettings(env: NodeJS.ProcessEnv): Promise<KekSettings> {
  const get = (name: string): string | undefined => {
    const value = env[name]?.trim();
    return value === "" ? undefined : value;
  };
  const kek = await readKekPair(get, "KEK", "KEK_FILE");
  const previous = await readKekPair(get, "KEK_PREVIOUS", "KEK_PREVIOUS_FILE");
  if (previous !== undefined) {
    const variable = get("KEK_PREVIOUS") !== undefined ? "KEK_PREVIOUS" : "KEK_PREVIOUS_FILE";
    if (kek === undefined) throw new ConfigError(variable, "needs KEK or KEK_FILE: a previous key-encryption key is only read while rotating to a configured one");
    if (kekFingerprint(previous) === kekFingerprint(kek)) throw new ConfigError(variable, "is the same key as KEK; set KEK to the new key and KEK_PREVIOUS to the old one");
  }
  return { kek, previous: previous ? [previous] : [] };
}

async function readKekPair(get: (name: string) => string | undefined, valueVar: string, fileVar: string): Promise<Uint8Array | undefined> {
  const value = get(valueVar);
  const file = get(fileVar);
  if (value !== undefined && file !== undefined) throw new ConfigError(fileVar, `set ${valueVar} or ${fileVar}, not both`);
  if (value !== undefined) return kekFrom(valueVar, value);
  if (file !== undefined) return kekFrom(fileVar, await readKekFile(fileVar, file));
  return undefined;
}

function kekFrom(variable: string, value: string): Uint8Array {
  try {
    return parseKek(value);
  } catch (err) {
    // parseKek's message never echoes the value, so it is safe to show.
    throw new ConfigError(variable, (err as Error).message);
  }
}

async function readKekFile(variable: string, path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    throw new ConfigError(variable, `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
}

function isHttpUrl(value: string, protocols = ["https:", "http:"]): boolean {
  try {
    return protocols.includes(new URL(value).protocol);
  } catch {
    return false;
  }
}
