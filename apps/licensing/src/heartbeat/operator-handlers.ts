/**
 * The heartbeat screen (licensing/heartbeats): ListHeartbeats (heartbeat.read) — last seen, lag,
 * whether a stream is held and by which replica, the reported agent version, the lease seq and
 * the pending directive count — and SendDirective (directive.send): REFRESH_KEYS (with the current
 * JWKS), SET_INTERVAL (1 s to 1 h), RENEW_LEASE (a freshly signed lease) and RENEW_CERTIFICATE
 * (asks the box to renew), stored as pending, pushed at once when the box is connected to any
 * replica (`delivered`), audited directive.send with the directive in the same transaction.
 */
import { create } from "@bufbuild/protobuf";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { clampPageSize, deriveState, HEARTBEAT_INTERVAL_RANGE_MS, type DeploymentState } from "@lcp/domain";
import {
  ListHeartbeatsResponseSchema,
  SendDirectiveResponseSchema,
  type ListHeartbeatsRequest,
  type ListHeartbeatsResponse,
  type SendDirectiveRequest,
  type SendDirectiveResponse,
} from "@lcp/proto/licensing/v1/licensing_service_pb";
import { DirectiveType } from "@lcp/proto/licensing/v1/types_pb";
import { DomainError } from "@lcp/rpc";
import { createHash } from "node:crypto";
import type { AuditSpec, CallContext } from "../core/audit.js";
import { loadForDecision } from "../core/deployment-change.js";
import { findDeploymentPage } from "../licensing-service/queries.js";
import { invalid, LIST_PAGE, MAX_REASON_LENGTH, requireId, requirePlainText } from "../validation.js";
import { directiveTypeFromProto, stateFromProto, type DirectiveTypeName } from "@lcp/rpc";
import { factsOf, loadSettings } from "../storage/repository.js";
import { renewLease, storeDirective } from "./directive-store.js";
import type { HeartbeatContext } from "./context.js";
import { heartbeatStatusesOf } from "./status.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A validated ListHeartbeats request. */
interface ListHeartbeatsQuery {
  deploymentId: string | null;
  states: DeploymentState[];
  pageSize: number;
  afterId: string | null;
}

function filterKey(filter: unknown): string {
  return createHash("sha256").update(JSON.stringify(filter)).digest("base64url").slice(0, 12);
}

function validateListHeartbeats(req: ListHeartbeatsRequest): ListHeartbeatsQuery {
  const deploymentId = req.deploymentId === "" ? null : requireId(req.deploymentId, "deployment_id");
  const states: DeploymentState[] = [];
  for (const s of req.states) {
    const name = stateFromProto(s);
    if (!name) throw invalid("states", `states holds an unknown deployment state (${s})`);
    if (!states.includes(name)) states.push(name);
  }
  states.sort();
  const size = clampPageSize(req.pageSize, LIST_PAGE);
  if (!size.ok) throw new DomainError(size.code, size.message, { field: "page_size" });
  const filter = { heartbeats: true, deploymentId, states };
  let afterId: string | null = null;
  if (req.pageToken !== "") {
    const bad = () => new DomainError("PAGE_TOKEN_INVALID", "page_token is not one this service issued for this filter", { field: "page_token" });
    if (req.pageToken.length > 512) throw bad();
    let t: { a?: unknown; f?: unknown };
    try {
      t = JSON.parse(Buffer.from(req.pageToken, "base64url").toString("utf8")) as typeof t;
    } catch {
      throw bad();
    }
    if (typeof t.a !== "string" || !UUID.test(t.a) || t.f !== filterKey(filter)) throw bad();
    afterId = t.a;
  }
  return { deploymentId, states, pageSize: size.pageSize, afterId };
}

/** ListHeartbeats: one page of deployments with their heartbeat status, derived now. */
export async function listHeartbeats(hb: HeartbeatContext, req: ListHeartbeatsRequest): Promise<ListHeartbeatsResponse> {
  const query = validateListHeartbeats(req);
  const { deps, hub } = hb;
  const em = deps.db.em();
  const now = deps.now();
  const settings = await loadSettings(em, now);
  const { page, more } = await findDeploymentPage(em, { ...query, where: query.deploymentId ? [{ id: query.deploymentId }] : [] }, now, settings);
  // The state filter ran in SQL; the rows are re-derived here so what is shown and the filter agree.
  const shown = query.states.length > 0 ? page.filter((row) => query.states.includes(deriveState(factsOf(row), now.getTime(), settings).state)) : page;
  const heartbeats = await heartbeatStatusesOf(hub, em, shown, now, settings);
  const filter = { heartbeats: true, deploymentId: query.deploymentId, states: query.states };
  return create(ListHeartbeatsResponseSchema, {
    heartbeats,
    nextPageToken: more ? Buffer.from(JSON.stringify({ a: page[page.length - 1]!.id, f: filterKey(filter) }), "utf8").toString("base64url") : "",
  });
}

// The directives an operator may send by hand; the state-change ones follow from revoke and subscription changes.
const OPERATOR_DIRECTIVES: ReadonlySet<DirectiveTypeName> = new Set(["REFRESH_KEYS", "SET_INTERVAL", "RENEW_LEASE", "RENEW_CERTIFICATE"]);

/** A validated SendDirective request. */
export interface SendDirectiveInput {
  deploymentId: string;
  type: DirectiveTypeName;
  heartbeatIntervalMs: number | null;
  reason: string;
}

/** Validates SendDirective's fields. */
export function validateSendDirective(req: SendDirectiveRequest): SendDirectiveInput {
  const deploymentId = requireId(req.deploymentId, "deployment_id");
  const type = directiveTypeFromProto(req.type);
  if (!type || !OPERATOR_DIRECTIVES.has(type)) {
    throw invalid(
      "type",
      req.type === DirectiveType.UNSPECIFIED
        ? "type is required (REFRESH_KEYS, SET_INTERVAL, RENEW_LEASE or RENEW_CERTIFICATE)"
        : "only REFRESH_KEYS, SET_INTERVAL, RENEW_LEASE and RENEW_CERTIFICATE may be sent; LOCK, SUSPEND and REACTIVATE follow from revoke and subscription changes",
    );
  }
  let heartbeatIntervalMs: number | null = null;
  if (type === "SET_INTERVAL") {
    const ms = req.heartbeatInterval ? durationMs(req.heartbeatInterval) : NaN;
    const { min, max } = HEARTBEAT_INTERVAL_RANGE_MS;
    if (!Number.isFinite(ms) || ms < min || ms > max) {
      throw new DomainError("SETTINGS_OUT_OF_RANGE", "heartbeat_interval must be between 1 s and 1 h", { field: "heartbeat_interval" });
    }
    heartbeatIntervalMs = ms;
  } else if (req.heartbeatInterval) {
    throw invalid("heartbeat_interval", "heartbeat_interval goes only with SET_INTERVAL");
  }
  const reason = requirePlainText(req.reason, "reason", { multiline: true }).trim();
  if (reason.length > MAX_REASON_LENGTH) throw invalid("reason", `reason must be at most ${MAX_REASON_LENGTH} characters`);
  return { deploymentId, type, heartbeatIntervalMs, reason };
}

/** SendDirective; see the module comment. */
export async function sendDirective(hb: HeartbeatContext, call: CallContext, req: SendDirectiveRequest): Promise<SendDirectiveResponse> {
  const input = validateSendDirective(req);
  const { deps } = hb;
  const loaded = await loadForDecision(deps, input.deploymentId);
  // A directive for a box that never activated would never be delivered (redelivery starts at
  // the current activation), so say so instead of storing it.
  if (loaded.facts.activatedAt === null || loaded.facts.boundFingerprintHash === null) {
    throw new DomainError("NOT_ACTIVATED", "no box is activated on this deployment; nothing could receive the directive");
  }
  const reason = input.reason || `operator ${input.type}`;
  const audit: AuditSpec = {
    action: "directive.send",
    resource: { type: "deployment", id: input.deploymentId },
    details: { type: input.type, reason, ...(input.heartbeatIntervalMs === null ? {} : { heartbeatIntervalMs: input.heartbeatIntervalMs }) },
  };
  if (input.type === "RENEW_LEASE") {
    const renewed = await renewLease(deps, input.deploymentId, reason, { call, audit });
    if (!renewed) {
      const state = deriveState(loaded.facts, loaded.now.getTime(), loaded.settings).state;
      throw new DomainError("FAILED_PRECONDITION", `no lease may be issued while the deployment is ${state}`);
    }
    return create(SendDirectiveResponseSchema, { directive: renewed.directive, delivered: renewed.delivered });
  }
  const payload =
    input.type === "REFRESH_KEYS"
      ? { reason, jwksJson: (await deps.signing.refreshJwks()).json }
      : input.type === "SET_INTERVAL"
        ? { reason, heartbeatIntervalMs: input.heartbeatIntervalMs! }
        : { reason };
  const { directive, delivered } = await storeDirective(deps, call, input.deploymentId, input.type, payload, audit);
  return create(SendDirectiveResponseSchema, { directive, delivered });
}
