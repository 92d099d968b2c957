/**
 * The small HTTP vocabulary of the console server: security headers on every response, cookies,
 * JSON and Connect error answers, and the few HTML pages it renders itself.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";

/**
 * The headers every response carries. `form-action` also allows the issuer's origin, for an
 * identity provider that answers a sign-in form post with a redirect back to itself.
 */
export function securityHeaders(issuerOrigin: string): OutgoingHttpHeaders {
  return {
    "content-security-policy": [
      "default-src 'self'",
      "script-src 'self'",
      "style-src 'self'",
      "img-src 'self' data:",
      "connect-src 'self'",
      "font-src 'self'",
      "object-src 'none'",
      "base-uri 'none'",
      "frame-ancestors 'none'",
      `form-action 'self' ${issuerOrigin}`,
    ].join("; "),
    "strict-transport-security": "max-age=31536000",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "x-frame-options": "DENY",
  };
}

/** The session cookie: `__Host-` pins it to this origin, path `/`, Secure, no Domain. */
export const SESSION_COOKIE = "__Host-lcp_session";
/** The short-lived cookie naming a pending sign-in (between /auth/login and /auth/callback). */
export const LOGIN_COOKIE = "__Host-lcp_login";

// Cookie values we set are base64url; anything longer than this is not ours.
const MAX_COOKIE_VALUE = 256;
const MAX_COOKIES = 50;

/** The value of one cookie in the request, if present and of a plausible size. Bounded parse. */
export function readCookie(req: IncomingMessage, name: string): string | undefined {
  const header = req.headers.cookie;
  if (typeof header !== "string") return undefined;
  let count = 0;
  for (const part of header.split(";")) {
    if (++count > MAX_COOKIES) return undefined;
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() !== name) continue;
    const value = part.slice(eq + 1).trim();
    return value.length > 0 && value.length <= MAX_COOKIE_VALUE ? value : undefined;
  }
  return undefined;
}

/** A `Set-Cookie` value for one of our cookies: HttpOnly, Secure, SameSite=Lax, Path=/. */
export function cookie(name: string, value: string, maxAgeSeconds?: number): string {
  const age = maxAgeSeconds === undefined ? "" : `; Max-Age=${Math.max(0, Math.floor(maxAgeSeconds))}`;
  return `${name}=${value}; HttpOnly; Secure; SameSite=Lax; Path=/${age}`;
}

/** A `Set-Cookie` value that deletes one of our cookies. */
export function clearedCookie(name: string): string {
  return cookie(name, "", 0);
}

/** Adds a `Set-Cookie` to the response, replacing one set before for the same cookie. */
export function addCookie(res: ServerResponse, value: string): void {
  const existing = res.getHeader("set-cookie");
  const list = existing === undefined ? [] : Array.isArray(existing) ? existing : [String(existing)];
  const name = value.slice(0, value.indexOf("=") + 1);
  res.setHeader("set-cookie", [...list.filter((c) => !c.startsWith(name)), value]);
}

/** Ends the response with a JSON body (never cached: these answers are per session). */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
  });
  res.end(text);
}

/** A Connect error code, as written in the JSON error body. */
export type ConnectCodeName =
  | "canceled"
  | "unknown"
  | "invalid_argument"
  | "deadline_exceeded"
  | "not_found"
  | "already_exists"
  | "permission_denied"
  | "resource_exhausted"
  | "failed_precondition"
  | "aborted"
  | "out_of_range"
  | "unimplemented"
  | "internal"
  | "unavailable"
  | "data_loss"
  | "unauthenticated";

/**
 * Answers a Connect unary call with an error in the Connect protocol's JSON form
 * (`{ "code": "...", "message": "..." }`), so connect-web raises a ConnectError with that code.
 * `status` is the HTTP status (Connect's mapping unless a more exact one applies, e.g. 413).
 */
export function sendConnectError(res: ServerResponse, status: number, code: ConnectCodeName, message: string): void {
  sendJson(res, status, { code, message });
}

/** Ends the response with a redirect (302) to a same-origin path or an absolute URL. */
export function redirect(res: ServerResponse, location: string): void {
  res.writeHead(302, { location, "cache-control": "no-store", "content-length": 0 });
  res.end();
}

/** Escapes text for HTML element content and double-quoted attributes. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

/**
 * Ends the response with a small HTML page: a heading, one sentence, and one link. No script, no
 * inline style (the CSP allows neither), nothing from the request echoed unescaped.
 */
export function sendPage(res: ServerResponse, status: number, page: { title: string; message: string; link: { href: string; text: string } }): void {
  const html = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${escapeHtml(page.title)} · Licensing console</title></head>
<body>
<main>
<h1>${escapeHtml(page.title)}</h1>
<p>${escapeHtml(page.message)}</p>
<p><a href="${escapeHtml(page.link.href)}">${escapeHtml(page.link.text)}</a></p>
</main>
</body>
</html>
`;
  res.writeHead(status, {
    "content-type": "text/html; charset=utf-8",
    "content-length": Buffer.byteLength(html),
    "cache-control": "no-store",
  });
  res.end(html);
}

/** Ends the response with plain text (404s and the like). */
export function sendText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(text), "cache-control": "no-store" });
  res.end(text);
}

/** Why a request body could not be read. */
export type BodyError = "too_large" | "aborted";

/**
 * Reads a request body of at most `limit` bytes. A declared or actual size beyond it rejects
 * with `"too_large"` as soon as it is known (the rest is not read); the request timeout of the
 * server bounds a body that arrives too slowly.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = req.headers["content-length"];
    if (declared !== undefined && Number(declared) > limit) return reject("too_large" satisfies BodyError);
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        req.pause();
        reject("too_large" satisfies BodyError);
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
    };
    const onAbort = () => {
      cleanup();
      reject("aborted" satisfies BodyError);
    };
    const cleanup = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onAbort);
      req.off("close", onClose);
    };
    const onClose = () => {
      if (!req.complete) onAbort();
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onAbort);
    req.on("close", onClose);
  });
}
