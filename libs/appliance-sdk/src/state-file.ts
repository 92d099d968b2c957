/**
 * The appliance's state file: everything the box needs to run offline and to reconnect after a
 * reboot (certificate and private key, lease, JWKS, settings, the time watermark, local locks).
 * It holds a private key, so it is created with mode 0600, and it is replaced atomically (temp
 * file, fsync, rename, fsync of the directory) so a power cut leaves either the old or the new
 * file, never half of one — a torn file would otherwise lock a hospital box at the next boot.
 */
import { closeSync, fsyncSync, openSync, readFileSync } from "node:fs";
import { chmod, mkdir, open, rename, rm } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { basename, dirname, join } from "node:path";
import type { JSONWebKeySet } from "jose";
import type { ApplianceLease } from "@lcp/domain";
import { signedByKeyOf, storedLeaseKeys, type LeaseReplacement } from "./key-set.js";
import { recheckStoredLease, toApplianceLease } from "./lease.js";

/** The file format version; bumped on an incompatible change so an old SDK refuses a newer file. */
export const STATE_FILE_VERSION = 1;

/** The settings the box runs on (from ActivateResponse.settings, SET_INTERVAL). Milliseconds. */
export interface ApplianceRuntimeSettings {
  heartbeatIntervalMs: number;
  graceWindowMs: number;
  maxClockSkewMs: number;
}

/** The content of the state file. */
export interface ApplianceStateFile {
  version: typeof STATE_FILE_VERSION;
  /** The licence the box runs under now (its leases name it). */
  licenseId: string;
  /**
   * Licences the box ran under before: the one it was installed (and is perhaps still configured)
   * with, superseded by renewals whose leases it adopted. Absent in files written before renewals
   * were followed.
   */
  previousLicenseIds?: string[];
  deploymentId: string;
  /** Client certificate (PEM) from Activate or RENEW_CERTIFICATE. */
  certificatePem: string;
  /** Its private key (PEM PKCS#8, P-256). */
  privateKeyPem: string;
  certificateChainPem: string[];
  /** Key of a CertificateRenewal sent but not yet answered; adopted when its certificate arrives. */
  pendingPrivateKeyPem: string | null;
  /** The lease the box runs on (typ lease+jwt); verified before it was stored and again on load. */
  leaseToken: string;
  /** The highest lease seq ever accepted; a lease must beat it. */
  highestLeaseSeq: number;
  jwks: JSONWebKeySet;
  /**
   * Set while the lease's signing key has left `jwks` and a fresh lease is being asked for
   * (key-set.ts): the lease holds until the deadline, then is dropped. Absent otherwise.
   */
  leaseReplacement?: LeaseReplacement;
  settings: ApplianceRuntimeSettings;
  /** Highest trusted time seen (epoch ms): acks' server time, lease iat, the box's own clock. */
  watermark: number;
  /** A LOCK directive was applied (cleared only by REACTIVATE or a new activation). */
  lockedByDirective: boolean;
  /** A SUSPEND directive was applied (cleared by REACTIVATE or a newer lease). */
  suspendedByDirective: boolean;
  /** The control plane answered LICENSE_REVOKED. */
  revoked: boolean;
  /** Directives applied but not yet acknowledged to the server (sent with the next hello/call). */
  pendingAcks: string[];
  /**
   * Air-gapped boxes: when the control plane asked for the next renewal request (epoch ms, the
   * response's `ren`). Absent on online boxes and in files written before air-gapped sites.
   */
  renewAt?: number;
}

/** The state file is unreadable, corrupt, or belongs to another licence. */
export class StateFileError extends Error {
  override name = "StateFileError";
  constructor(
    readonly path: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`appliance state file ${path}: ${message}`, options);
  }
}

function fail(path: string, message: string, cause?: unknown): never {
  throw new StateFileError(path, message, cause === undefined ? undefined : { cause });
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isString = (v: unknown): v is string => typeof v === "string" && v.length > 0;
const isTime = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v) && v >= 0;

/**
 * Reads the state file, or returns null when it does not exist (a box never activated).
 * Synchronous on purpose: it runs once at start-up, before anything else can happen.
 * @throws StateFileError naming the file and the first bad field, so an operator knows what broke.
 */
export function readStateFile(path: string): ApplianceStateFile | null {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    fail(path, `cannot be read (${(error as NodeJS.ErrnoException).code ?? "error"})`, error);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    fail(path, "is not valid JSON (corrupt); restore it or delete it and activate again", error);
  }
  return parseStateFile(path, raw);
}

function parseStateFile(path: string, raw: unknown): ApplianceStateFile {
  if (!isRecord(raw)) fail(path, "is not a JSON object");
  if (raw["version"] !== STATE_FILE_VERSION) fail(path, `has version ${JSON.stringify(raw["version"])}, expected ${STATE_FILE_VERSION}`);
  const field = <T>(name: string, check: (v: unknown) => v is T, what: string): T => {
    const v = raw[name];
    if (!check(v)) fail(path, `field "${name}" must be ${what}`);
    return v;
  };
  const settings = field("settings", isRecord, "an object");
  const setting = (name: keyof ApplianceRuntimeSettings): number => {
    const v = settings[name];
    if (!isTime(v)) fail(path, `field "settings.${name}" must be a non-negative number`);
    return v;
  };
  const jwks = field("jwks", isRecord, "an object");
  if (!Array.isArray(jwks["keys"])) fail(path, 'field "jwks.keys" must be an array');
  const stringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === "string");
  const bool = (v: unknown): v is boolean => typeof v === "boolean";
  const pending = raw["pendingPrivateKeyPem"];
  if (pending !== null && !isString(pending)) fail(path, 'field "pendingPrivateKeyPem" must be a string or null');
  const replacement = raw["leaseReplacement"];
  if (replacement !== undefined && !(isRecord(replacement) && isTime(replacement["deadline"]) && isRecord(replacement["key"]))) {
    fail(path, 'field "leaseReplacement" must be an object with a deadline (epoch ms) and a key');
  }
  const renewAt = raw["renewAt"];
  if (renewAt !== undefined && !isTime(renewAt)) fail(path, 'field "renewAt" must be a non-negative number (epoch ms)');
  const previous = raw["previousLicenseIds"] ?? [];
  if (!stringArray(previous)) fail(path, 'field "previousLicenseIds" must be an array of strings');
  return {
    version: STATE_FILE_VERSION,
    licenseId: field("licenseId", isString, "a non-empty string"),
    previousLicenseIds: previous,
    deploymentId: field("deploymentId", isString, "a non-empty string"),
    certificatePem: field("certificatePem", isString, "a PEM string"),
    privateKeyPem: field("privateKeyPem", isString, "a PEM string"),
    certificateChainPem: field("certificateChainPem", stringArray, "an array of PEM strings"),
    pendingPrivateKeyPem: pending,
    leaseToken: field("leaseToken", isString, "a non-empty string"),
    highestLeaseSeq: field("highestLeaseSeq", (v): v is number => Number.isSafeInteger(v) && (v as number) >= 0, "a non-negative integer"),
    jwks: jwks as unknown as JSONWebKeySet,
    ...(replacement === undefined ? {} : { leaseReplacement: replacement as unknown as LeaseReplacement }),
    settings: {
      heartbeatIntervalMs: setting("heartbeatIntervalMs"),
      graceWindowMs: setting("graceWindowMs"),
      maxClockSkewMs: setting("maxClockSkewMs"),
    },
    watermark: field("watermark", isTime, "a non-negative number (epoch ms)"),
    lockedByDirective: field("lockedByDirective", bool, "a boolean"),
    suspendedByDirective: field("suspendedByDirective", bool, "a boolean"),
    revoked: field("revoked", bool, "a boolean"),
    pendingAcks: field("pendingAcks", stringArray, "an array of strings"),
    ...(renewAt === undefined ? {} : { renewAt }),
  };
}

/**
 * Replaces the state file atomically with mode 0600: write a temp file beside it, fsync, rename
 * over the old one, then fsync the directory so the rename itself survives a power cut.
 */
export async function writeStateFile(path: string, state: ApplianceStateFile): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(state, null, 2)}\n`);
}

/**
 * Replaces `path` with `text` the way the state file is written (mode 0600, temp file, fsync,
 * rename, fsync of the directory): for the state file and the files beside it that hold a key.
 */
export async function writeFileAtomic(path: string, text: string): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // Same directory, so rename never crosses a filesystem; random suffix, so two writers never share a temp.
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
  const handle = await open(tmp, "wx", 0o600);
  try {
    // The umask can only remove bits, but an explicit chmod documents and guarantees 0600.
    await handle.chmod(0o600);
    await handle.writeFile(text, "utf8");
    await handle.sync();
  } catch (error) {
    await handle.close().catch(() => {});
    await rm(tmp, { force: true }).catch(() => {});
    throw error;
  }
  await handle.close();
  try {
    await rename(tmp, path);
  } catch (error) {
    await rm(tmp, { force: true }).catch(() => {});
    throw error;
  }
  // An earlier version (or an operator) may have left the file world-readable; it holds a key.
  await chmod(path, 0o600).catch(() => {});
  syncDirectory(dir);
}

/** Removes `path` if it exists, and makes the removal durable (fsync of the directory). */
export async function removeFileDurably(path: string): Promise<void> {
  await rm(path, { force: true });
  syncDirectory(dirname(path));
}

function syncDirectory(dir: string): void {
  // Directory fsync is not supported everywhere (e.g. Windows); the rename is still atomic there.
  try {
    const fd = openSync(dir, "r");
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    /* best effort */
  }
}

/**
 * The writes of one state file while the box runs: a request made while a write is under way folds
 * into one more write of the then-current state, so a burst of changes costs two writes, not one
 * each. A failed write is reported, not thrown: the box carries on with the state in memory.
 */
export class StateFileWriter {
  private writing: Promise<void> | null = null;
  private dirty = false;
  /** The highest watermark known to be on disk (the evaluation throttles watermark writes on it). */
  persistedWatermark = 0;

  constructor(
    private readonly path: string,
    private readonly current: () => ApplianceStateFile | null,
    private readonly onError: (error: StateFileError) => void,
  ) {}

  /** Queues a write of the current state; resolves once it (or a later one) is done. */
  persist(): Promise<void> {
    this.dirty = true;
    if (!this.writing) {
      this.writing = this.drain().finally(() => {
        this.writing = null;
      });
    }
    return this.writing;
  }

  /** Waits for the write under way, then writes the current state strictly (activation: it throws). */
  async writeNow(): Promise<void> {
    await this.writing;
    const state = this.current();
    if (!state) return;
    await writeStateFile(this.path, state);
    this.persistedWatermark = state.watermark;
  }

  private async drain(): Promise<void> {
    for (let state = this.current(); this.dirty && state; state = this.current()) {
      this.dirty = false;
      const snapshot = structuredClone(state);
      try {
        await writeStateFile(this.path, snapshot);
        this.persistedWatermark = Math.max(this.persistedWatermark, snapshot.watermark);
      } catch (error) {
        this.onError(new StateFileError(this.path, "could not be written", { cause: error }));
      }
    }
  }
}

/**
 * Loads the state file for a box starting up, or null when there is none (never activated). The
 * file could have been edited to stretch the lease: only a lease that still verifies against the
 * stored keys is believed.
 * @throws StateFileError if the file is corrupt, belongs to another licence, or its lease does
 *   not verify.
 */
export async function loadState(
  path: string,
  box: { licenseId: string; issuer: string; fingerprint: string },
): Promise<{ file: ApplianceStateFile; lease: ApplianceLease | null } | null> {
  const stored = readStateFile(path);
  if (stored === null) return null;
  // A host keeps the licence id it was installed with in its configuration; after a renewal
  // the box runs under the newer licence, and either id names this state file.
  if (stored.licenseId !== box.licenseId && !stored.previousLicenseIds?.includes(box.licenseId)) {
    throw new StateFileError(path, `belongs to licence ${stored.licenseId}, not ${box.licenseId}; use another state file or delete it and activate again`);
  }
  const jwks = storedLeaseKeys(stored);
  const verdict = await recheckStoredLease(stored.leaseToken, {
    jwks,
    issuer: box.issuer,
    licenseId: stored.licenseId,
    deploymentId: stored.deploymentId,
    fingerprint: box.fingerprint,
    highestSeq: stored.highestLeaseSeq,
  });
  // A lease whose key a REFRESH_KEYS removed was dropped on purpose at the end of its replacement
  // window (key-set.ts): the box runs without one until it is given a fresh one. A window still
  // open resumes with its stored deadline (the shell's evaluation ends it). Any other failure is
  // tampering.
  const dropped = !verdict.ok && verdict.code === "TOKEN_UNKNOWN_KEY" && !signedByKeyOf(stored.leaseToken, jwks);
  if (!verdict.ok && !dropped) throw new StateFileError(path, `stored lease does not verify (${verdict.code}: ${verdict.message}); delete the file and activate again`);
  return { file: stored, lease: verdict.ok ? toApplianceLease(verdict.claims) : null };
}
