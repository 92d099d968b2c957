/**
 * Envelope encryption for private keys at rest (docs/design.md §6): AES-256-GCM under a
 * key-encryption key (KEK) from configuration, or in development one generated into the data folder.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { join } from "node:path";
import { readOrCreateFile } from "./write-file-once.js";

const VERSION = "v1";
const IV_BYTES = 12; // the GCM standard nonce size; random per wrap, so never reused under one KEK
const TAG_BYTES = 16;
const KEK_BYTES = 32;

/** Thrown when a wrapped secret cannot be opened: tampered, wrong KEK, wrong AAD or not a `v1.` envelope. */
export class KeyWrapError extends Error {
  override name = "KeyWrapError";
}

/**
 * Encrypts `plaintext` under `kek` (32 bytes) bound to `aad` (e.g. the key id, so a wrapped key
 * cannot be swapped onto another row). Returns `v1.<iv>.<ciphertext>.<tag>`, base64url parts.
 */
export function wrapSecret(kek: Uint8Array, plaintext: Uint8Array | string, aad: string): string {
  assertKek(kek);
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv("aes-256-gcm", kek, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(aad, "utf8"));
  const data = typeof plaintext === "string" ? Buffer.from(plaintext, "utf8") : plaintext;
  const ciphertext = Buffer.concat([cipher.update(data), cipher.final()]);
  const tag = cipher.getAuthTag();
  return [VERSION, iv, ciphertext, tag].map((p) => (typeof p === "string" ? p : p.toString("base64url"))).join(".");
}

/**
 * Decrypts a value made by {@link wrapSecret} with the same KEK and AAD.
 * @throws KeyWrapError when the envelope is malformed or fails authentication.
 */
export function unwrapSecret(kek: Uint8Array, wrapped: string, aad: string): Uint8Array {
  assertKek(kek);
  const parts = wrapped.split(".");
  if (parts.length !== 4 || parts[0] !== VERSION) {
    throw new KeyWrapError(`wrapped secret is not a ${VERSION} envelope`);
  }
  const [, ivPart, ctPart, tagPart] = parts as [string, string, string, string];
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
