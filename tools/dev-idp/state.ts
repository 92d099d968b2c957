/**
 * What the development identity provider keeps across restarts, in its state folder (mode 0700,
 * every file 0600, each made once and reused): its token-signing key, its cookie-signing keys, the
 * dev users with their generated passwords, and the console client's secret.
 */
import { randomBytes } from "node:crypto";
import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ROLES, isRole, type Role } from "@lcp/domain";
import { readOrCreateFile } from "@lcp/tokens";
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from "jose";

/** A development user: one per role, named after it. */
export interface DevUser {
  username: string;
  password: string;
  role: Role;
  name: string;
}

/** The files in the state folder, by what they hold. */
export const DEV_IDP_FILES = {
  /** The private ES256 JWK that signs ID and access tokens (its public half is served at /jwks). */
  signingKey: "signing-key.jwk",
  /** Keygrip keys for the provider's signed cookies, so sessions survive a restart of the browser side. */
  cookieKeys: "cookie-keys.json",
  /** `{ "users": DevUser[] }`: usernames, roles, display names and generated passwords. */
  users: "users.json",
  /** The `lcp-console` client secret, alone in the file (no newline): `OIDC_CLIENT_SECRET_FILE` of the console. */
  consoleClientSecret: "console-client-secret",
} as const;

/** Everything {@link ensureDevIdpState} loads. */
export interface DevIdpState {
  signingJwk: JWK & { kid: string };
  cookieKeys: string[];
  users: DevUser[];
  consoleClientSecret: string;
  consoleClientSecretFile: string;
}

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/** `length` random base32 characters (5 bits each): 16 of them are 80 bits, plenty for a dev password. */
export function randomBase32(length: number): string {
  const bytes = randomBytes(length);
  let out = "";
  for (let i = 0; i < length; i++) out += BASE32[bytes[i]! & 31];
  return out;
}

/** A user's display name: "Dev support", "Dev super admin". */
function displayName(role: Role): string {
  return `Dev ${role.replaceAll("_", " ")}`;
}

/**
 * Loads the state in `stateDir`, creating what is missing (the folder 0700, each file 0600, once):
 * a user for a role added since the file was written is added with a new password, and every
 * existing password is kept. A file that does not hold what it should fails with its path.
 */
export async function ensureDevIdpState(stateDir: string): Promise<DevIdpState> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  await chmod(stateDir, 0o700);
  const path = (name: string) => join(stateDir, name);

  const keyText = await readOrCreateFile(path(DEV_IDP_FILES.signingKey), async () => {
    const { privateKey } = await generateKeyPair("ES256", { extractable: true });
    const jwk = await exportJWK(privateKey);
    const kid = await calculateJwkThumbprint({ kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y }, "sha256");
    return `${JSON.stringify({ ...jwk, kid, alg: "ES256", use: "sig" }, null, 2)}\n`;
  });
  const signingJwk = parseJson(keyText, path(DEV_IDP_FILES.signingKey)) as JWK;
  if (signingJwk.kty !== "EC" || signingJwk.crv !== "P-256" || !signingJwk.d || typeof signingJwk.kid !== "string") {
    throw new Error(`${path(DEV_IDP_FILES.signingKey)}: not a private P-256 JWK with a kid; delete it to make a new key`);
  }

  const cookieText = await readOrCreateFile(path(DEV_IDP_FILES.cookieKeys), () => `${JSON.stringify([randomBytes(32).toString("base64url")])}\n`);
  const cookieKeys = parseJson(cookieText, path(DEV_IDP_FILES.cookieKeys));
  if (!Array.isArray(cookieKeys) || cookieKeys.length === 0 || !cookieKeys.every((k) => typeof k === "string" && k.length >= 32)) {
    throw new Error(`${path(DEV_IDP_FILES.cookieKeys)}: not a list of cookie keys; delete it to make new ones`);
  }

  const users = await ensureUsers(path(DEV_IDP_FILES.users));

  const consoleClientSecretFile = path(DEV_IDP_FILES.consoleClientSecret);
  const consoleClientSecret = (await readOrCreateFile(consoleClientSecretFile, () => randomBytes(32).toString("base64url"))).trim();
  if (!/^[A-Za-z0-9_-]{32,256}$/.test(consoleClientSecret)) {
    throw new Error(`${consoleClientSecretFile}: not a client secret; delete it to make a new one`);
  }

  return { signingJwk: signingJwk as JWK & { kid: string }, cookieKeys: cookieKeys as string[], users, consoleClientSecret, consoleClientSecretFile };
}

/** The dev users written in `stateDir` by a provider that ran there; throws (ENOENT included) when there are none. */
export async function readDevUsers(stateDir: string): Promise<DevUser[]> {
  const file = join(stateDir, DEV_IDP_FILES.users);
  return parseUsers(await readFile(file, "utf8"), file);
}

async function ensureUsers(file: string): Promise<DevUser[]> {
  const makeUser = (role: Role): DevUser => ({ username: role, password: randomBase32(16), role, name: displayName(role) });
  const text = await readOrCreateFile(file, () => serialiseUsers(ROLES.map(makeUser)));
  const users = parseUsers(text, file);
  const missing = ROLES.filter((role) => !users.some((u) => u.role === role));
  if (missing.length === 0) return users;
  const all = [...users, ...missing.map(makeUser)];
  const temp = `${file}.${randomBytes(4).toString("hex")}.tmp`;
  await writeFile(temp, serialiseUsers(all), { mode: 0o600, flag: "wx" });
  await rename(temp, file);
  return all;
}

function serialiseUsers(users: readonly DevUser[]): string {
  return `${JSON.stringify({ users }, null, 2)}\n`;
}

function parseUsers(text: string, file: string): DevUser[] {
  const parsed = parseJson(text, file) as { users?: unknown };
  const bad = () => new Error(`${file}: not a list of dev users; delete it to make new users and passwords`);
  if (!Array.isArray(parsed?.users)) throw bad();
  return parsed.users.map((u: unknown): DevUser => {
    const { username, password, role, name } = (u ?? {}) as Record<string, unknown>;
    if (typeof username !== "string" || typeof password !== "string" || typeof role !== "string" || typeof name !== "string") throw bad();
    if (!isRole(role) || username.length === 0 || username.length > 256 || password.length < 8 || password.length > 256) throw bad();
    return { username, password, role, name };
  });
}

function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new Error(`${file}: not JSON; delete it to have it made again`);
  }
}
