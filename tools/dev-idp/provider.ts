/**
 * The development OpenID Connect provider (oidc-provider 8) that `npm start`, `npm run token` and
 * the web console sign in with: one user per admin role with a generated password, a real login
 * page, the authorization-code flow with PKCE for two first-party clients (the console,
 * confidential, with rotating refresh tokens; the CLI, public), and JWT access tokens signed with
 * ES256 that the apps verify exactly as a production issuer's (issuer, audience, JWKS, `roles`).
 * It refuses to run with NODE_ENV=production.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { createServer as createHttpsServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import Provider, { errors as oidcErrors, type Interaction, type KoaContextWithOIDC } from "oidc-provider";
import { createDevIdpStore } from "./memory-adapter.js";
import { loginPage, logoutPage, messagePage, securityHeaders } from "./pages.js";
import { CLI_CLIENT_ID, CLI_REDIRECT_URI, CONSOLE_CLIENT_ID, DEV_IDP_AUDIENCE, MAX_CREDENTIAL_LENGTH } from "./constants.js";
import { ensureDevIdpState, type DevIdpState, type DevUser } from "./state.js";

export * from "./constants.js";
export { DEV_IDP_FILES, readDevUsers, type DevUser } from "./state.js";

/** Options of {@link startDevIdentityProvider}. */
export interface StartDevIdentityProviderOptions {
  /** Listen address; default 127.0.0.1. */
  host?: string;
  /** 0 in tests. */
  port: number;
  /** HTTPS only: the dev PKI's certificate for `dev-idp` (valid for localhost). */
  tls: { certPem: string; keyPem: string };
  /** Kept across restarts (mode 0700, files 0600): signing key, cookie keys, users and passwords, console client secret. */
  stateDir: string;
  /** The console's redirect URIs, e.g. `https://localhost:7440/auth/callback`. */
  consoleRedirectUris: readonly string[];
  /** Where the console may send the browser after sign-out, e.g. `https://localhost:7440/auth/signed-out`. */
  consolePostLogoutRedirectUris: readonly string[];
  /** Access (and ID) token lifetime; default 600 s. */
  accessTokenTtlSeconds?: number;
  /** Refresh token, session and grant lifetime; default 8 h. */
  refreshTokenTtlSeconds?: number;
}

/** A running development identity provider. */
export interface DevIdentityProvider {
  /** `https://localhost:<bound port>`. */
  issuer: string;
  jwksUrl: string;
  /** The `aud` of access tokens: what services set as `OIDC_AUDIENCE`. */
  audience: string;
  rolesClaim: "roles";
  /** One per role of @lcp/domain's ROLES, named after the role. */
  users: readonly DevUser[];
  /** Confidential, authorization_code + refresh_token, PKCE S256 required, `client_secret_post`. */
  consoleClient: { clientId: "lcp-console"; clientSecret: string; secretFile: string };
  /** Public, PKCE S256 required, for `npm run token`. */
  cliClient: { clientId: "lcp-cli"; redirectUri: string };
  /** Ends every session, grant and refresh token of a user, so the console can no longer refresh. */
  revokeUser(username: string): Promise<void>;
  close(): Promise<void>;
}

const DEFAULT_ACCESS_TOKEN_TTL_S = 600;
const DEFAULT_REFRESH_TOKEN_TTL_S = 8 * 3600;
/** A login form post is two short fields; anything bigger is not one. */
const MAX_FORM_BYTES = 4096;
const INTERACTION_PATH = /^\/interaction\/([A-Za-z0-9_-]{1,64})(\/login)?$/;

/** Thrown for a request the login routes refuse, with the status and the page to answer with. */
class PageError extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    readonly lines: readonly string[],
  ) {
    super(lines.join(" "));
  }
}

/**
 * Starts the provider on HTTPS. Throws with NODE_ENV=production: a generated identity provider
 * with printed passwords must never guard a real deployment.
 */
export async function startDevIdentityProvider(options: StartDevIdentityProviderOptions): Promise<DevIdentityProvider> {
  if (process.env.NODE_ENV === "production") {
    throw new Error("the development identity provider never runs in production; configure OIDC_ISSUER, OIDC_AUDIENCE and OIDC_JWKS_URL of your organisation's identity provider instead");
  }
  const accessTtl = positiveSeconds(options.accessTokenTtlSeconds ?? DEFAULT_ACCESS_TOKEN_TTL_S, "accessTokenTtlSeconds");
  const refreshTtl = positiveSeconds(options.refreshTokenTtlSeconds ?? DEFAULT_REFRESH_TOKEN_TTL_S, "refreshTokenTtlSeconds");
  const redirectUris = [...options.consoleRedirectUris];
  const postLogoutUris = [...options.consolePostLogoutRedirectUris];
  for (const uri of [...redirectUris, ...postLogoutUris]) {
    if (!URL.canParse(uri) || new URL(uri).protocol !== "https:") throw new TypeError(`console redirect URI ${JSON.stringify(uri)} must be an https URL`);
  }
  if (redirectUris.length === 0) throw new TypeError("consoleRedirectUris must name at least one URI");

  const state = await ensureDevIdpState(options.stateDir);

  const server = createHttpsServer({ cert: options.tls.certPem, key: options.tls.keyPem, minVersion: "TLSv1.2" });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host ?? "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  try {
    return serve(server, { state, redirectUris, postLogoutUris, accessTtl, refreshTtl });
  } catch (err) {
    server.close();
    throw err;
  }
}

/** Settings checked by {@link startDevIdentityProvider}, for {@link serve}. */
interface ServeSettings {
  state: DevIdpState;
  redirectUris: string[];
  postLogoutUris: string[];
  accessTtl: number;
  refreshTtl: number;
}

/** Puts the provider behind a listening server. */
function serve(server: Server, { state, redirectUris, postLogoutUris, accessTtl, refreshTtl }: ServeSettings): DevIdentityProvider {
  const users = new Map(state.users.map((u) => [u.username, u]));
  const store = createDevIdpStore();
  const port = (server.address() as AddressInfo).port;
  const issuer = `https://localhost:${port}`;

  // Forms are posted to the provider and then redirected on to a client: CSP's form-action covers
  // the whole redirect chain, so it names every client origin.
  const formTargets = [...new Set([...redirectUris, ...postLogoutUris, CLI_REDIRECT_URI].map((u) => new URL(u).origin))];
  const headers = securityHeaders(formTargets);
  const providerHeaders = securityHeaders(formTargets, { pushedScripts: true });
  const providerCsp = providerHeaders["content-security-policy"]!;

  const provider = new Provider(issuer, {
    adapter: store.Adapter,
    clients: [
      {
        client_id: CONSOLE_CLIENT_ID,
        client_name: "LCP console",
        client_secret: state.consoleClientSecret,
        application_type: "web",
        grant_types: ["authorization_code", "refresh_token"],
        response_types: ["code"],
        response_modes: ["query"],
        redirect_uris: redirectUris,
        post_logout_redirect_uris: postLogoutUris,
        // openid-client's default for a client given its secret as a string.
        token_endpoint_auth_method: "client_secret_post",
      },
      {
        client_id: CLI_CLIENT_ID,
        client_name: "npm run token",
        application_type: "native",
        grant_types: ["authorization_code"],
        response_types: ["code"],
        response_modes: ["query"],
        redirect_uris: [CLI_REDIRECT_URI],
        token_endpoint_auth_method: "none",
      },
    ],
    clientDefaults: { id_token_signed_response_alg: "ES256" },
    clientBasedCORS: () => false,
    // ID tokens always say who and what the user is; `profile` and `roles` are accepted as the
    // conventional scopes for the same claims.
    claims: { openid: ["sub", "name", "roles"], profile: ["name"], roles: ["roles"] },
    scopes: ["openid", "offline_access", "profile", "roles"],
    conformIdTokenClaims: false,
    cookies: {
      // Cookies are per host, not per port: the console on localhost:7440 must not see ours.
      names: { session: "lcp_idp_session", interaction: "lcp_idp_interaction", resume: "lcp_idp_resume" },
      keys: state.cookieKeys,
      long: { signed: true, httpOnly: true, sameSite: "lax" },
      short: { signed: true, httpOnly: true, sameSite: "lax" },
    },
    enabledJWA: { idTokenSigningAlgValues: ["ES256"] },
    jwks: { keys: [{ ...state.signingJwk }] },
    features: {
      devInteractions: { enabled: false },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx: unknown, _client: unknown, oneOf?: string[]) => (oneOf ? (oneOf.includes(DEV_IDP_AUDIENCE) ? DEV_IDP_AUDIENCE : oneOf) : DEV_IDP_AUDIENCE),
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx: unknown, resource: string) => {
          if (resource !== DEV_IDP_AUDIENCE) throw new oidcErrors.InvalidTarget(`the only resource is ${DEV_IDP_AUDIENCE}`);
          return { scope: "lcp:admin", audience: DEV_IDP_AUDIENCE, accessTokenTTL: accessTtl, accessTokenFormat: "jwt", jwt: { sign: { alg: "ES256" } } };
        },
      },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx: KoaContextWithOIDC, form: string) => {
          ctx.type = "html";
          ctx.body = logoutPage(form, ctx.host);
        },
        postLogoutSuccessSource: async (ctx: KoaContextWithOIDC) => {
          ctx.type = "html";
          ctx.body = messagePage("Signed out", ["You are signed out of the development identity provider."]);
        },
      },
    },
    findAccount: async (_ctx, sub) => {
      const user = users.get(sub);
      if (!user) return undefined;
      return { accountId: user.username, claims: async () => ({ sub: user.username, name: user.name, roles: [user.role] }) };
    },
    extraTokenClaims: async (_ctx, token) => {
      if (token.kind !== "AccessToken" || token.accountId === undefined) return undefined;
      const user = users.get(token.accountId);
      return user ? { roles: [user.role] } : undefined;
    },
    interactions: { url: async (_ctx, interaction) => `/interaction/${interaction.uid}` },
    issueRefreshToken: async (_ctx, client) => client.clientId === CONSOLE_CLIENT_ID && client.grantTypeAllowed("refresh_token"),
    // Refresh tokens live no longer than the sign-in session: signing out at the provider, or
    // revokeUser, ends them.
    expiresWithSession: async () => true,
    rotateRefreshToken: true,
    pkce: { methods: ["S256"], required: () => true },
    renderError: async (ctx, out) => {
      ctx.type = "html";
      const lines = [out.error_description ?? "", out.error ? `(${out.error})` : ""].filter(Boolean);
      ctx.body = messagePage("Sign-in error", lines.length > 0 ? lines : ["Something went wrong."]);
    },
    responseTypes: ["code"],
    ttl: {
      AccessToken: accessTtl,
      AuthorizationCode: 60,
      IdToken: accessTtl,
      Interaction: 600,
      RefreshToken: refreshTtl,
      Session: refreshTtl,
      Grant: refreshTtl,
    },
  });

  provider.use(async (ctx, next) => {
    const match = INTERACTION_PATH.exec(ctx.path);
    if (match) {
      for (const [name, value] of Object.entries(headers)) ctx.set(name, value);
      try {
        await interaction(ctx, match[1]!, match[2] !== undefined);
      } catch (err) {
        const refused = err instanceof PageError ? err : sessionGone(err);
        if (!refused) throw err;
        ctx.status = refused.status;
        ctx.type = "html";
        ctx.body = messagePage(refused.title, refused.lines);
      }
      return;
    }
    // Set before the provider answers, so it can add the hash of a script it writes itself.
    ctx.set("content-security-policy", providerCsp);
    await next();
    if (ctx.response.is("html")) {
      for (const [name, value] of Object.entries(providerHeaders)) if (name !== "content-security-policy") ctx.set(name, value);
    }
  });

  const interaction = async (ctx: KoaContextWithOIDC, uid: string, login: boolean): Promise<void> => {
    if (login ? ctx.method !== "POST" : ctx.method !== "GET" && ctx.method !== "HEAD") {
      throw new PageError(405, "Not allowed", [`${ctx.method} is not accepted here.`]);
    }
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    // The cookie names the interaction; a URL naming another one is a stale or forged link.
    if (details.uid !== uid) throw sessionExpired();
    const clientId = details.params.client_id;
    const clientName = clientId === CONSOLE_CLIENT_ID ? "the LCP console" : clientId === CLI_CLIENT_ID ? "npm run token" : undefined;
    if (clientName === undefined) throw new PageError(400, "Unknown application", ["This sign-in request comes from an application this provider does not know."]);

    if (details.prompt.name === "login") {
      const action = `/interaction/${uid}/login`;
      if (!login) {
        ctx.status = 200;
        ctx.type = "html";
        ctx.body = loginPage({ action, clientName });
        return;
      }
      const form = await readForm(ctx.req);
      const username = form.get("username") ?? "";
      const password = form.get("password") ?? "";
      if (username.length > MAX_CREDENTIAL_LENGTH || password.length > MAX_CREDENTIAL_LENGTH) {
        ctx.status = 400;
        ctx.type = "html";
        ctx.body = loginPage({ action, clientName, error: `Username and password must each be at most ${MAX_CREDENTIAL_LENGTH} characters.` });
        return;
      }
      const user = authenticate(users, username, password);
      if (!user) {
        ctx.status = 401;
        ctx.type = "html";
        // The same words for an unknown user and a wrong password: the page tells nobody which users exist.
        ctx.body = loginPage({ action, clientName, username, error: "Wrong username or password." });
        return;
      }
      const to = await provider.interactionResult(ctx.req, ctx.res, { login: { accountId: user.username } }, { mergeWithLastSubmission: false });
      ctx.status = 303;
      ctx.redirect(to);
      return;
    }

    if (details.prompt.name === "consent" && !login) {
      // Both clients are ours: consent is given on the user's behalf, for exactly what was asked.
      const to = await provider.interactionResult(ctx.req, ctx.res, { consent: { grantId: await grantFor(details) } }, { mergeWithLastSubmission: true });
      ctx.status = 303;
      ctx.redirect(to);
      return;
    }
    throw new PageError(400, "Unexpected step", ["This sign-in step is not one this provider handles. Go back to the application and start again."]);
  };

  const grantFor = async (details: Interaction): Promise<string> => {
    const accountId = details.session?.accountId;
    const clientId = details.params.client_id;
    if (accountId === undefined || clientId === undefined) throw sessionExpired();
    const grant = (details.grantId ? await provider.Grant.find(details.grantId) : undefined) ?? new provider.Grant({ accountId, clientId });
    const missing = details.prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(" "));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [resource, scopes] of Object.entries(missing.missingResourceScopes ?? {})) grant.addResourceScope(resource, scopes.join(" "));
    return grant.save();
  };

  provider.on("server_error", (_ctx: unknown, err: Error) => {
    console.error(`dev-idp: server error: ${err.message}`);
  });
  server.on("request", provider.callback());

  return {
    issuer,
    jwksUrl: `${issuer}/jwks`,
    audience: DEV_IDP_AUDIENCE,
    rolesClaim: "roles",
    users: state.users.map((u) => ({ ...u })),
    consoleClient: { clientId: CONSOLE_CLIENT_ID, clientSecret: state.consoleClientSecret, secretFile: state.consoleClientSecretFile },
    cliClient: { clientId: CLI_CLIENT_ID, redirectUri: CLI_REDIRECT_URI },
    async revokeUser(username) {
      if (!users.has(username)) throw new Error(`no dev user ${JSON.stringify(username)}`);
      store.revokeAccount(username);
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

/** The user whose password matches, compared in constant time; undefined for an unknown user or a wrong password. */
function authenticate(users: ReadonlyMap<string, DevUser>, username: string, password: string): DevUser | undefined {
  const digest = (s: string) => createHash("sha256").update(s).digest();
  const user = users.get(username);
  // An unknown user costs the same comparison, so timing does not tell which usernames exist.
  const ok = timingSafeEqual(digest(password), digest(user?.password ?? "\u0000unknown user"));
  return ok && user ? user : undefined;
}

/** Reads an `application/x-www-form-urlencoded` body of at most {@link MAX_FORM_BYTES}. */
async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const type = req.headers["content-type"] ?? "";
  if (!/^application\/x-www-form-urlencoded\s*(;|$)/i.test(type)) {
    throw new PageError(415, "Not a form", ["The sign-in form must be posted as application/x-www-form-urlencoded."]);
  }
  const declared = Number(req.headers["content-length"] ?? 0);
  const tooLarge = () => new PageError(413, "Too large", ["The sign-in form was larger than any username and password."]);
  if (declared > MAX_FORM_BYTES) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_FORM_BYTES) throw tooLarge();
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
}

function sessionExpired(): PageError {
  return new PageError(400, "Sign-in expired", ["This sign-in request has expired or was already used.", "Go back to the application and sign in again."]);
}

/** oidc-provider's "no such interaction" (cookie missing, expired, or from another browser) as a page. */
function sessionGone(err: unknown): PageError | undefined {
  return (err as Error | undefined)?.name === "SessionNotFound" ? sessionExpired() : undefined;
}

function positiveSeconds(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new TypeError(`${name} must be a positive whole number of seconds`);
  return value;
}
