/**
 * The console as an OIDC relying party (`openid-client` 6): authorization code with PKCE (S256),
 * state and nonce; the code exchanged with the client secret; tokens refreshed with the refresh
 * token; RP-initiated logout when the issuer offers it. Discovery is lazy and retried, so the
 * console starts (and serves its pages) while the issuer is still coming up.
 */
import { findForbiddenCharacter } from "@lcp/domain";
import { decodeJwt, type JWTPayload } from "jose";
import { createTrustingFetch, readClaim } from "@lcp/tokens";
import * as client from "openid-client";
import { readClientSecret, type OidcClientConfig } from "./config.js";

/** Who signed in and the tokens the session keeps (server-side only). */
export interface SignedIn {
  readonly subject: string;
  readonly name: string;
  readonly roles: readonly string[];
  readonly accessToken: string;
  /** Milliseconds since the epoch, on the console's clock. */
  readonly accessTokenExpiresAt: number;
  readonly refreshToken?: string | undefined;
}

/** What a refresh yields; `subject` and `name` stay the session's. */
export type Refreshed = Omit<SignedIn, "subject" | "name">;

/** What must be kept between sending the browser to the issuer and its return. */
export interface PendingSignIn {
  readonly state: string;
  readonly nonce: string;
  readonly codeVerifier: string;
}

/** The relying party, as the routes use it. */
export interface OidcRelyingParty {
  /** The authorization URL to send the browser to, and what to keep for the callback. */
  begin(): Promise<{ url: string; pending: PendingSignIn }>;
  /**
   * Exchanges the callback's code (its query string as received) for tokens, checking state,
   * nonce, PKCE, the issuer and the ID token. Throws on any failure.
   */
  finish(callbackQuery: string, pending: PendingSignIn): Promise<SignedIn>;
  /** Exchanges a refresh token for fresh tokens. Throws on any failure. */
  refresh(refreshToken: string): Promise<Refreshed>;
  /** The issuer's end-session URL returning to `postLogoutRedirectUri`, or undefined when it has none. */
  endSessionUrl(postLogoutRedirectUri: string): Promise<string | undefined>;
}

/** Options of {@link createOidcRelyingParty}. */
export interface OidcRelyingPartyOptions {
  readonly config: OidcClientConfig;
  /** `PUBLIC_URL/auth/callback`. */
  readonly redirectUri: string;
  /** The console's clock (ms), so token lifetimes agree with session timing. */
  readonly now: () => number;
}

/** Assumed lifetime of an access token whose response says nothing of it. */
const DEFAULT_ACCESS_TOKEN_SECONDS = 300;
const MAX_ROLES = 100;
const MAX_ROLE_LENGTH = 128;
const MAX_NAME_LENGTH = 200;

/** Creates the relying party; nothing is fetched until the first sign-in. */
export function createOidcRelyingParty(options: OidcRelyingPartyOptions): OidcRelyingParty {
  const { config, redirectUri, now } = options;
  // The issuer's CA (OIDC_CA_FILE, the dev CA in development) is added to the system roots.
  const issuerFetch = createTrustingFetch({ caPem: config.caPem });
  let discovered: Promise<client.Configuration> | undefined;

  const configuration = (): Promise<client.Configuration> => {
    discovered ??= (async () => {
      const secret = "value" in config.clientSecret ? config.clientSecret.value : await readClientSecret(config.clientSecret.file, "OIDC_CLIENT_SECRET_FILE");
      return client.discovery(new URL(config.issuer), config.clientId, { redirect_uris: [redirectUri], response_types: ["code"] }, client.ClientSecretBasic(secret), {
        [client.customFetch]: issuerFetch as client.CustomFetch,
        timeout: 10,
      });
    })();
    // A failed discovery (the issuer not up yet) is tried again on the next sign-in.
    discovered.catch(() => (discovered = undefined));
    return discovered;
  };

  const tokensOf = (tokens: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers, idClaims: JWTPayload | undefined): Refreshed => {
    const accessClaims = jwtClaims(tokens.access_token);
    const seconds = tokens.expiresIn() ?? (typeof accessClaims?.exp === "number" ? accessClaims.exp - Math.floor(now() / 1000) : DEFAULT_ACCESS_TOKEN_SECONDS);
    return {
      roles: rolesFrom(accessClaims, config.rolesClaim) ?? rolesFrom(idClaims, config.rolesClaim) ?? [],
      accessToken: tokens.access_token,
      accessTokenExpiresAt: now() + Math.max(0, seconds) * 1000,
      refreshToken: tokens.refresh_token,
    };
  };

  return {
    async begin() {
      const rp = await configuration();
      const pending: PendingSignIn = { state: client.randomState(), nonce: client.randomNonce(), codeVerifier: client.randomPKCECodeVerifier() };
      const url = client.buildAuthorizationUrl(rp, {
        redirect_uri: redirectUri,
        scope: config.scopes,
        code_challenge: await client.calculatePKCECodeChallenge(pending.codeVerifier),
        code_challenge_method: "S256",
        state: pending.state,
        nonce: pending.nonce,
      });
      return { url: url.href, pending };
    },

    async finish(callbackQuery, pending) {
      const rp = await configuration();
      const current = new URL(redirectUri);
      current.search = callbackQuery;
      const tokens = await client.authorizationCodeGrant(rp, current, {
        pkceCodeVerifier: pending.codeVerifier,
        expectedState: pending.state,
        expectedNonce: pending.nonce,
        idTokenExpected: true,
      });
      const idClaims = tokens.claims();
      if (!idClaims) throw new Error("the issuer returned no ID token");
      const subject = claimText(idClaims.sub, 256);
      if (!subject) throw new Error("the ID token's subject is not plain text");
      const name = claimText(idClaims.name, MAX_NAME_LENGTH) ?? claimText(idClaims.preferred_username, MAX_NAME_LENGTH) ?? claimText(idClaims.email, MAX_NAME_LENGTH) ?? subject;
      return { subject, name, ...tokensOf(tokens, idClaims) };
    },

    async refresh(refreshToken) {
      const rp = await configuration();
      const tokens = await client.refreshTokenGrant(rp, refreshToken);
      const refreshed = tokensOf(tokens, tokens.claims());
      // An issuer that does not rotate refresh tokens answers without one: keep using ours.
      return { ...refreshed, refreshToken: refreshed.refreshToken ?? refreshToken };
    },

    async endSessionUrl(postLogoutRedirectUri) {
      let rp: client.Configuration;
      try {
        rp = await configuration();
      } catch {
        return undefined;
      }
      if (!rp.serverMetadata().end_session_endpoint) return undefined;
      // client_id rather than id_token_hint, so no token ever travels in a URL.
      return client.buildEndSessionUrl(rp, { client_id: config.clientId, post_logout_redirect_uri: postLogoutRedirectUri }).href;
    },
  };
}

/** The claims of a JWT access token, unverified (it came from the token endpoint; the services verify it). Undefined for opaque tokens. */
function jwtClaims(token: string): JWTPayload | undefined {
  try {
    return decodeJwt(token);
  } catch {
    return undefined;
  }
}

/** The role names in a token's claims: plain strings only, bounded; undefined when the claim is absent. */
function rolesFrom(claims: JWTPayload | undefined, path: string): string[] | undefined {
  if (!claims) return undefined;
  const value = readClaim(claims, path);
  if (!Array.isArray(value)) return undefined;
  const roles = value.flatMap((role) => {
    const text = claimText(role, MAX_ROLE_LENGTH);
    return text === undefined ? [] : [text];
  });
  return [...new Set(roles)].slice(0, MAX_ROLES);
}

/** A claim that is ordinary text of at most `max` characters (docs/design.md §14), else undefined. */
function claimText(value: unknown, max: number): string | undefined {
  if (typeof value !== "string" || value.length === 0 || value.length > max) return undefined;
  return findForbiddenCharacter(value) === undefined ? value : undefined;
}
