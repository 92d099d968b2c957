/**
 * A `fetch` over node:https that trusts extra CA certificates (a private or development CA) in
 * addition to the system roots, for the few HTTPS calls the platform makes to an OIDC issuer:
 * the admin-token verifier's JWKS (`OIDC_CA_FILE`) and the dev tools' sign-in. Node's global fetch
 * cannot take a CA per call without an undici dispatcher, which is not a dependency of ours.
 */
import { X509Certificate } from "node:crypto";
import { request as httpsRequest } from "node:https";
import { rootCertificates } from "node:tls";

/** The `init` a {@link TrustingFetch} understands: the subset jose, openid-client and our tools pass. */
export interface TrustingFetchInit {
  method?: string;
  headers?: ConstructorParameters<typeof Headers>[0];
  body?: string | URLSearchParams | Uint8Array | ArrayBuffer | null;
  signal?: AbortSignal | null;
  /** Ignored: redirects are never followed, a 3xx response is returned as it is (like `"manual"`). */
  redirect?: "follow" | "manual" | "error";
}

/** A fetch function bound to one trust store; see {@link createTrustingFetch}. */
export type TrustingFetch = (url: string | URL, init?: TrustingFetchInit) => Promise<Response>;

/** Options of {@link createTrustingFetch}. */
export interface TrustingFetchOptions {
  /** One or more PEM certificates to trust besides the system roots; none: the system roots alone (a public issuer). */
  caPem?: string | undefined;
  /** Also trust Node's bundled root CAs (default true): a private CA is added, never substituted. */
  systemRoots?: boolean;
  /** Gives up on a call with no answer after this long (default 10 s) unless a signal ends it sooner. */
  timeoutMs?: number;
  /** Refuses a response body larger than this (default 1 MiB): a JWKS or a login page is small. */
  maxResponseBytes?: number;
}

/** The certificates of a PEM bundle; throws a `TypeError` naming the problem when there are none or one does not parse. */
export function parseCertificateBundle(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new TypeError("holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch {
      throw new TypeError(`certificate ${i + 1} of ${blocks.length} does not parse`);
    }
  });
}

const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304]);

/**
 * Creates a fetch that trusts `caPem` (plus the system roots unless `systemRoots: false`), checks
 * the server's name as usual, never follows redirects and bounds time and response size. Only
 * `https:` URLs are accepted. The bundle is parsed up front, so a bad one fails here, not on the
 * first call.
 */
export function createTrustingFetch(options: TrustingFetchOptions): TrustingFetch {
  const extra = options.caPem === undefined ? [] : parseCertificateBundle(options.caPem).map((c) => c.toString());
  if (options.systemRoots === false && extra.length === 0) throw new TypeError("systemRoots: false needs caPem: there would be nothing to trust");
  const ca = options.systemRoots === false ? extra : [...rootCertificates, ...extra];
  const timeoutMs = options.timeoutMs ?? 10_000;
  const maxBytes = options.maxResponseBytes ?? 1024 * 1024;

  return (input, init = {}) =>
    new Promise<Response>((resolve, reject) => {
      const url = new URL(input);
      if (url.protocol !== "https:") {
        reject(new TypeError(`only https URLs can be fetched, not ${url.protocol}`));
        return;
      }
      const signal = init.signal ?? undefined;
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const headers: Record<string, string> = {};
      new Headers(init.headers).forEach((value, name) => {
        headers[name] = value;
      });
      let body: Buffer | undefined;
      if (init.body instanceof URLSearchParams) {
        body = Buffer.from(init.body.toString());
        headers["content-type"] ??= "application/x-www-form-urlencoded;charset=UTF-8";
      } else if (typeof init.body === "string") {
        body = Buffer.from(init.body);
        headers["content-type"] ??= "text/plain;charset=UTF-8";
      } else if (init.body instanceof Uint8Array) {
        body = Buffer.from(init.body);
      } else if (init.body instanceof ArrayBuffer) {
        body = Buffer.from(init.body);
      } else if (init.body != null) {
        reject(new TypeError("only string, URLSearchParams and byte bodies can be sent"));
        return;
      }
      if (body !== undefined) headers["content-length"] = String(body.length);

      const req = httpsRequest(url, { method: init.method ?? "GET", headers, ca, agent: false, timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxBytes) {
            req.destroy(new Error(`response from ${url.origin} is larger than ${maxBytes} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on("error", reject);
        res.on("end", () => {
          const responseHeaders = new Headers();
          for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) responseHeaders.append(res.rawHeaders[i]!, res.rawHeaders[i + 1]!);
          const status = res.statusCode ?? 500;
          resolve(
            new Response(NULL_BODY_STATUS.has(status) ? null : Buffer.concat(chunks), {
              status,
              statusText: res.statusMessage ?? "",
              headers: responseHeaders,
            }),
          );
        });
      });
      req.on("timeout", () => req.destroy(Object.assign(new Error(`no answer from ${url.origin} within ${timeoutMs} ms`), { code: "ETIMEDOUT" })));
      req.on("error", reject);
      if (signal) {
        const onAbort = () => req.destroy(signal.reason instanceof Error ? signal.reason : new Error("aborted"));
        signal.addEventListener("abort", onAbort, { once: true });
        req.once("close", () => signal.removeEventListener("abort", onAbort));
      }
      req.end(body);
    });
}
