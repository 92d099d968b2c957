/**
 * Envelope encryption for private keys at rest (docs/design.md §6): AES-256-GCM under a
 * key-encryption key (KEK) from configuration, or in development one generated into the data folder.
 *
 * A KEK is rotated without downtime through a {@link Keyring}: new secrets are wrapped under its
 * current KEK, and a secret is opened under whichever KEK of the ring wrapped it, found by the
 * KEK fingerprint each `v2` envelope carries (older `v1` envelopes carry none, so every KEK of the
 * ring is tried). The fingerprint is a truncated hash: it names a KEK without revealing it.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { join } from "node:path";
import { readOrCreateFile } from "./write-file-once.js";

const VERSION = "v2";
const LEGACY_VERSION = "v1";
const FINGERPRINT = /^[0-9a-f]{16}$/;
const IV_BYTES = 12; // the GCM standard nonce size; random per wrap, so never reused under one KEK
const TAG_BYTES = 16;
const KEK_BYTES = 32;

/** Thrown when a wrapped secret cannot be opened: tampered, wrong KEK, wrong AAD or not a `v1.`/`v2.` envelope. */
export class KeyWrapError extends Error {
  override name = "KeyWrapError";
}

/**
 * Thrown when a `v2` envelope names a KEK the ring does not hold: the process runs without the
 * KEK the secret was wrapped under (e.g. a replica still on the old KEK after a rotation).
 */
export class KekNotConfiguredError extends KeyWrapError {
  override name = "KekNotConfiguredError";
  constructor(
    /** The fingerprint of the KEK the secret was wrapped under. */
    readonly kekFingerprint: string,
    /** The fingerprints of the KEKs that are configured. */
    readonly configured: readonly string[],
  ) {
    super(`wrapped under key-encryption key ${kekFingerprint}, which is not configured (configured: ${configured.join(", ")})`);
  }
}

/** A current KEK and the KEKs it replaces (oldest data may still be wrapped under them). */
export interface Keyring {
  /** Wraps every new secret. */
  readonly current: Uint8Array;
  /** Only opens secrets wrapped before a rotation finished. */
  readonly previous: readonly Uint8Array[];
}

/**
 * The public name of a KEK: 16 hex characters of SHA-256 over a fixed label and the key. Stored
 * in every envelope and printed by tools; 64 bits of a hash of a 256-bit random key reveal nothing
 * usable about it.
 */
export function kekFingerprint(kek: Uint8Array): string {
  assertKek(kek);
  return createHash("sha256").update("lcp key-encryption key fingerprint\0").update(kek).digest("hex").slice(0, 16);
}

/**
 * A keyring of `current` and `previous` KEKs. A previous KEK equal to the current one, or listed
 * twice, is dropped: it would only be tried twice.
 */
export function createKeyring(current: Uint8Array, previous: readonly Uint8Array[] = []): Keyring {
  const seen = new Set([kekFingerprint(current)]);
  const rest: Uint8Array[] = [];
  for (const kek of previous) {
    const fp = kekFingerprint(kek);
    if (seen.has(fp)) continue;
    seen.add(fp);
    rest.push(kek);
  }
  return { current, previous: rest };
}

/** The fingerprint of the KEK a `v2` envelope was wrapped under; null for a `v1` envelope or anything else. */
export function wrappedKekFingerprint(wrapped: string): string | null {
  const parts = wrapped.split(".");
  return parts.length === 5 && parts[0] === VERSION && FINGERPRINT.test(parts[1]!) ? parts[1]! : null;
}

function asKeyring(kek: Uint8Array | Keyring): Keyring {
  return kek instanceof Uint8Array ? { current: kek, previous: [] } : kek;
}

/**
 * Encrypts `plaintext` under `kek` (32 bytes; a ring's current KEK) bound to `aad` (e.g. the key
 * id, so a wrapped key cannot be swapped onto another row). Returns
 * `v2.<kek fingerprint>.<iv>.<ciphertext>.<tag>`, binary parts base64url.
 */
export function wrapSecret(kek: Uint8Array | Keyring, plaintext: Uint8Array | string, aad: string): string {
  const key = asKeyring(kek).current;
  assertKek(key);
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv("aes-256-gcm", key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(aad, "utf8"));
  const data = typeof plaintext === "string" ? Buffer.from(plaintext, "utf8") : plaintext;
  const ciphertext = Buffer.concat([cipher.update(data), cipher.final()]);
  const tag = cipher.getAuthTag();
  return [VERSION, kekFingerprint(key), iv, ciphertext, tag].map((p) => (typeof p === "string" ? p : p.toString("base64url"))).join(".");
}

/**
 * Decrypts a value made by {@link wrapSecret} with the same AAD, under the KEK (or the KEK of the
 * ring) that wrapped it.
 * @throws KekNotConfiguredError when the envelope names a KEK the ring does not hold.
 * @throws KeyWrapError when the envelope is malformed or fails authentication.
 */
export function unwrapSecret(kek: Uint8Array | Keyring, wrapped: string, aad: string): Uint8Array {
  const ring = asKeyring(kek);
  const keys = [ring.current, ...ring.previous];
  keys.forEach(assertKek);
  const parts = wrapped.split(".");
  if (parts.length === 5 && parts[0] === VERSION) {
    const fp = parts[1]!;
    const key = keys.find((k) => kekFingerprint(k) === fp);
    if (!key) throw new KekNotConfiguredError(FINGERPRINT.test(fp) ? fp : "(malformed)", keys.map(kekFingerprint));
    return openEnvelope(key, parts.slice(2) as [string, string, string], aad);
  }
  if (parts.length === 4 && parts[0] === LEGACY_VERSION) {
    // A v1 envelope does not say which KEK made it: the first that authenticates is the one.
    let failure: unknown;
    for (const key of keys) {
      try {
        return openEnvelope(key, parts.slice(1) as [string, string, string], aad);
      } catch (err) {
        failure = err;
      }
    }
    throw failure;
  }
  throw new KeyWrapError(`wrapped secret is not a ${VERSION} (or ${LEGACY_VERSION}) envelope`);
}

function openEnvelope(kek: Uint8Array, [ivPart, ctPart, tagPart]: [string, string, string], aad: string): Uint8Array {
  const iv = Buffer.from(ivPart, "base64url");
  const tag = Buffer.from(tagPart, "base64url");
  // Fixed lengths are checked up front: GCM accepts short tags, which would weaken authentication.
  if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) {
    throw new KeyWrapError("wrapped secret has a bad IV or tag length");
  }
  const decipher = createDecipheriv("aes-256-gcm", kek, iv, { authTagLength: TAG_BYTES });
  decipher.setAAD(Buffer.from(aad, "utf8"));
  decipher.setAuthTag(tag);
  try {
    return new Uint8Array(Buffer.concat([decipher.update(Buffer.from(ctPart, "base64url")), decipher.final()]));
  } catch {
    // One message for every cause: which of KEK, AAD or ciphertext is wrong is not ours to reveal.
    throw new KeyWrapError("wrapped secret failed authentication (tampered, wrong key-encryption key or wrong context)");
  }
}

/**
 * Parses a KEK from configuration: base64 (or base64url) or hex encoding exactly 32 bytes.
 * @throws Error saying what is wrong (empty, not base64/hex, wrong length) without echoing the value.
 */
export function parseKek(value: string): Uint8Array {
  const text = value.trim();
  if (text === "") throw new Error("key-encryption key is empty");
  let bytes: Buffer;
  if (/^[0-9a-fA-F]+$/.test(text) && text.length === KEK_BYTES * 2) {
    bytes = Buffer.from(text, "hex");
  } else if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(text)) {
    bytes = Buffer.from(text.replace(/-/g, "+").replace(/_/g, "/"), "base64");
  } else {
    throw new Error("key-encryption key must be base64 or hex");
  }
  if (bytes.length !== KEK_BYTES) {
    throw new Error(`key-encryption key must be ${KEK_BYTES} bytes, got ${bytes.length} (base64 of 32 bytes is 44 characters, hex is 64)`);
  }
  return new Uint8Array(bytes);
}

/**
 * Development only: returns the KEK in `<dataDir>/kek`, creating it (32 random bytes, base64,
 * mode 0600) on first use. An existing file is never overwritten — that would orphan every key
 * wrapped under it.
 */
export async function loadOrCreateDevKek(dataDir: string): Promise<Uint8Array> {
  const path = join(dataDir, "kek");
  const text = await readOrCreateFile(path, () => `${randomBytes(KEK_BYTES).toString("base64")}\n`);
  try {
    return parseKek(text);
  } catch (error) {
    throw new Error(`${path}: ${(error as Error).message}`);
  }
}

function assertKek(kek: Uint8Array): void {
  if (!(kek instanceof Uint8Array) || kek.length !== KEK_BYTES) {
    throw new KeyWrapError(`key-encryption key must be ${KEK_BYTES} bytes`);
  }
}
