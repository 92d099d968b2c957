/**
 * An HTTP/2 client written frame by frame over real TLS, for the tests of what a server does with a
 * client that does not play by the rules: it opens streams past the announced limit, and answers
 * (or ignores) PINGs as told. Node's own client obeys SETTINGS and acks every PING natively, so
 * it cannot play the attacker or the dead peer.
 */
import * as tls from "node:tls";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const DATA = 0x0;
const HEADERS = 0x1;
const RST_STREAM = 0x3;
const SETTINGS = 0x4;
const PING = 0x6;
const GOAWAY = 0x7;
const END_STREAM = 0x1;
const ACK = 0x1;
const END_HEADERS = 0x4;
const SETTINGS_MAX_CONCURRENT_STREAMS = 0x3;

/** What the server did with one stream. */
export type StreamFate = "answered" | "reset";

/** Options of {@link connectRawH2}. */
export interface RawH2Options {
  readonly port: number;
  readonly caPem: string;
  /** Ack the server's PINGs (a live peer). Default false: a peer that has gone silent. */
  readonly answerPings?: boolean;
}

/** A raw HTTP/2 connection; see the module comment. */
export interface RawH2Connection {
  /** Resolves once TLS is up and the preface and our SETTINGS are sent. */
  readonly ready: Promise<void>;
  /** The server's SETTINGS_MAX_CONCURRENT_STREAMS, once its SETTINGS arrived. */
  readonly maxConcurrentStreams: number | undefined;
  /** PING frames the server sent us. */
  readonly pingsReceived: number;
  /** Whether the server sent GOAWAY. */
  readonly goaway: boolean;
  /** The fate of each stream we opened, by id, as far as known. */
  readonly fates: ReadonlyMap<number, StreamFate>;
  /** Resolves with the milliseconds from `ready` to the socket's close. */
  readonly closed: Promise<number>;
  /** Opens a unary-request gRPC call (`/pkg.Service/Method`, empty message, END_STREAM); returns its id. */
  grpcCall(path: string): number;
  /** Sends a PING of our own (traffic that is no stream). */
  ping(): void;
  destroy(): void;
}

/** Connects to `127.0.0.1:port` with ALPN h2 and speaks HTTP/2 by hand. */
export function connectRawH2(options: RawH2Options): RawH2Connection {
  const socket = tls.connect({ host: "127.0.0.1", port: options.port, servername: "localhost", ca: options.caPem, ALPNProtocols: ["h2"] });
  socket.on("error", () => undefined);
  let nextId = 1;
  let pingsReceived = 0;
  let goaway = false;
  let maxConcurrentStreams: number | undefined;
  const fates = new Map<number, StreamFate>();
  let readyAt = 0;
  const ready = new Promise<void>((resolve, reject) => {
    socket.once("secureConnect", () => {
      if (socket.alpnProtocol !== "h2") return reject(new Error(`ALPN gave ${String(socket.alpnProtocol)}`));
      socket.write(PREFACE);
      socket.write(frame(SETTINGS, 0, 0, Buffer.alloc(0)));
      readyAt = performance.now();
      resolve();
    });
    socket.once("error", reject);
  });
  const closed = new Promise<number>((resolve) => socket.once("close", () => resolve(performance.now() - readyAt)));

  let buffered = Buffer.alloc(0);
  socket.on("data", (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= 9) {
      const length = buffered.readUIntBE(0, 3);
      if (buffered.length < 9 + length) break;
      const type = buffered[3]!;
      const flags = buffered[4]!;
      const stream = buffered.readUInt32BE(5) & 0x7fffffff;
      const payload = buffered.subarray(9, 9 + length);
      buffered = buffered.subarray(9 + length);
      if (type === SETTINGS && (flags & ACK) === 0) {
        for (let i = 0; i + 6 <= payload.length; i += 6) {
          if (payload.readUInt16BE(i) === SETTINGS_MAX_CONCURRENT_STREAMS) maxConcurrentStreams = payload.readUInt32BE(i + 2);
        }
        socket.write(frame(SETTINGS, ACK, 0, Buffer.alloc(0)));
      } else if (type === PING && (flags & ACK) === 0) {
        pingsReceived++;
        if (options.answerPings === true) socket.write(frame(PING, ACK, 0, payload));
      } else if (type === HEADERS && !fates.has(stream)) {
        fates.set(stream, "answered");
      } else if (type === RST_STREAM && !fates.has(stream)) {
        fates.set(stream, "reset");
      } else if (type === GOAWAY) {
        goaway = true;
      }
    }
  });

  return {
    ready,
    closed,
    get maxConcurrentStreams() {
      return maxConcurrentStreams;
    },
    get pingsReceived() {
      return pingsReceived;
    },
    get goaway() {
      return goaway;
    },
    fates,
    grpcCall(path) {
      const id = nextId;
      nextId += 2;
      const block = Buffer.concat(
        [
          [":method", "POST"],
          [":scheme", "https"],
          [":path", path],
          [":authority", "localhost"],
          ["content-type", "application/grpc"],
          ["te", "trailers"],
        ].map(([name, value]) => literal(name!, value!)),
      );
      socket.write(frame(HEADERS, END_HEADERS, id, block));
      // One empty message (5-byte envelope), and the end of the request.
      socket.write(frame(DATA, END_STREAM, id, Buffer.alloc(5)));
      return id;
    },
    ping() {
      socket.write(frame(PING, 0, 0, Buffer.alloc(8)));
    },
    destroy() {
      socket.destroy();
    },
  };
}

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(stream, 5);
  return Buffer.concat([header, payload]);
}

/** HPACK "literal header field without indexing, new name" (RFC 7541 §6.2.2), short strings only. */
function literal(name: string, value: string): Buffer {
  if (name.length > 126 || value.length > 126) throw new Error("header too long for this encoder");
  return Buffer.concat([Buffer.from([0x00, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)]);
}
