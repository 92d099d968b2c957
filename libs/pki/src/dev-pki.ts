import { randomBytes, X509Certificate as NodeX509Certificate } from "node:crypto";
import { chmod, mkdir, open, readFile, rename, rm, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import { createCertificateAuthority, loadCertificateAuthority, type CertificateAuthority } from "./ca.js";
import { DEFAULT_SERVER_HOSTS, issueServerAndServiceCertificate } from "./issue.js";
import { DEFAULT_TRUST_DOMAIN } from "./spiffe.js";

/**
 * What the development PKI issues certificates for by default: the four services, the console's
 * listener and `npm start`'s dev identity provider (the last two have SPIFFE ids that name no
 * control-plane service, so they are never a service identity anywhere: anonymous as clients).
 */
export const DEV_PKI_SERVICES: readonly string[] = ["licensing", "signing-keys", "audit", "fleet-sweep", "console", "dev-idp"];

/** Options for {@link ensureDevPki}. */
export interface DevPkiOptions {
  /** Folder holding the PKI (`data/pki` under `npm start`); created if missing (mode 0700). */
  dir: string;
  /** SPIFFE trust domain; default {@link DEFAULT_TRUST_DOMAIN}. */
  trustDomain?: string;
  /** Apps to issue certificates for; default {@link DEV_PKI_SERVICES}. */
  services?: readonly string[];
  /** Hosts the server certificates are valid for; default localhost, 127.0.0.1, ::1. */
  hosts?: readonly string[];
  /** Lifetime of a newly created CA; default 10 years. */
  caValidityDays?: number;
  /** Lifetime of newly issued app certificates; default 397 days. */
  certificateValidityDays?: number;
  /** Clock, for tests; default now. */
  now?: Date;
}

/** One app's certificate and key, in memory and on disk. */
export interface DevPkiServiceMaterial {
  certPem: string;
  keyPem: string;
  certPath: string;
  keyPath: string;
}

/** What {@link ensureDevPki} found or made. */
export interface DevPkiResult {
  caCertPem: string;
  /** Absent when the folder holds only `ca.crt` (a CA managed elsewhere) and nothing needed issuing. */
  caKeyPem?: string;
  caPath: string;
  services: Record<string, DevPkiServiceMaterial>;
  /** True if this call wrote any file; false on every start after the first. */
  created: boolean;
}

/** Thrown when the PKI folder is in a state we must not paper over (e.g. certificates with no CA). */
export class DevPkiError extends Error {
  override name = "DevPkiError";
}

const DAY_MS = 86_400_000;
const LOCK_STALE_MS = 30_000;
const LOCK_WAIT_MS = 20_000;

/**
 * Makes sure the development PKI exists in `dir`: `ca.crt`, `ca.key` and per app `<app>.crt` /
 * `<app>.key` (keys mode 0600). Idempotent: existing files are reused and never regenerated, so a
 * second start changes nothing; a missing app certificate is issued from the existing CA.
 * Every file is written to a temporary name and renamed, so a crash never leaves half a PEM, and
 * a lock file serialises apps that start at the same moment on the same folder.
 *
 * Fails with {@link DevPkiError} rather than guess when: an app certificate is missing but
 * `ca.key` is (we cannot issue); `ca.crt` is missing while app certificates exist (they chain to a
 * CA we no longer have); an existing app certificate was not issued by `ca.crt`.
 */
export async function ensureDevPki(options: DevPkiOptions): Promise<DevPkiResult> {
  const dir = options.dir;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const release = await acquireLock(join(dir, ".lock"));
  try {
    return await ensureLocked(options);
  } finally {
    await release();
  }
}

async function ensureLocked(options: DevPkiOptions): Promise<DevPkiResult> {
  const { dir } = options;
  const trustDomain = options.trustDomain ?? DEFAULT_TRUST_DOMAIN;
  const services = options.services ?? DEV_PKI_SERVICES;
  const now = options.now ?? new Date();
  const caPath = join(dir, "ca.crt");
  const caKeyPath = join(dir, "ca.key");
  let created = false;

  const existing = new Map<string, { certPem?: string; keyPem?: string }>();
  for (const service of services) {
    existing.set(service, {
      ...optional("certPem", await readIfExists(join(dir, `${service}.crt`))),
      ...optional("keyPem", await readIfExists(join(dir, `${service}.key`))),
    });
  }

  let caCertPem = await readIfExists(caPath);
  let caKeyPem = await readIfExists(caKeyPath);
  if (caCertPem === undefined) {
    const orphans = services.filter((s) => existing.get(s)?.certPem !== undefined);
    if (orphans.length > 0) {
      throw new DevPkiError(
        `${caPath} is missing but ${orphans.map((s) => `${s}.crt`).join(", ")} exist in ${dir}; ` +
          `restore ca.crt (and ca.key), or delete the folder to generate a fresh development PKI`,
      );
    }
    // Any ca.key without ca.crt is what a crash between the two writes leaves: replace it.
    const ca = await createCertificateAuthority({
      commonName: `lcp development CA (${trustDomain})`,
      validityDays: options.caValidityDays ?? 3650,
      now,
    });
    // Key first: a crash after it leaves "ca.key without ca.crt", which the branch above recovers.
    await writeAtomic(caKeyPath, ca.keyPem, 0o600);
    await writeAtomic(caPath, ca.certPem, 0o644);
    caCertPem = ca.certPem;
    caKeyPem = ca.keyPem;
    created = true;
  }
  const caNode = parseCertificate(caCertPem, caPath);

  let authority: CertificateAuthority | undefined;
  const result: Record<string, DevPkiServiceMaterial> = {};
  for (const service of services) {
    const certPath = join(dir, `${service}.crt`);
    const keyPath = join(dir, `${service}.key`);
    const found = existing.get(service) ?? {};
    if (found.certPem !== undefined && found.keyPem !== undefined) {
      const cert = parseCertificate(found.certPem, certPath);
      if (!cert.checkIssued(caNode) || !cert.verify(caNode.publicKey)) {
        throw new DevPkiError(`${certPath} was not issued by ${caPath}; delete ${service}.crt and ${service}.key to reissue it`);
      }
      result[service] = { certPem: found.certPem, keyPem: found.keyPem, certPath, keyPath };
      continue;
    }
    // A key without its certificate (crash mid-issue) or a certificate without its key is useless
    // on its own: issue both afresh.
    if (caKeyPem === undefined) {
      throw new DevPkiError(
        `${service}.crt or ${service}.key is missing in ${dir} and cannot be issued: ${caKeyPath} is missing ` +
          `(only ca.crt is present). Provide ${service}.crt/${service}.key, or restore ca.key`,
      );
    }
    authority ??= await loadCa(caCertPem, caKeyPem, caPath);
    const issued = await issueServerAndServiceCertificate(authority, {
      service,
      trustDomain,
      hosts: options.hosts ?? DEFAULT_SERVER_HOSTS,
      validityDays: options.certificateValidityDays ?? 397,
      now,
    });
    await writeAtomic(keyPath, issued.keyPem, 0o600);
    await writeAtomic(certPath, issued.certPem, 0o644);
    result[service] = { ...issued, certPath, keyPath };
    created = true;
  }

  return { caCertPem, ...optional("caKeyPem", caKeyPem), caPath, services: result, created };
}

async function loadCa(certPem: string, keyPem: string, caPath: string): Promise<CertificateAuthority> {
  try {
    return await loadCertificateAuthority({ certPem, keyPem });
  } catch (error) {
    throw new DevPkiError(`cannot use ${caPath} with its ca.key to issue certificates: ${(error as Error).message}`, { cause: error });
  }
}

function parseCertificate(pem: string, path: string): NodeX509Certificate {
  try {
    return new NodeX509Certificate(pem);
  } catch (error) {
    throw new DevPkiError(`${path} is not a PEM certificate`, { cause: error });
  }
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

/** Writes via a temporary file in the same folder, fsyncs it, then renames over the target. */
async function writeAtomic(path: string, content: string, mode: number): Promise<void> {
  const temp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  const handle = await open(temp, "wx", mode);
  try {
    await handle.writeFile(content, "utf8");
    // The umask may have narrowed the mode at create time; set it exactly (0600 for keys).
    await handle.chmod(mode);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(temp, { force: true });
    throw error;
  }
  await handle.close();
  try {
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  await chmod(path, mode);
}

async function acquireLock(path: string): Promise<() => Promise<void>> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      const handle = await open(path, "wx", 0o600);
      await handle.writeFile(String(process.pid));
      await handle.close();
      return async () => {
        await unlink(path).catch(() => undefined);
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    // A lock left by a process that crashed mid-generation must not block every later start.
    const info = await stat(path).catch(() => undefined);
    if (info && Date.now() - info.mtimeMs > LOCK_STALE_MS) {
      await unlink(path).catch(() => undefined);
      continue;
    }
    if (Date.now() > deadline) {
      throw new DevPkiError(`timed out waiting for ${path}; if no other process is generating the PKI, delete it`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
