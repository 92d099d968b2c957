/**
 * The checks every request from a browser passes before it may act: a live session from the
 * cookie, the CSRF token and Origin on state-changing requests, and a return path that can only
 * lead back into the console's screens.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { addCookie, clearedCookie, readCookie, sendConnectError, SESSION_COOKIE } from "./http.js";
import type { Session, Sessions } from "./sessions.js";

/** Where a sign-in returns to when no (acceptable) return path was given. */
export const DEFAULT_RETURN = "/licensing";
const MAX_RETURN_LENGTH = 2048;
const PLACEHOLDER_ORIGIN = "https://console.invalid";

/**
 * A same-origin path under `/licensing` (with its query), normalised; anything else —
 * absolute URLs, `//host`, backslashes, control characters, paths that climb out — becomes
 * `/licensing`. Used for `?return=` and for the page a signed-out visitor asked for.
 */
export function safeReturnPath(value: string | null | undefined): string {
  if (typeof value !== "string" || value.length > MAX_RETURN_LENGTH || !value.startsWith("/") || value.startsWith("//")) return DEFAULT_RETURN;
  if (value.includes("\\") || /[\x00-\x1F\x7F]/.test(value)) return DEFAULT_RETURN;
  let url: URL;
  try {
    url = new URL(value, PLACEHOLDER_ORIGIN);
  } catch {
    return DEFAULT_RETURN;
  }
  if (url.origin !== PLACEHOLDER_ORIGIN) return DEFAULT_RETURN;
  if (url.pathname !== "/licensing" && !url.pathname.startsWith("/licensing/")) return DEFAULT_RETURN;
  return url.pathname + url.search;
}

/** The message of every 401 on the API: connect-web raises it as ConnectError(Unauthenticated). */
export const SESSION_ENDED_MESSAGE = "session ended: sign in again";

/**
 * The live session of the request's cookie, or undefined. When a cookie was sent but names no
 * live session, the response is told to delete it.
 */
export async function sessionOf(req: IncomingMessage, res: ServerResponse, sessions: Sessions): Promise<Session | undefined> {
  const id = readCookie(req, SESSION_COOKIE);
  const session = await sessions.live(id);
  if (!session && req.headers.cookie?.includes(`${SESSION_COOKIE}=`)) addCookie(res, clearedCookie(SESSION_COOKIE));
  return session;
}

/** Answers 401 in the Connect error format and deletes the session cookie. */
export function refuseUnauthenticated(res: ServerResponse): void {
  addCookie(res, clearedCookie(SESSION_COOKIE));
  sendConnectError(res, 401, "unauthenticated", SESSION_ENDED_MESSAGE);
}

const digest = (text: string) => createHash("sha256").update(text).digest();

/**
 * Whether a state-changing request carries the session's CSRF token in `x-csrf-token`
 * (compared in constant time) and, when it names an Origin, comes from the console's own.
 * A cross-site page can make the browser send the cookie, but can neither read the token nor
 * set a custom header without a CORS preflight the console never grants.
 */
export function passesCsrf(req: IncomingMessage, session: Session, publicOrigin: string): boolean {
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== publicOrigin) return false;
  const token = req.headers["x-csrf-token"];
  if (typeof token !== "string" || token.length === 0 || token.length > 256) return false;
  return timingSafeEqual(digest(token), digest(session.csrfToken));
}

/** Answers 403 in the Connect error format for a failed CSRF check. */
export function refuseCsrf(res: ServerResponse): void {
  sendConnectError(res, 403, "permission_denied", "CSRF check failed: send the x-csrf-token header from /auth/session, from the console's own origin");
}
