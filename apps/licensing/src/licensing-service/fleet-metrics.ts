/**
 * `licensing_deployments{state}`: the fleet by derived state, for dashboards and alerts (a rising
 * `LOCKED(OFFLINE)` count is a site losing its network). Read at scrape time from the same
 * GROUP BY as GetFleetSummary, which counts the whole table: the answer is kept for `maxAgeMs` and
 * concurrent scrapes (several Prometheus replicas, the TLS and the admin listener) share one
 * query, so the database counts the fleet at most once per `maxAgeMs` per licensing replica.
 */
import type { RpcMetrics } from "@lcp/rpc";
import type { LicensingDeps } from "../deps.js";
import { ALL_STATES } from "../reconcile/derivation-sql.js";
import { countFleetByState, type FleetStateCount } from "./fleet-summary.js";

/** How long one count of the fleet answers scrapes: Prometheus' usual 15 s scrape interval. */
export const DEFAULT_FLEET_METRICS_MAX_AGE_MS = 15_000;

/** `LOCKED(OFFLINE)`, as `fleet_sweep_transitions_total` spells states in its `from`/`to` labels. */
function stateLabel(s: FleetStateCount["state"]): string {
  return s.lockReason ? `${s.state}(${s.lockReason})` : s.state;
}

/** Registers the `deployments` gauge (served as `licensing_deployments`) on licensing's metrics. */
export function registerFleetMetrics(metrics: RpcMetrics, deps: Pick<LicensingDeps, "db" | "now">, maxAgeMs = DEFAULT_FLEET_METRICS_MAX_AGE_MS): void {
  let cached: { at: number; counts: FleetStateCount[] } | undefined;
  let inFlight: Promise<FleetStateCount[]> | undefined;
  const read = (): Promise<FleetStateCount[]> => {
    const now = deps.now();
    if (cached && now.getTime() - cached.at >= 0 && now.getTime() - cached.at < maxAgeMs) return Promise.resolve(cached.counts);
    inFlight ??= countFleetByState(deps, now)
      .then((counts) => {
        cached = { at: now.getTime(), counts };
        return counts;
      })
      .finally(() => {
        inFlight = undefined;
      });
    return inFlight;
  };
  metrics.gauge("deployments", "Deployments by derived state (as GetFleetSummary counts them), recounted at most every few seconds.", ["state"], async function () {
    const counts = await read();
    // Every state is set, zero included, so a state that empties drops to 0 instead of vanishing.
    for (const { code, state } of ALL_STATES) {
      this.set({ state: stateLabel(state) }, counts.find((c) => c.code === code)?.count ?? 0);
    }
  });
}
