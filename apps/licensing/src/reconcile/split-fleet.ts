/**
 * `ReconcileService.SplitFleet`: cuts the fleet, in deployment id order, into ranges of about the
 * same size, so a sweep can reconcile them side by side — on PostgreSQL one page statement per
 * range in flight, each on its own connection and CPU. Ranges that gain or lose deployments
 * meanwhile are still covered: a range is a span of keys, not a list of rows.
 *
 * - PostgreSQL: the fleet's size as the planner estimates it (the rows per page autovacuum's
 *   ANALYZE saw, `pg_class.reltuples / relpages`, times the table's pages now; counted when the
 *   table was never analysed, or analysed while empty), then each boundary by
 *   skipping that many keys from the previous one in the primary key (an index-only scan). A
 *   stale estimate only makes the ranges uneven. Numbering every id instead (a window over the
 *   whole key) reads all 1,000,000 keys: a sizeable share of a sweep.
 * - SQLite: no boundaries, one range. Its single writer, driven synchronously from licensing's
 *   event loop, runs one page at a time however many are asked for; ranges side by side would
 *   only add the split's cost.
 */
import type { EntityManager } from "@mikro-orm/knex";
import { DomainError } from "@lcp/rpc";

/** SplitFleetRequest.parts: 1 to this many. */
export const MAX_FLEET_PARTS = 64;

/** The ids that end every range but the last, ascending (see the proto's SplitFleetResponse). */
export async function splitFleet(em: EntityManager, driver: "sqlite" | "postgresql", parts: number): Promise<string[]> {
  if (!Number.isInteger(parts) || parts < 1 || parts > MAX_FLEET_PARTS) {
    throw new DomainError("INVALID_ARGUMENT", `parts must be an integer between 1 and ${MAX_FLEET_PARTS} (got ${parts})`, { field: "parts" });
  }
  if (parts === 1 || driver === "sqlite") return [];
  const conn = em.getConnection();
  // As the planner sizes a table: the rows per page ANALYZE saw, times the pages there are now.
  const [estimate] = await conn.execute<Array<{ tuples: number | string; pages: number | string; now: number | string }>>(
    "select reltuples as tuples, relpages as pages, pg_relation_size(oid) / current_setting('block_size')::int as now from pg_class where oid = to_regclass('deployment')",
    [],
    "all",
  );
  const [tuples, pages, pagesNow] = [Number(estimate?.tuples ?? -1), Number(estimate?.pages ?? 0), Number(estimate?.now ?? 0)];
  let total = tuples > 0 && pages > 0 ? Math.round((tuples / pages) * (pagesNow > 0 ? pagesNow : pages)) : -1;
  // Never analysed, or analysed while empty: count.
  if (!(total > 0)) {
    const [row] = await conn.execute<Array<{ n: number | string }>>("select count(*) as n from deployment", [], "all");
    total = Number(row?.n ?? 0);
  }
  const size = Math.ceil(total / parts);
  const boundaries: string[] = [];
  if (size < 1) return boundaries;
  let after = "";
  for (let i = 1; i < parts; i++) {
    const [row] = await conn.execute<Array<{ id: string }>>("select id from deployment where id > ? order by id offset ? limit 1", [after, size - 1], "all");
    // The fleet ends before this boundary: the last range runs to the end from the previous one.
    if (!row) break;
    after = row.id;
    boundaries.push(after);
  }
  // A boundary on the last id would leave an empty last range.
  if (after !== "") {
    const [beyond] = await conn.execute<Array<{ id: string }>>("select id from deployment where id > ? limit 1", [after], "all");
    if (!beyond) boundaries.pop();
  }
  return boundaries;
}
