/**
 * A `fetch` for talking to the OIDC issuer that trusts the system CAs plus the configured extra
 * CA (`OIDC_CA_FILE`, the dev CA in development), over node's https with kept-alive connections.
 * Node's own fetch cannot take a CA without undici's dispatcher, which is not a dependency here.
 */
import { Agent, request } from "node:https";
import { rootCertificates } from "node:tls";

/** What openid-client hands a custom fetch. */
export interface IssuerFetchInit {
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly body?: string | URLSearchParams | Uint8Array | ArrayBuffer | ReadableStream | null | undefined;
  readonly signal?: AbortSignal | undefined;
}

/** The fetch used with the issuer, and how to close its kept-alive connections. */
export interface IssuerFetch {
  fetch(url: string, init: IssuerFetchInit): Promise<Response>;
  close(): void;
}

/** The most an issuer's answer (discovery, JWKS, tokens) may hold before it is refused. */
export const MAX_ISSUER_RESPONSE_BYTES = 1024 * 1024;
const DEFAULT_TIMEOUT_MS = 10_000;

/** Creates the issuer fetch; `extraCaPem` is trusted in addition to the system's CAs. */
export function createIssuerFetch(options: { readonly extraCaPem?: string | undefined; readonly timeoutMs?: number }): IssuerFetch {
  const agent = new Agent({
    keepAlive: true,
    maxSockets: 16,
    ...(options.extraCaPem ? { ca: [...rootCertificates, options.extraCaPem] } : {}),
  });
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return {
    close: () => agent.destroy(),
    fetch: (url, init) =>
      new Promise<Response>((resolve, reject) => {
        const target = new URL(url);
        if (target.protocol !== "https:") return reject(new TypeError("the issuer is only spoken to over https"));
        let body: Buffer | undefined;
        const raw = init.body;
        if (raw instanceof URLSearchParams || typeof raw === "string") body = Buffer.from(raw.toString());
        else if (raw instanceof Uint8Array) body = Buffer.from(raw);
        else if (raw instanceof ArrayBuffer) body = Buffer.from(new Uint8Array(raw));
        else if (raw != null) return reject(new TypeError("streamed request bodies are not supported"));
        const headers: Record<string, string | number> = { ...init.headers };
        if (body) headers["content-length"] = body.length;
        const req = request(target, { method: init.method ?? "GET", headers, agent, timeout: timeoutMs }, (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on("data", (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_ISSUER_RESPONSE_BYTES) {
              req.destroy(new Error(`the issuer's answer exceeds ${MAX_ISSUER_RESPONSE_BYTES} bytes`));
              return;
            }
            chunks.push(chunk);
          });
          res.on("end", () => {
            const responseHeaders = new Headers();
            for (const [name, value] of Object.entries(res.headers)) {
              if (value === undefined) continue;
              for (const v of Array.isArray(value) ? value : [value]) responseHeaders.append(name, v);
            }
            const status = res.statusCode ?? 502;
            // A Response cannot carry a body with these statuses.
            const nullBody = status === 204 || status === 205 || status === 304;
            resolve(new Response(nullBody ? null : Buffer.concat(chunks), { status, statusText: res.statusMessage ?? "", headers: responseHeaders }));
          });
          res.on("error", reject);
        });
        req.on("timeout", () => req.destroy(new Error(`the issuer did not answer within ${timeoutMs} ms`)));
        req.on("error", reject);
        if (init.signal) {
          if (init.signal.aborted) req.destroy(new Error("aborted"));
          else init.signal.addEventListener("abort", () => req.destroy(new Error("aborted")), { once: true });
        }
        req.end(body);
      }),
  };
}
