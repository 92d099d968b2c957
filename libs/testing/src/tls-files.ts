/**
 * `@lcp/testing/tls-files` — for tests of TLS rotation: replace a service's certificate files the
 * way the kubelet swaps a mounted Secret, and open a bare TLS connection to see which certificate
 * a listener serves and whether a session ticket resumed.
 */
import { rename, writeFile } from "node:fs/promises";
import { connect } from "node:tls";
import type { PemKeyPair } from "@lcp/pki";

/** Replaces certificate and key each by a rename: a reader never sees half a file. */
export async function replaceTlsFiles(files: { readonly cert: string; readonly key: string }, pair: PemKeyPair): Promise<void> {
  for (const [path, text] of [
    [files.cert, pair.certPem],
    [files.key, pair.keyPem],
  ] as const) {
    await writeFile(`${path}.new`, text, { mode: 0o600 });
    await rename(`${path}.new`, path);
  }
}

/** What one fresh TLS connection saw. */
export interface Handshake {
  /** The serial of the server certificate (of the session resumed, for a resumed one), uppercase hex. */
  readonly serial: string;
  readonly resumed: boolean;
  /** The session ticket the server issued (a full handshake only), to offer on a later one. */
  readonly ticket: Buffer | undefined;
}

/**
 * Opens a TLS connection to an HTTP/2 listener on localhost (no client certificate), offering
 * `ticket` if given, and closes it once the server has spoken HTTP/2 (so it has counted the
 * connection) and, for a full handshake, issued its ticket (node issues none on a resumed one).
 */
export function tlsHandshake(options: { readonly port: number; readonly caPem: string; readonly ticket?: Buffer | undefined }): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    let ticket: Buffer | undefined;
    let answered = false;
    let resumed = false;
    let connected = false;
    const socket = connect({ host: "localhost", port: options.port, ca: options.caPem, ALPNProtocols: ["h2"], ...(options.ticket ? { session: options.ticket } : {}) });
    const done = () => {
      if (connected && answered && (resumed || ticket)) socket.destroy();
    };
    socket.on("session", (session: Buffer) => {
      ticket ??= session;
      done();
    });
    socket.once("data", () => {
      answered = true;
      done();
    });
    socket.once("secureConnect", () => {
      connected = true;
      const serial = socket.getPeerX509Certificate()?.serialNumber.toUpperCase() ?? "";
      resumed = socket.isSessionReused();
      socket.once("close", () => resolve({ serial, resumed, ticket }));
      done();
    });
    socket.once("error", reject);
  });
}
