import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
  type HealthCheckRequest,
  type HealthCheckResponseSchema,
} from "@lcp/proto/grpc/health/v1/health_pb";
import { createPublicStreamBudget, withinBudget, type PublicStreamBudget } from "./public-streams.js";

export { ServingStatus };

/** A serving status by its gRPC name, or the generated enum value. */
export type HealthStatus = ServingStatus | "SERVING" | "NOT_SERVING";

/**
 * The `grpc.health.v1.Health` service of one server: the statuses it reports, and the routes
 * that serve them. `""` is the server's overall status (what a load balancer probes).
 */
export interface HealthService {
  /** Sets a service's status and pushes it to every open `Watch` of that service. */
  setStatus(service: string, status: HealthStatus): void;
  /** A service's status, or undefined when the service is unknown. */
  getStatus(service: string): ServingStatus | undefined;
  /** Sets every known service (and the overall status) at once, e.g. NOT_SERVING on shutdown. */
  setAll(status: HealthStatus): void;
  /** Registers Check, Watch and List on a router. */
  routes(router: ConnectRouter): void;
}

/**
 * Creates the health service; `createServer` creates one and marks registered services SERVING.
 * Each open `Watch` holds a slot of `publicStreams` (anyone may watch: no credential is asked).
 */
export function createHealth(publicStreams: PublicStreamBudget = createPublicStreamBudget()): HealthService {
  const statuses = new Map<string, ServingStatus>();
  const watchers = new Map<string, Set<() => void>>();

  const toEnum = (status: HealthStatus): ServingStatus =>
    typeof status === "string" ? ServingStatus[status] : status;

  function notify(service: string): void {
    for (const wake of watchers.get(service) ?? []) wake();
  }

  function setStatus(service: string, status: HealthStatus): void {
    const next = toEnum(status);
    if (statuses.get(service) === next) return;
    statuses.set(service, next);
    notify(service);
  }

  async function* watch(req: HealthCheckRequest, ctx: HandlerContext): AsyncGenerator<MessageInitShape<typeof HealthCheckResponseSchema>> {
    const service = req.service;
    let wake: (() => void) | undefined;
    let dirty = false;
    const onChange = () => {
      dirty = true;
      wake?.();
    };
    const onAbort = () => wake?.();
    let set = watchers.get(service);
    if (!set) watchers.set(service, (set = new Set()));
    set.add(onChange);
    ctx.signal.addEventListener("abort", onAbort);
    try {
      // Per the spec an unknown service is not an error for Watch: it may become known later.
      let sent = statuses.get(service) ?? ServingStatus.SERVICE_UNKNOWN;
      yield { status: sent };
      for (;;) {
        if (!dirty && !ctx.signal.aborted) {
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
        }
        // A change that raced with shutdown (NOT_SERVING) is still delivered before the end, so
        // a watcher learns the server is going away rather than just losing the stream.
        if (dirty) {
          dirty = false;
          const current = statuses.get(service) ?? ServingStatus.SERVICE_UNKNOWN;
          if (current !== sent) {
            sent = current;
            yield { status: current };
          }
        }
        // The client went away, its deadline passed, or the server shuts down: end cleanly.
        if (ctx.signal.aborted) return;
      }
    } finally {
      set.delete(onChange);
      if (set.size === 0) watchers.delete(service);
      ctx.signal.removeEventListener("abort", onAbort);
    }
  }

  return {
    setStatus,
    getStatus: (service) => statuses.get(service),
    setAll(status) {
      for (const service of [...statuses.keys()]) setStatus(service, status);
    },
    routes(router) {
      router.service(Health, {
        check(req) {
          const status = statuses.get(req.service);
          if (status === undefined) {
            throw new ConnectError(`unknown service ${req.service}`, Code.NotFound);
          }
          return { status };
        },
        watch: (req, ctx) => withinBudget(publicStreams, "grpc.health.v1.Health/Watch", () => watch(req, ctx)),
        list() {
          return {
            statuses: Object.fromEntries([...statuses].map(([name, status]) => [name, { status }])),
          };
        },
      });
    },
  };
}
