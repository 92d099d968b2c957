/**
 * Headless sign-in to the development identity provider: a real authorization-code flow with PKCE
 * (openid-client 6 for discovery, PKCE and the code exchange), with the login form driven over
 * plain HTTPS as a browser would (redirects followed by hand, cookies kept, the form posted).
 * This is what `npm run token` does, and what tests use to sign in as a dev user.
 */
import { createTrustingFetch, type TrustingFetch } from "@lcp/tokens";
import { decodeJwt } from "jose";
import * as oidc from "openid-client";
import { CLI_CLIENT_ID, CLI_REDIRECT_URI } from "./constants.js";

/** Options of {@link signInAs}. */
export interface SignInOptions {
  /** The provider, e.g. `https://localhost:7441`. */
  issuer: string;
  /** The CA (PEM) its certificate chains to (the dev PKI's `ca.crt`). */
  caPem: string;
  username: string;
  password: string;
  /** Default `lcp-cli` (public, PKCE). */
  clientId?: "lcp-cli";
  /** Default the CLI client's registered redirect URI. */
  redirectUri?: string;
}

/** An access token and when it expires. */
export interface SignedIn {
  accessToken: string;
  expiresAt: Date;
}

/** Why a sign-in failed: the provider is not there, it refused the user, or something else went wrong on the way. */
export type SignInFailure = "unreachable" | "refused" | "protocol";

/** A failed sign-in; `reason` lets a caller say what to do (start the provider, check the password). */
export class SignInError extends Error {
  override name = "SignInError";
  constructor(
    readonly reason: SignInFailure,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** At most this many hops from the authorization request to the redirect back (login, consent, resumes). */
const MAX_HOPS = 12;
const NETWORK_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ENOTFOUND", "EHOSTUNREACH", "ETIMEDOUT", "EAI_AGAIN"]);

/**
 * Signs in as `username` and returns an access token for the provider's audience. Throws a
 * {@link SignInError}: `unreachable` when nothing answers at `issuer`, `refused` when the provider
 * refuses the credentials (its message), `protocol` for anything else.
 */
export async function signInAs(options: SignInOptions): Promise<SignedIn> {
  const fetch = createTrustingFetch({ caPem: options.caPem });
  const clientId = options.clientId ?? CLI_CLIENT_ID;
  const redirectUri = options.redirectUri ?? CLI_REDIRECT_URI;
  const config = await discover(options.issuer, clientId, undefined, fetch);

  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const authorizationUrl = oidc.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: "openid",
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
    state,
  });
  const callback = await completeSignIn({ authorizationUrl, redirectUri, fetch, username: options.username, password: options.password });
  let tokens: oidc.TokenEndpointResponse;
  try {
    tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state });
  } catch (err) {
    throw asSignInError(err, options.issuer);
  }
  const exp = decodeJwt(tokens.access_token).exp;
  const expiresAt = exp !== undefined ? new Date(exp * 1000) : new Date(Date.now() + (tokens.expires_in ?? 0) * 1000);
  return { accessToken: tokens.access_token, expiresAt };
}

/**
 * openid-client's discovery of `issuer` through `fetch` (a fetch trusting the provider's CA), with
 * a provider that is not running reported as `unreachable`. `clientSecret` for a confidential client.
 */
export async function discover(issuer: string, clientId: string, clientSecret: string | undefined, fetch: TrustingFetch): Promise<oidc.Configuration> {
  try {
    const config = await oidc.discovery(
      new URL(issuer),
      clientId,
      clientSecret,
      clientSecret === undefined ? oidc.None() : undefined,
      { [oidc.customFetch]: fetch as unknown as oidc.CustomFetch },
    );
    return config;
  } catch (err) {
    throw asSignInError(err, issuer);
  }
}

/** Input of {@link completeSignIn}. */
export interface CompleteSignInInput {
  /** The authorization request (openid-client's `buildAuthorizationUrl`). */
  authorizationUrl: URL;
  /** The client's redirect URI: the hop that goes there is returned, not followed. */
  redirectUri: string;
  /** A fetch trusting the provider's CA. */
  fetch: TrustingFetch;
  username: string;
  password: string;
}

/**
 * Plays the browser from an authorization request to the redirect back to the client: follows
 * redirects by hand with the provider's cookies, posts the credentials to the login form once
 * (never to another origin), and returns the callback URL (with `code` or `error`) for
 * openid-client to check and exchange. A refused sign-in throws `refused` with the page's message.
 */
export async function completeSignIn(input: CompleteSignInInput): Promise<URL> {
  const origin = input.authorizationUrl.origin;
  const target = new URL(input.redirectUri);
  const jar = createCookieJar();
  let url = input.authorizationUrl;
  let form: URLSearchParams | undefined;
  let posted = false;

  for (let hop = 0; hop < MAX_HOPS; hop++) {
    if (url.origin !== origin) throw new SignInError("protocol", `the provider redirected to ${url.origin}, not back to itself or the client`);
    let res: Response;
    try {
      res = await input.fetch(url, {
        method: form ? "POST" : "GET",
        headers: { cookie: jar.header(url), accept: "text/html", ...(form ? { "content-type": "application/x-www-form-urlencoded" } : {}) },
        body: form ? form.toString() : null,
        redirect: "manual",
      });
    } catch (err) {
      throw asSignInError(err, origin);
    }
    form = undefined;
    jar.store(url, res.headers.getSetCookie());

    const location = res.headers.get("location");
    if (res.status >= 300 && res.status < 400 && location) {
      const next = new URL(location, url);
      if (next.origin === target.origin && next.pathname === target.pathname) return next;
      url = next;
      continue;
    }
    const html = await res.text();
    const error = pageError(html);
    // An error on the page that answered the credentials is the provider refusing them.
    if (error !== undefined) throw new SignInError(posted ? "refused" : "protocol", `sign-in refused: ${error}`);
    const action = /<form method="post" action="([^"]+)"/.exec(html)?.[1];
    if (res.status === 200 && action !== undefined && !posted) {
      const to = new URL(unescapeHtml(action), url);
      if (to.origin !== origin) throw new SignInError("protocol", `the login form posts to ${to.origin}, not to the provider`);
      form = new URLSearchParams({ username: input.username, password: input.password });
      posted = true;
      url = to;
      continue;
    }
    throw new SignInError("protocol", `unexpected answer from ${url.origin}${url.pathname}: HTTP ${res.status}${pageText(html)}`);
  }
  throw new SignInError("protocol", `no redirect back to ${input.redirectUri} after ${MAX_HOPS} steps`);
}

/** Cookies of one origin, by name and path, as a browser keeps them for the provider. */
function createCookieJar() {
  const cookies = new Map<string, { name: string; value: string; path: string }>();
  return {
    store(url: URL, setCookies: readonly string[]) {
      for (const line of setCookies) {
        const [pair = "", ...attributes] = line.split(";");
        const eq = pair.indexOf("=");
        if (eq <= 0) continue;
        const name = pair.slice(0, eq).trim();
        const value = pair.slice(eq + 1).trim();
        let path = url.pathname.replace(/\/[^/]*$/, "") || "/";
        let expired = value === "";
        for (const attribute of attributes) {
          const [key = "", val = ""] = attribute.split("=").map((s) => s.trim());
          if (key.toLowerCase() === "path" && val.startsWith("/")) path = val;
          if (key.toLowerCase() === "max-age" && Number(val) <= 0) expired = true;
          if (key.toLowerCase() === "expires" && Date.parse(val) <= Date.now()) expired = true;
        }
        const id = `${name};${path}`;
        if (expired) cookies.delete(id);
        else cookies.set(id, { name, value, path });
      }
    },
    header(url: URL): string {
      return [...cookies.values()]
        .filter((c) => url.pathname === c.path || url.pathname.startsWith(c.path.endsWith("/") ? c.path : `${c.path}/`))
        .map((c) => `${c.name}=${c.value}`)
        .join("; ");
    },
  };
}

/** The refusal a provider page shows (`<p class="error">`), if any. */
function pageError(html: string): string | undefined {
  const match = /<p class="error"[^>]*>([\s\S]*?)<\/p>/.exec(html);
  return match ? unescapeHtml(match[1]!.replace(/<[^>]*>/g, "")).trim() : undefined;
}

/** The first lines of a page's text, for an error message. */
function pageText(html: string): string {
  const text = unescapeHtml(html.replace(/<style[\s\S]*?<\/style>/g, "").replace(/<[^>]*>/g, " "))
    .replace(/\s+/g, " ")
    .trim()
    .slice(0, 200);
  return text ? ` (${text})` : "";
}

function unescapeHtml(text: string): string {
  return text
    .replace(/&#(\d+);/g, (_, n: string) => String.fromCharCode(Number(n)))
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&amp;/g, "&");
}

/** Maps a failure on the way (network, TLS, OAuth error) to a {@link SignInError}. */
function asSignInError(err: unknown, issuer: string): SignInError {
  if (err instanceof SignInError) return err;
  for (let cause: unknown = err, depth = 0; cause instanceof Error && depth < 5; cause = cause.cause, depth++) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code !== undefined && NETWORK_CODES.has(code)) {
      return new SignInError("unreachable", `nothing answers at ${issuer} (${code})`, { cause: err });
    }
  }
  if (err instanceof oidc.AuthorizationResponseError || err instanceof oidc.ResponseBodyError) {
    return new SignInError(err.error === "access_denied" ? "refused" : "protocol", `${err.error}: ${err.error_description ?? err.message}`, { cause: err });
  }
  const deepest = deepestMessage(err);
  return new SignInError("protocol", `sign-in at ${issuer} failed: ${deepest}`, { cause: err });
}

function deepestMessage(err: unknown): string {
  const messages: string[] = [];
  for (let cause: unknown = err, depth = 0; cause instanceof Error && depth < 5; cause = cause.cause, depth++) messages.push(cause.message);
  return messages.join(": ") || String(err);
}
