import type { Appliance, DirectiveEvent } from "@lcp/appliance-sdk";

/**
 * Resolves with the next directive of `type` the box applies (or had already applied: a
 * redelivery), stamped with `performance.now()` so a test can time push latency; rejects after
 * `ms`. Directives the box ignored or discarded do not count.
 */
export function nextDirective(box: Appliance, type: DirectiveEvent["type"], ms = 5_000): Promise<DirectiveEvent & { at: number }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${type} directive within ${ms} ms`));
    }, ms);
    const off = box.on("directive", (e) => {
      if (e.type !== type || e.outcome === "ignored" || e.outcome === "discarded") return;
      clearTimeout(timer);
      off();
      resolve({ ...e, at: performance.now() });
    });
  });
}
