/**
 * `fleet.v1.FleetSweepService`: thin handlers over the runner and the store. Permission
 * `fleet.sweep` is enforced by the rpc policy table before any of this runs.
 */
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { clampPageSize } from "@lcp/domain";
import {
  FleetSweepService,
  GetSweepResponseSchema,
  ListSweepsResponseSchema,
  SweepResponseSchema,
} from "@lcp/proto/fleet/v1/fleet_sweep_service_pb";
import { DomainError, principalKey, requestIdKey, fromVerdict } from "@lcp/rpc";
import { SWEEP_PAGE_MAX } from "../config.js";
import type { SweepStore } from "../storage/sweep-store.js";
import { sweepRunToProto } from "./mapping.js";
import type { RunRequester, SweepRunner } from "./runner.js";

/** ListSweeps page sizes: 0 → 50, at most 500. */
export const LIST_PAGE = { default: 50, max: 500 } as const;

/** What the handlers need. */
export interface FleetSweepHandlerDeps {
  runner: SweepRunner;
  store: SweepStore;
  /** Reconcile page size when the request leaves it 0 (SWEEP_PAGE_SIZE). */
  defaultPageSize: number;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The page token of ListSweeps: the last id of the page, opaque to callers. */
function encodeToken(id: string): string {
  return Buffer.from(`sweep:${id}`).toString("base64url");
}
function decodeToken(token: string): string {
  const text = Buffer.from(token, "base64url").toString("utf8");
  const id = text.startsWith("sweep:") ? text.slice(6) : "";
  if (!UUID.test(id)) throw new DomainError("PAGE_TOKEN_INVALID", "page_token is not one this service returned", { field: "page_token" });
  return id;
}

/** The FleetSweepService implementation. */
export function createFleetSweepHandlers(deps: FleetSweepHandlerDeps): ServiceImpl<typeof FleetSweepService> {
  return {
    async sweep(req, ctx) {
      // Reconcile page sizes: 0 → the configured default, at most SWEEP_PAGE_MAX.
      const size = clampPageSize(req.pageSize, { default: deps.defaultPageSize, max: SWEEP_PAGE_MAX });
      if (!size.ok) throw fromVerdict(size, size.message, size.field ? { field: size.field } : {});
      const principal = ctx.values.get(principalKey);
      const requester: RunRequester =
        principal.kind === "admin"
          ? { kind: "admin", id: principal.subject, roles: principal.roles, requestId: ctx.values.get(requestIdKey) }
          : { kind: "system", id: principal.kind === "service" ? principal.name : "-", requestId: ctx.values.get(requestIdKey) };
      // The run is not tied to the call: a caller that gives up (deadline, disconnect) does not
      // stop a sweep half-way; its report is stored either way and GetSweep/ListSweeps show it.
      const outcome = await deps.runner.run({ trigger: "ON_DEMAND", dryRun: req.dryRun, pageSize: size.pageSize, requester });
      if (!outcome.ok) {
        throw new DomainError(
          "SWEEP_IN_PROGRESS",
          `sweep ${outcome.runningId} is in progress${outcome.owner ? ` on ${outcome.owner}` : ""}; wait for it (GetSweep) and retry`,
          { sweepId: outcome.runningId },
        );
      }
      return create(SweepResponseSchema, { sweep: sweepRunToProto(outcome.run) });
    },

    async getSweep(req) {
      if (!UUID.test(req.sweepId)) {
        // A malformed id can never exist: say NotFound like any unknown id, naming it.
        throw new DomainError("NOT_FOUND", `sweep ${JSON.stringify(req.sweepId)} does not exist`, { sweepId: req.sweepId });
      }
      const run = await deps.store.get(req.sweepId);
      if (!run) throw new DomainError("NOT_FOUND", `sweep ${req.sweepId} does not exist`, { sweepId: req.sweepId });
      return create(GetSweepResponseSchema, { sweep: sweepRunToProto(run) });
    },

    async listSweeps(req) {
      const size = clampPageSize(req.pageSize, LIST_PAGE);
      if (!size.ok) throw fromVerdict(size, size.message, size.field ? { field: size.field } : {});
      const before = req.pageToken ? decodeToken(req.pageToken) : undefined;
      // One extra row says whether there is a next page without a count query.
      const runs = await deps.store.list(size.pageSize + 1, before);
      const page = runs.slice(0, size.pageSize);
      return create(ListSweepsResponseSchema, {
        sweeps: page.map(sweepRunToProto),
        nextPageToken: runs.length > size.pageSize ? encodeToken(page[page.length - 1]!.id) : "",
      });
    },
  };
}
