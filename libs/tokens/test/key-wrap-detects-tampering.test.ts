import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createCipheriv } from "node:crypto";
import {
  createKeyring,
  KekNotConfiguredError,
  kekFingerprint,
  KeyWrapError,
  loadOrCreateDevKek,
  parseKek,
  unwrapSecret,
  wrapSecret,
  wrappedKekFingerprint,
} from "../src/index.js";

const kek = new Uint8Array(randomBytes(32));
const PEM = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI…\n-----END PRIVATE KEY-----\n";

describe("key wrapping", () => {
  it("round-trips strings and bytes, with a fresh IV every time", () => {
    const a = wrapSecret(kek, PEM, "kid-1");
    const b = wrapSecret(kek, PEM, "kid-1");
    expect(a).toMatch(/^v2\.[0-9a-f]{16}\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/);
    expect(wrappedKekFingerprint(a)).toBe(kekFingerprint(kek));
    expect(a).not.toBe(b);
    expect(Buffer.from(unwrapSecret(kek, a, "kid-1")).toString()).toBe(PEM);
    const bytes = new Uint8Array([0, 1, 2, 255]);
    expect(unwrapSecret(kek, wrapSecret(kek, bytes, "x"), "x")).toEqual(bytes);
  });

  it("refuses a tampered ciphertext, IV or tag", () => {
    const wrapped = wrapSecret(kek, PEM, "kid-1");
    const parts = wrapped.split(".");
    for (const i of [2, 3, 4]) {
      const raw = Buffer.from(parts[i]!, "base64url");
      raw[0] = raw[0]! ^ 1;
      const tampered = parts.map((p, j) => (j === i ? raw.toString("base64url") : p)).join(".");
      expect(() => unwrapSecret(kek, tampered, "kid-1")).toThrow(KeyWrapError);
    }
    expect(() => unwrapSecret(kek, wrapped.replace(/^v2/, "v3"), "kid-1")).toThrow(KeyWrapError);
    expect(() => unwrapSecret(kek, "garbage", "kid-1")).toThrow(KeyWrapError);
  });

  it("refuses the wrong AAD (a wrapped key moved to another key's row)", () => {
    const wrapped = wrapSecret(kek, PEM, "kid-1");
    expect(() => unwrapSecret(kek, wrapped, "kid-2")).toThrow(KeyWrapError);
  });

  it("refuses the wrong KEK, and names the error class", () => {
    const wrapped = wrapSecret(kek, PEM, "kid-1");
    try {
      unwrapSecret(new Uint8Array(randomBytes(32)), wrapped, "kid-1");
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(KeyWrapError);
      expect((error as Error).name).toBe("KekNotConfiguredError");
    }
    // The fingerprint only picks the KEK to try; GCM decides: an envelope claiming another KEK's
    // fingerprint must still authenticate under that KEK.
    const other = new Uint8Array(randomBytes(32));
    const spoofed = wrapped.replace(/^v2\.[0-9a-f]{16}/, `v2.${kekFingerprint(other)}`);
    expect(() => unwrapSecret(createKeyring(kek, [other]), spoofed, "kid-1")).toThrow(/failed authentication/);
    expect(() => wrapSecret(new Uint8Array(16), PEM, "x")).toThrow(/32 bytes/);
  });
});

describe("KEK rotation through a keyring", () => {
  const oldKek = new Uint8Array(randomBytes(32));
  const newKek = new Uint8Array(randomBytes(32));

  it("wraps under the current KEK and opens under whichever KEK of the ring wrapped it", () => {
    const ring = createKeyring(newKek, [oldKek]);
    const underOld = wrapSecret(oldKek, PEM, "kid-1");
    const underNew = wrapSecret(ring, PEM, "kid-1");
    expect(wrappedKekFingerprint(underNew)).toBe(kekFingerprint(newKek));
    expect(Buffer.from(unwrapSecret(ring, underOld, "kid-1")).toString()).toBe(PEM);
    expect(Buffer.from(unwrapSecret(ring, underNew, "kid-1")).toString()).toBe(PEM);
    expect(Buffer.from(unwrapSecret(newKek, underNew, "kid-1")).toString()).toBe(PEM);
  });

  it("names the missing KEK when the ring lacks the one that wrapped a secret", () => {
    const underNew = wrapSecret(newKek, PEM, "kid-1");
    const error = (() => {
      try {
        unwrapSecret(createKeyring(oldKek), underNew, "kid-1");
      } catch (err) {
        return err;
      }
    })();
    expect(error).toBeInstanceOf(KekNotConfiguredError);
    expect(error).toMatchObject({ kekFingerprint: kekFingerprint(newKek), configured: [kekFingerprint(oldKek)] });
    expect((error as Error).message).not.toContain(Buffer.from(newKek).toString("base64"));
  });

  it("opens v1 envelopes (no fingerprint) by trying every KEK of the ring", () => {
    // A v1 envelope as the previous format wrote it: v1.<iv>.<ciphertext>.<tag>.
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", oldKek, iv, { authTagLength: 16 });
    cipher.setAAD(Buffer.from("kid-1"));
    const ct = Buffer.concat([cipher.update(PEM), cipher.final()]);
    const v1 = ["v1", iv.toString("base64url"), ct.toString("base64url"), cipher.getAuthTag().toString("base64url")].join(".");
    expect(wrappedKekFingerprint(v1)).toBeNull();
    expect(Buffer.from(unwrapSecret(createKeyring(newKek, [oldKek]), v1, "kid-1")).toString()).toBe(PEM);
    expect(() => unwrapSecret(createKeyring(newKek), v1, "kid-1")).toThrow(/failed authentication/);
  });

  it("fingerprints are stable, distinct, and reveal nothing of the key; duplicate KEKs leave the ring", () => {
    expect(kekFingerprint(oldKek)).toMatch(/^[0-9a-f]{16}$/);
    expect(kekFingerprint(oldKek)).toBe(kekFingerprint(new Uint8Array(oldKek)));
    expect(kekFingerprint(oldKek)).not.toBe(kekFingerprint(newKek));
    expect(Buffer.from(oldKek).toString("hex")).not.toContain(kekFingerprint(oldKek));
    expect(createKeyring(newKek, [newKek, oldKek, oldKek]).previous).toEqual([oldKek]);
    expect(() => createKeyring(new Uint8Array(16))).toThrow(/32 bytes/);
    expect(wrappedKekFingerprint("v2.NOT-HEX-AT-ALL!.a.b.c")).toBeNull();
  });
});

describe("parseKek", () => {
  const raw = randomBytes(32);
  it("accepts base64, base64url and hex of 32 bytes", () => {
    expect(parseKek(raw.toString("base64"))).toEqual(new Uint8Array(raw));
    expect(parseKek(raw.toString("base64url"))).toEqual(new Uint8Array(raw));
    expect(parseKek(` ${raw.toString("hex")}\n`)).toEqual(new Uint8Array(raw));
  });
  it("names the problem", () => {
    expect(() => parseKek("")).toThrow(/empty/);
    expect(() => parseKek("not base64 !!")).toThrow(/base64 or hex/);
    expect(() => parseKek(randomBytes(16).toString("base64"))).toThrow(/32 bytes, got 16/);
    expect(() => parseKek(randomBytes(31).toString("hex"))).toThrow(/32 bytes/);
  });
});

describe("loadOrCreateDevKek", () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });
  const tempDir = async () => {
    const d = await mkdtemp(join(tmpdir(), "lcp-kek-"));
    dirs.push(d);
    return d;
  };

  it("creates <dataDir>/kek with mode 0600 once and reuses it", async () => {
    const dataDir = join(await tempDir(), "data");
    const first = await loadOrCreateDevKek(dataDir);
    expect(first).toHaveLength(32);
    const info = await stat(join(dataDir, "kek"));
    expect(info.mode & 0o777).toBe(0o600);
    const again = await loadOrCreateDevKek(dataDir);
    expect(again).toEqual(first);
  });

  it("gives every concurrent starter the same KEK", async () => {
    const dataDir = await tempDir();
    const keks = await Promise.all(Array.from({ length: 8 }, () => loadOrCreateDevKek(dataDir)));
    for (const k of keks) expect(k).toEqual(keks[0]);
  });

  it("never overwrites an existing file, and names it when it is invalid", async () => {
    const dataDir = await tempDir();
    await writeFile(join(dataDir, "kek"), "too-short\n");
    await expect(loadOrCreateDevKek(dataDir)).rejects.toThrow(/kek: key-encryption key/);
    expect(await readFile(join(dataDir, "kek"), "utf8")).toBe("too-short\n");
  });
});
