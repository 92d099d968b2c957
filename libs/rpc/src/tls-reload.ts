/**
 * Picks up rotated TLS files without a restart: the certificate, key and CA named by
 * `TLS_CERT_FILE`/`TLS_KEY_FILE`/`TLS_CA_FILE` and the session-ticket secret of
 * `TLS_TICKET_KEY_FILE`, read again on SIGHUP and every `TLS_RELOAD_INTERVAL`. In Kubernetes
 * these come from a mounted Secret that the kubelet replaces by flipping a symlink, which file
 * watchers miss or see twice; reading the paths again and comparing a hash of their contents
 * sees every flip, and an unchanged set costs four small reads and nothing else.
 */
import { createHash } from "node:crypto";
import { stat } from "node:fs/promises";
import type { Logger } from "pino";
import { ConfigError, loadTicketSecret, readPem } from "./config.js";
import type { RpcMetrics } from "./metrics.js";
import type { ServerTls, TlsServed, TlsUpdate } from "./server-options.js";
import { TlsMaterialError, type TlsMaterialCode } from "./tls-material.js";

/** The files a listener's TLS material was read from (`TLS_CERT_FILE`, `TLS_KEY_FILE`, `TLS_CA_FILE`). */
export interface TlsFiles {
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
}

/** Options of {@link createTlsReloader}. */
export interface TlsReloaderOptions {
  /** The certificate files to read again; unset → only the ticket secret is watched. */
  readonly files?: TlsFiles | undefined;
  /** `TLS_TICKET_KEY_FILE`; unset → the ticket secret is not reloaded. */
  readonly ticketKeyFile?: string | undefined;
  /** What is being served now (the hash baseline, so the first look changes nothing). */
  readonly current: { readonly tls: ServerTls; readonly ticketSecret?: Uint8Array | undefined };
  /** Serves a new set, throwing when it is refused: the server's `setTls`. */
  readonly apply: (next: TlsUpdate) => TlsServed;
  /** Called after a set was applied (e.g. to hand the new identity to outgoing clients). */
  readonly onApplied?: ((tls: ServerTls) => void) | undefined;
  /** How often the files are looked at; 0 or unset → only on `reload()` (SIGHUP). */
  readonly intervalMs?: number | undefined;
  readonly log: Logger;
  readonly metrics: RpcMetrics;
}

/** What one look at the files came to. */
export type TlsReloadResult =
  | { readonly result: "unchanged" }
  | { readonly result: "applied"; readonly serialNumber: string; readonly validTo: string; readonly ticketKeyChanged: boolean }
  | { readonly result: "refused"; readonly code: TlsReloadCode; readonly message: string };

/** Why a reload was refused: a check of tls-material.ts, or a file that could not be read. */
export type TlsReloadCode = TlsMaterialCode | "FILE_UNREADABLE" | "TICKET_KEY_INVALID";

/** A running reloader. */
export interface TlsReloader {
  /**
   * Reads the files and serves them if they changed and pass the checks. Polls skip a set they
   * already refused; `force` (SIGHUP) judges and logs it again. Calls never overlap.
   */
  reload(options?: { readonly force?: boolean }): Promise<TlsReloadResult>;
  /** Stops polling (shutdown). */
  stop(): void;
}

/** Larger files are refused unread: a certificate chain or key is a few kilobytes. */
export const MAX_TLS_FILE_BYTES = 1024 * 1024;

/** The metric counting reloads by `result` (`applied`, `refused`). */
export const TLS_RELOADS_METRIC = "tls_reloads_total";

/**
 * Starts watching the files (every `intervalMs`, if set). A set that fails to read or to pass the
 * checks is logged (warn, with its code) and counted as refused, and the current set keeps
 * serving; an applied set is logged (info, with the new serial) and counted.
 */
export function createTlsReloader(options: TlsReloaderOptions): TlsReloader {
  const { log } = options;
  const reloads = options.metrics.counter(TLS_RELOADS_METRIC, "TLS material reloads (certificate, key, CA, session-ticket secret), by result: applied or refused.", ["result"]);
  let served = hashOf(options.current.tls, options.current.ticketSecret);
  let servedTicket = options.current.ticketSecret;
  let lastRefused: { hash: string; result: TlsReloadResult } | undefined;
  let queue: Promise<unknown> = Promise.resolve();

  async function look(force: boolean): Promise<TlsReloadResult> {
    // A Secret flipped between two of our reads gives a mixed set that fails (key mismatch):
    // read once more, and judge the second set if the files moved meanwhile.
    let read = await readSet(options);
    let verdict = judge(read, force);
    if (verdict.result === "refused" && read.ok) {
      const again = await readSet(options);
      if (again.ok && again.hash !== read.hash) {
        read = again;
        verdict = judge(read, force);
      }
    }
    if (verdict.result === "refused") {
      // Polls report a refusal once, not every interval until someone fixes the files.
      const key = read.ok ? read.hash : `${verdict.code}:${verdict.message}`;
      const repeated = lastRefused?.hash === key && !force;
      lastRefused = { hash: key, result: verdict };
      if (!repeated) {
        reloads.inc({ result: "refused" });
        log.warn({ code: verdict.code, reason: verdict.message }, "TLS material refused; the current certificate keeps serving");
      }
    }
    return verdict;
  }

  function judge(read: ReadSet, force: boolean): TlsReloadResult {
    if (!read.ok) return read.refusal;
    if (read.hash === served) {
      if (force) log.info("TLS files unchanged");
      return { result: "unchanged" };
    }
    if (!force && lastRefused?.hash === read.hash) return lastRefused.result;
    const ticketKeyChanged = read.ticketSecret !== undefined && !sameBytes(read.ticketSecret, servedTicket);
    let servedNow: TlsServed;
    try {
      servedNow = options.apply({ tls: read.tls, ticketSecret: read.ticketSecret });
    } catch (err) {
      if (err instanceof TlsMaterialError) return { result: "refused", code: err.code, message: err.message };
      throw err;
    }
    served = read.hash;
    servedTicket = read.ticketSecret ?? servedTicket;
    lastRefused = undefined;
    options.onApplied?.(read.tls);
    reloads.inc({ result: "applied" });
    log.info({ serialNumber: servedNow.serialNumber, validTo: servedNow.validTo, ticketKeyChanged }, "TLS material reloaded");
    return { result: "applied", ...servedNow, ticketKeyChanged };
  }

  const interval = options.intervalMs ?? 0;
  const timer =
    interval > 0
      ? setInterval(() => {
          reload().catch((err: unknown) => log.error({ err }, "TLS reload failed"));
        }, interval)
      : undefined;
  timer?.unref();

  function reload(opts: { readonly force?: boolean } = {}): Promise<TlsReloadResult> {
    const run = queue.then(() => look(opts.force === true));
    queue = run.catch(() => undefined);
    return run;
  }

  return {
    reload,
    stop() {
      clearInterval(timer);
    },
  };
}

type ReadSet =
  | { readonly ok: true; readonly tls: ServerTls; readonly ticketSecret: Uint8Array | undefined; readonly hash: string }
  | { readonly ok: false; readonly refusal: Extract<TlsReloadResult, { result: "refused" }> };

/** Reads every watched file; a file that cannot be read (or is too large, or a bad ticket secret) refuses the set. */
async function readSet(options: TlsReloaderOptions): Promise<ReadSet> {
  const refuse = (code: TlsReloadCode, message: string): ReadSet => ({ ok: false, refusal: { result: "refused", code, message } });
  try {
    let tls = options.current.tls;
    if (options.files) {
      const { cert, key, ca } = options.files;
      tls = {
        certPem: await readBounded("TLS_CERT_FILE", cert),
        keyPem: await readBounded("TLS_KEY_FILE", key),
        caPem: await readBounded("TLS_CA_FILE", ca),
      };
    }
    let ticketSecret: Uint8Array | undefined;
    if (options.ticketKeyFile !== undefined) {
      await checkSize("TLS_TICKET_KEY_FILE", options.ticketKeyFile);
      try {
        ticketSecret = await loadTicketSecret({ file: options.ticketKeyFile, dataDir: "", variable: "TLS_TICKET_KEY_FILE" });
      } catch (err) {
        if (err instanceof ConfigError) return refuse("TICKET_KEY_INVALID", err.message);
        throw err;
      }
    }
    return { ok: true, tls, ticketSecret, hash: hashOf(tls, ticketSecret) };
  } catch (err) {
    if (err instanceof ConfigError) return refuse("FILE_UNREADABLE", err.message);
    throw err;
  }
}

async function readBounded(variable: string, path: string): Promise<string> {
  await checkSize(variable, path);
  return readPem(variable, path);
}

async function checkSize(variable: string, path: string): Promise<void> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch (err) {
    throw new ConfigError(variable, `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
  if (size > MAX_TLS_FILE_BYTES) throw new ConfigError(variable, `${path} is larger than ${MAX_TLS_FILE_BYTES} bytes`);
}

/** One digest of the whole set, each part length-prefixed so no two sets collide by concatenation. */
function hashOf(tls: ServerTls, ticketSecret: Uint8Array | undefined): string {
  const hash = createHash("sha256");
  for (const part of [tls.certPem, tls.keyPem, tls.caPem, ticketSecret ?? new Uint8Array()]) {
    const bytes = typeof part === "string" ? Buffer.from(part, "utf8") : part;
    hash.update(`${bytes.byteLength}:`).update(bytes);
  }
  return hash.digest("hex");
}

function sameBytes(a: Uint8Array, b: Uint8Array | undefined): boolean {
  return b !== undefined && Buffer.from(a).equals(Buffer.from(b));
}
