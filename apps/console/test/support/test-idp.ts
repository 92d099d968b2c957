/**
 * A minimal, real OpenID provider for the console's tests: `oidc-provider` 8 over HTTPS on port 0
 * with the test PKI, one confidential client (`lcp-console`, authorization code + refresh token,
 * PKCE S256 required), JWT access tokens for one resource carrying `roles`, and a sign-in page
 * completed with one plain form post (`login=<user>`). Consent is implied (a first-party client).
 */
import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import type { TestPki } from "@lcp/testing/pki";
import { exportJWK, generateKeyPair, type JSONWebKeySet, type JWK } from "jose";

/** The users of the test provider: login name → display name and roles. */
export const TEST_USERS: Readonly<Record<string, { name: string; roles: string[] }>> = {
  sam: { name: "Sam Support", roles: ["support"] },
  olga: { name: "Olga Onboarding", roles: ["onboarding"] },
  ada: { name: "Ada Auditor", roles: ["auditor"] },
  root: { name: "Rita Root", roles: ["super_admin"] },
};

/** The resource (audience) of the access tokens: what the services are configured to accept. */
export const TEST_AUDIENCE = "urn:lcp:test-api";
export const TEST_CLIENT_ID = "lcp-console";

/** A running test provider. */
export interface TestIdp {
  /** `https://localhost:<port>`: issuer identifier and base URL. */
  readonly issuer: string;
  readonly audience: string;
  readonly clientSecret: string;
  /** The public signing keys, for services verifying its access tokens without fetching them. */
  readonly jwks: JSONWebKeySet;
  /** Registers the console (its redirect URIs) and starts answering; call once the console listens. */
  registerConsole(consoleUrl: string): Promise<void>;
  /** Lifetime of access tokens issued from now on (seconds); default 600. */
  accessTokenTtlSeconds: number;
  /** Whether refresh tokens are issued (default true). */
  issueRefreshTokens: boolean;
  /** While true, every token request is refused with `invalid_grant` (a revoked grant, as the console sees it). */
  refuseTokenRequests: boolean;
  /** How long the token endpoint takes to answer (ms); default 0. */
  tokenDelayMs: number;
  /** Successful token requests so far, by grant type. */
  readonly grants: Record<string, number>;
  /** Every access and refresh token issued (to prove none leaks). */
  readonly issuedTokens: string[];
  close(): Promise<void>;
}

type Ctx = {
  path: string;
  method: string;
  status: number;
  body: unknown;
  oidc: {
    params: Record<string, string>;
    client: { clientId: string; grantTypeAllowed(type: string): boolean };
    session: { accountId: string; grantIdFor(clientId: string): string | undefined };
    result?: { consent?: { grantId?: string } };
    provider: ProviderLike;
  };
};
interface GrantLike {
  addOIDCScope(scope: string): void;
  addResourceScope(resource: string, scope: string): void;
  save(): Promise<string>;
}
interface ProviderLike {
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<{ uid: string; prompt: { name: string } }>;
  interactionFinished(req: IncomingMessage, res: ServerResponse, result: object, options?: object): Promise<void>;
  use(middleware: (ctx: Ctx, next: () => Promise<void>) => Promise<void>): void;
  on(event: string, listener: (ctx: Ctx) => void): void;
  Grant: { new (init: { clientId: string; accountId: string }): GrantLike; find(id: string): Promise<GrantLike | undefined> };
}
type ProviderConstructor = new (issuer: string, configuration: object) => ProviderLike;

/** Starts the provider's HTTPS listener; it answers once {@link TestIdp.registerConsole} ran. */
export async function startTestIdp(pki: TestPki): Promise<TestIdp> {
  // Imported by a computed name: the package ships no types, and the one untyped import stays here.
  const moduleName = "oidc-provider";
  const { default: Provider } = (await import(moduleName)) as { default: ProviderConstructor };
  const cert = await pki.service("test-idp");
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  const server: Server = createServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
    if (!handler) {
      res.writeHead(503).end("not ready");
      return;
    }
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const issuer = `https://localhost:${(server.address() as AddressInfo).port}`;

  const { privateKey, publicKey } = await generateKeyPair("RS256", { extractable: true });
  const privateJwk: JWK = { ...(await exportJWK(privateKey)), kid: "test-rs256", alg: "RS256", use: "sig" };
  const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid: "test-rs256", alg: "RS256", use: "sig" };
  const clientSecret = randomBytes(24).toString("base64url");

  const idp: TestIdp = {
    issuer,
    audience: TEST_AUDIENCE,
    clientSecret,
    jwks: { keys: [publicJwk] },
    accessTokenTtlSeconds: 600,
    issueRefreshTokens: true,
    refuseTokenRequests: false,
    tokenDelayMs: 0,
    grants: {},
    issuedTokens: [],
    async registerConsole(consoleUrl) {
      const provider = new Provider(issuer, {
        clients: [
          {
            client_id: TEST_CLIENT_ID,
            client_secret: clientSecret,
            redirect_uris: [`${consoleUrl}/auth/callback`],
            post_logout_redirect_uris: [`${consoleUrl}/auth/signed-out`],
            grant_types: ["authorization_code", "refresh_token"],
            response_types: ["code"],
            token_endpoint_auth_method: "client_secret_basic",
          },
        ],
        jwks: { keys: [privateJwk] },
        cookies: { keys: [randomBytes(32).toString("hex")] },
        pkce: { required: () => true, methods: ["S256"] },
        claims: { openid: ["sub"], profile: ["name"] },
        features: {
          devInteractions: { enabled: false },
          rpInitiatedLogout: { enabled: true },
          resourceIndicators: {
            enabled: true,
            defaultResource: () => TEST_AUDIENCE,
            useGrantedResource: () => true,
            getResourceServerInfo: () => ({
              scope: "api",
              audience: TEST_AUDIENCE,
              accessTokenTTL: idp.accessTokenTtlSeconds,
              accessTokenFormat: "jwt",
              jwt: { sign: { alg: "RS256" } },
            }),
          },
        },
        interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
        findAccount: async (_ctx: unknown, sub: string) => {
          const user = TEST_USERS[sub];
          return user ? { accountId: sub, claims: async () => ({ sub, name: user.name }) } : undefined;
        },
        extraTokenClaims: async (_ctx: unknown, token: { kind: string; accountId?: string }) =>
          token.kind === "AccessToken" && token.accountId ? { roles: TEST_USERS[token.accountId]?.roles ?? [] } : undefined,
        issueRefreshToken: async (_ctx: unknown, client: { grantTypeAllowed(type: string): boolean }) =>
          idp.issueRefreshTokens && client.grantTypeAllowed("refresh_token"),
        // A first-party client: the grant is implied, so there is no consent screen.
        loadExistingGrant: async (ctx: Ctx) => {
          const grantId = ctx.oidc.result?.consent?.grantId ?? ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
          if (grantId) return ctx.oidc.provider.Grant.find(grantId);
          const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
          grant.addOIDCScope("openid profile");
          grant.addResourceScope(TEST_AUDIENCE, "api");
          await grant.save();
          return grant;
        },
        ttl: { AccessToken: () => idp.accessTokenTtlSeconds, AuthorizationCode: 60, IdToken: 600, RefreshToken: 86_400, Interaction: 600, Session: 86_400, Grant: 86_400 },
        renderError: async (ctx: Ctx, out: Record<string, string>) => {
          ctx.body = `error: ${out.error ?? "unknown"}`;
        },
      });
      provider.use(async (ctx, next) => {
        if (idp.tokenDelayMs > 0 && ctx.path === "/token") await new Promise((resolve) => setTimeout(resolve, idp.tokenDelayMs));
        if (idp.refuseTokenRequests && ctx.method === "POST" && ctx.path === "/token") {
          ctx.status = 400;
          ctx.body = { error: "invalid_grant", error_description: "grant revoked" };
          return;
        }
        await next();
      });
      provider.on("grant.success", (ctx) => {
        const type = ctx.oidc.params.grant_type ?? "unknown";
        idp.grants[type] = (idp.grants[type] ?? 0) + 1;
        const body = ctx.body as { access_token?: string; refresh_token?: string };
        for (const token of [body.access_token, body.refresh_token]) if (token) idp.issuedTokens.push(token);
      });
      const providerCallback = provider.callback();
      handler = (req, res) => {
        const url = new URL(req.url ?? "/", issuer);
        const match = /^\/interaction\/([A-Za-z0-9_-]+)(\/login)?$/.exec(url.pathname);
        if (!match) return providerCallback(req, res);
        interaction(provider, req, res, match[1]!, match[2] !== undefined).catch((err: unknown) => {
          res.writeHead(500).end(String(err));
        });
      };
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  return idp;
}

/** The sign-in page (GET) and its form post (POST …/login with `login=<user>`). */
async function interaction(provider: ProviderLike, req: IncomingMessage, res: ServerResponse, uid: string, submit: boolean): Promise<void> {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error("interaction mismatch");
  if (!submit) {
    const html = `<!doctype html><html><body><form method="post" action="/interaction/${uid}/login"><input name="login"><button>Sign in</button></form></body></html>`;
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(html);
    return;
  }
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const login = new URLSearchParams(Buffer.concat(chunks).toString()).get("login") ?? "";
  if (!Object.hasOwn(TEST_USERS, login)) {
    await provider.interactionFinished(req, res, { error: "access_denied", error_description: "unknown user" }, { mergeWithLastSubmission: false });
    return;
  }
  await provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
}
