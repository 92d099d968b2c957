/**
 * `/auth/*`: signing in (authorization code + PKCE with the issuer), the session as the web app
 * sees it, and signing out. Every failure of a sign-in ends on a small page with a way to try
 * again; nothing from the issuer's answer or an exception is shown beyond a short code.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { PERMISSIONS, permissionsFor } from "@lcp/domain";
import type { Logger } from "pino";
import { passesCsrf, refuseCsrf, refuseUnauthenticated, safeReturnPath, sessionOf } from "./guards.js";
import { addCookie, clearedCookie, cookie, LOGIN_COOKIE, readBody, readCookie, redirect, sendConnectError, sendJson, sendPage, SESSION_COOKIE } from "./http.js";
import type { OidcRelyingParty } from "./oidc.js";
import { PENDING_LOGIN_TTL_MS, type PendingLogins } from "./pending-logins.js";
import { errorFields, type Sessions } from "./sessions.js";

/** What the auth routes work with. */
export interface AuthContext {
  readonly log: Logger;
  readonly sessions: Sessions;
  readonly pendingLogins: PendingLogins;
  readonly relyingParty: OidcRelyingParty;
  /** The console's public origin (`PUBLIC_URL`). */
  readonly publicOrigin: string;
}

/** What `GET /auth/session` answers for a live session. */
export interface SessionView {
  readonly subject: string;
  readonly name: string;
  readonly roles: readonly string[];
  /** What the roles allow, in the order of `PERMISSIONS` (@lcp/domain). */
  readonly permissions: readonly string[];
  /** Send it as `x-csrf-token` on every POST. */
  readonly csrfToken: string;
  /** ISO 8601: when the session ends unless used before (idle timeout, capped by the maximum age). */
  readonly expiresAt: string;
}

const signInAgain = (returnTo = "/licensing") => ({ href: `/auth/login?return=${encodeURIComponent(returnTo)}`, text: "Sign in again" });

/** `GET /auth/login?return=/licensing/...`: sends the browser to the issuer (or straight back when already signed in). */
export async function login(ctx: AuthContext, req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
  const returnTo = safeReturnPath(query.get("return"));
  if (await sessionOf(req, res, ctx.sessions)) {
    redirect(res, returnTo);
    return;
  }
  let begun;
  try {
    begun = await ctx.relyingParty.begin();
  } catch (err) {
    ctx.log.warn({ err: errorFields(err) }, "sign-in unavailable: the identity provider could not be used");
    sendPage(res, 503, {
      title: "Sign-in is unavailable",
      message: "The identity provider could not be reached. Try again in a moment.",
      link: signInAgain(returnTo),
    });
    return;
  }
  const id = await ctx.pendingLogins.add({ ...begun.pending, returnTo });
  addCookie(res, cookie(LOGIN_COOKIE, id, PENDING_LOGIN_TTL_MS / 1000));
  redirect(res, begun.url);
}

/** `GET /auth/callback`: the issuer's answer; a session on success, an error page otherwise. */
export async function callback(ctx: AuthContext, req: IncomingMessage, res: ServerResponse, rawQuery: string): Promise<void> {
  const query = new URLSearchParams(rawQuery);
  const pending = await ctx.pendingLogins.take(readCookie(req, LOGIN_COOKIE));
  addCookie(res, clearedCookie(LOGIN_COOKIE));
  const error = query.get("error");
  if (error !== null) {
    // The issuer's error code is a short token; its description is not shown (it is the issuer's text).
    const code = /^[A-Za-z0-9_.-]{1,64}$/.test(error) ? error : "an error";
    ctx.log.info({ error: code }, "sign-in refused by the identity provider");
    sendPage(res, 400, { title: "Sign-in was not completed", message: `The identity provider answered ${code}.`, link: signInAgain(pending?.returnTo) });
    return;
  }
  if (!pending) {
    // A repeated callback (a double click, the back button) from a browser that is signed in.
    if (await sessionOf(req, res, ctx.sessions)) {
      redirect(res, "/licensing");
      return;
    }
    sendPage(res, 400, {
      title: "Sign-in expired",
      message: "This sign-in was not started here, was already used, or took longer than 10 minutes.",
      link: signInAgain(),
    });
    return;
  }
  let signedIn;
  try {
    signedIn = await ctx.relyingParty.finish(rawQuery, pending);
  } catch (err) {
    ctx.log.warn({ err: errorFields(err) }, "sign-in failed at the code exchange");
    sendPage(res, 400, { title: "Sign-in failed", message: "The sign-in could not be completed.", link: signInAgain(pending.returnTo) });
    return;
  }
  // A session the browser still held is replaced, never reused.
  const previous = readCookie(req, SESSION_COOKIE);
  if (previous !== undefined) await ctx.sessions.end(previous);
  const session = await ctx.sessions.create(signedIn);
  ctx.log.info({ subject: session.subject, roles: session.roles }, "signed in");
  addCookie(res, cookie(SESSION_COOKIE, session.id));
  redirect(res, pending.returnTo);
}

/** `GET /auth/session`: who is signed in, what they may do, and the CSRF token; 401 JSON without a session. */
export async function sessionInfo(ctx: AuthContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const live = await sessionOf(req, res, ctx.sessions);
  // Reading the session does not extend it (a screen polling it must not keep it alive), but it
  // makes sure the session can still call the services: tokens are refreshed when due.
  const session = live && (await ctx.sessions.withFreshTokens(live));
  if (!session) {
    if (live) addCookie(res, clearedCookie(SESSION_COOKIE));
    sendJson(res, 401, { error: "unauthenticated", message: live ? "session ended: sign in again" : "not signed in" });
    return;
  }
  const granted = permissionsFor(session.roles);
  const view: SessionView = {
    subject: session.subject,
    name: session.name,
    roles: session.roles,
    permissions: PERMISSIONS.filter((p) => granted.has(p)),
    csrfToken: session.csrfToken,
    expiresAt: new Date(session.expiresAt).toISOString(),
  };
  sendJson(res, 200, view);
}

/** `POST /auth/logout` (CSRF-checked): ends the session; answers where to send the browser next. */
export async function logout(ctx: AuthContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const session = await sessionOf(req, res, ctx.sessions);
  if (!session) {
    refuseUnauthenticated(res);
    return;
  }
  if (!passesCsrf(req, session, ctx.publicOrigin)) {
    refuseCsrf(res);
    return;
  }
  try {
    await readBody(req, 4096);
  } catch {
    res.setHeader("connection", "close");
    sendConnectError(res, 413, "resource_exhausted", "sign-out takes no body");
    return;
  }
  await ctx.sessions.end(session.id);
  addCookie(res, clearedCookie(SESSION_COOKIE));
  ctx.log.info({ subject: session.subject }, "signed out");
  const signedOut = `${ctx.publicOrigin}/auth/signed-out`;
  const endSession = await ctx.relyingParty.endSessionUrl(signedOut);
  sendJson(res, 200, { redirect: endSession ?? "/auth/signed-out" });
}

/** `GET /auth/signed-out`: the page the browser lands on after signing out. */
export function signedOut(res: ServerResponse): void {
  sendPage(res, 200, { title: "You are signed out", message: "Your console session has ended.", link: { href: "/auth/login", text: "Sign in" } });
}
