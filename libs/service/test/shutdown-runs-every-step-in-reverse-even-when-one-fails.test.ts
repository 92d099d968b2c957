/** Shutdown runs every step newest first; one that fails is logged and the older ones still run. */
import { describe, expect, it } from "vitest";
import { createCleanupStack } from "../src/cleanup-stack.js";

describe("cleanup stack", () => {
  it("runs every step in reverse even when one fails, logs the failure, and runs once", async () => {
    const errors: unknown[] = [];
    const stack = createCleanupStack({ error: (fields: unknown) => void errors.push(fields) } as never);
    const ran: string[] = [];
    stack.defer(() => void ran.push("database"));
    stack.defer(async () => {
      ran.push("relay");
      throw new Error("relay would not stop");
    });
    stack.defer(async () => {
      // A step deferred while closing still runs, before the older ones.
      stack.defer(() => void ran.push("late"));
      ran.push("server");
    });

    expect(stack.signal.aborted).toBe(false);
    const [first, second] = [stack.close(), stack.close()];
    expect(stack.signal.aborted).toBe(true);
    await expect(first).resolves.toBeUndefined();
    await second;
    await stack.close();

    expect(ran).toEqual(["server", "late", "relay", "database"]);
    expect(errors).toEqual([{ err: new Error("relay would not stop") }]);
  });
});
