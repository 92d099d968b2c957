/**
 * The product page's HTTP paths on the console's origin, so operators and scripts have one
 * address: a request whose method and path match a `google.api.http` rule of a service is passed
 * to the service that owns it, as it came, and the service's answer comes back as it gave it.
 *
 * The caller's own `authorization` header goes along and nothing else of theirs that grants: the
 * console's session cookie is never turned into a token here, so these paths carry no ambient
 * credential and need no CSRF check; a browser's cookies are not forwarded. The service decides
 * everything (authentication, permissions, audit, errors) exactly as on its own port. Boxes do
 * not come this way: their mTLS ends at licensing, so `POST /licenses/{id}/heartbeat` through the
 * console is refused by licensing as unauthenticated.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { AuditService } from "@lcp/proto/audit/v1/audit_service_pb";
import { FleetSweepService } from "@lcp/proto/fleet/v1/fleet_sweep_service_pb";
import { ApplianceService } from "@lcp/proto/licensing/v1/appliance_service_pb";
import { LicensingService } from "@lcp/proto/licensing/v1/licensing_service_pb";
import { SigningKeyService } from "@lcp/proto/signing/v1/signing_key_service_pb";
import { compileHttpRoutes } from "@lcp/rpc";
import type { Logger } from "pino";
import type { UpstreamUrls } from "./config.js";
import { readBody, type BodyError } from "./http.js";
import { relay, type UpstreamPool } from "./upstream.js";

/** Bodies are bounded as for the API calls. */
const MAX_BODY_BYTES = 1024 * 1024;
/** A bearer token is a JWT of a few KB at most. */
const MAX_AUTHORIZATION_BYTES = 8 * 1024;
/** Which upstream owns a service, by proto package. */
const OWNER: Readonly<Record<string, keyof UpstreamUrls>> = { licensing: "licensing", fleet: "fleetSweep", signing: "signingKeys", audit: "audit" };
/** Answer headers passed back to the caller. */
const PASSED_BACK = /^(content-type|content-encoding|allow|x-request-id)$/;

/** What forwarding needs from the console. */
export interface HttpPathsContext {
  readonly upstreams: UpstreamUrls;
  readonly pool: UpstreamPool;
  readonly timeoutMs: number;
  readonly log: Pick<Logger, "warn">;
}

/** The table of every service's HTTP rules, one table so a literal segment wins across services. */
const routes = compileHttpRoutes([LicensingService, ApplianceService, FleetSweepService, SigningKeyService, AuditService]);

/** The upstream owning this method and path, or undefined when no rule matches the path. */
export function httpPathOwner(method: string, pathname: string): keyof UpstreamUrls | undefined {
  const found = routes.match(method, pathname);
  if (found === undefined) return undefined;
  // A path some rule matches, but for other methods: the owner answers 405 with its Allow.
  const route = "route" in found ? found.route : routes.routes.find((r) => routes.match(r.httpMethod, pathname) !== undefined);
  return route ? OWNER[route.method.parent.typeName.split(".")[0]!] : undefined;
}

/** Forwards the request to `owner` (from {@link httpPathOwner}) and streams its answer back. */
export async function forwardHttpPath(ctx: HttpPathsContext, owner: keyof UpstreamUrls, req: IncomingMessage, res: ServerResponse, rawUrl: string): Promise<void> {
  let body: Buffer;
  try {
    body = await readBody(req, MAX_BODY_BYTES);
  } catch (err) {
    if ((err as BodyError) === "too_large") {
      res.setHeader("connection", "close");
      sendStatus(res, 413, 8, `request body exceeds ${MAX_BODY_BYTES} bytes`);
    }
    return;
  }
  const headers: Record<string, string> = { "user-agent": "lcp-console" };
  const authorization = req.headers.authorization;
  if (authorization !== undefined) {
    if (Buffer.byteLength(authorization) > MAX_AUTHORIZATION_BYTES) return sendStatus(res, 431, 3, "authorization header too large");
    headers.authorization = authorization;
  }
  for (const name of ["content-type", "accept", "x-request-id"] as const) {
    const value = req.headers[name];
    if (typeof value === "string" && value.length <= 256) headers[name] = value;
  }

  const outcome = await relay(ctx.pool, res, { origin: ctx.upstreams[owner], method: req.method ?? "GET", path: rawUrl, headers, body }, { timeoutMs: ctx.timeoutMs, passBack: PASSED_BACK });
  if (!("failure" in outcome) || res.destroyed) return;
  if (outcome.failure === "timeout") return sendStatus(res, 504, 4, `the ${owner} service did not answer within ${ctx.timeoutMs} ms`);
  ctx.log.warn({ upstream: owner, err: (outcome.error as Error).message }, "service unreachable");
  sendStatus(res, 503, 14, `the ${owner} service is unavailable, retry later`);
}

/** A refusal of the console's own, in the services' error shape (`google.rpc.Status` JSON). */
function sendStatus(res: ServerResponse, status: number, code: number, message: string): void {
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
  res.end(JSON.stringify({ code, message }));
}
