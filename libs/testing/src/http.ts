/**
 * Plain HTTPS calls as curl or a script makes them (HTTP/1.1 or HTTP/2, JSON in and out), for
 * tests of the `google.api.http` paths a listener serves next to gRPC and Connect.
 */
import * as http2 from "node:http2";
import * as https from "node:https";

/** One HTTP call. */
export interface HttpCallOptions {
  /** The listener's base URL (`https://localhost:<port>`). */
  readonly baseUrl: string;
  /** The CA the server certificate chains to. */
  readonly caPem: string;
  readonly method: string;
  /** Path and query, e.g. `/licenses?page_size=5`. */
  readonly path: string;
  /** Sent as JSON (`content-type: application/json`) unless a string, sent as is. */
  readonly body?: unknown;
  /** Sent as `authorization: Bearer <token>`. */
  readonly token?: string;
  /** A client certificate (a box's). */
  readonly cert?: { readonly certPem: string; readonly keyPem: string };
  /** Extra request headers. */
  readonly headers?: Readonly<Record<string, string>>;
  /** HTTP/2 instead of HTTP/1.1. */
  readonly h2?: boolean;
}

/** The answer: status, headers, the raw body and the body parsed as JSON (undefined when not JSON). */
export interface HttpAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly text: string;
  readonly json: any;
}

/** Makes one call on a fresh connection and closes it. */
export async function httpCall(options: HttpCallOptions): Promise<HttpAnswer> {
  const body = options.body === undefined ? undefined : typeof options.body === "string" ? options.body : JSON.stringify(options.body);
  const headers: Record<string, string> = {
    // As curl sends it: node's client would send a GET's body without a length (read as a second request).
    ...(body !== undefined ? { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) } : {}),
    ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
    ...options.headers,
  };
  const tls = { ca: options.caPem, ...(options.cert ? { cert: options.cert.certPem, key: options.cert.keyPem } : {}) };
  const done = (status: number, h: HttpAnswer["headers"], chunks: Buffer[]): HttpAnswer => {
    const text = Buffer.concat(chunks).toString("utf8");
    let json: unknown;
    try {
      json = text === "" ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status, headers: h, text, json };
  };
  if (options.h2) {
    const session = http2.connect(options.baseUrl, tls);
    try {
      return await new Promise<HttpAnswer>((resolve, reject) => {
        session.once("error", reject);
        // node ends a GET's stream at once unless told there is a body.
        const req = session.request({ ":method": options.method, ":path": options.path, ...headers }, { endStream: body === undefined });
        const chunks: Buffer[] = [];
        let status = 0;
        let responseHeaders: HttpAnswer["headers"] = {};
        req.on("response", (h) => {
          status = Number(h[":status"]);
          responseHeaders = h;
        });
        req.on("data", (c: Buffer) => chunks.push(c));
        req.on("end", () => resolve(done(status, responseHeaders, chunks)));
        req.on("error", reject);
        req.end(body);
      });
    } finally {
      session.close();
    }
  }
  return new Promise<HttpAnswer>((resolve, reject) => {
    const url = new URL(options.path, options.baseUrl);
    const req = https.request(url, { method: options.method, headers, agent: false, ...tls }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve(done(res.statusCode ?? 0, res.headers, chunks)));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}
