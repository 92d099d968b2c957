/**
 * The relay quarantines only what the audit service will never accept: an InvalidArgument
 * refusal. Audit being down, slow or overloaded, and a producer clock ahead of audit's (refused
 * today, accepted later), are retried.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { DomainError, isPermanentAuditRefusal, toConnectError } from "@lcp/rpc";

describe("isPermanentAuditRefusal", () => {
  it("is true for an invalid event, false for everything that may pass on a retry", () => {
    const invalid = toConnectError(new DomainError("INVALID_ARGUMENT", "events[0]: text fields must not contain NUL characters", { index: "0" }));
    expect(isPermanentAuditRefusal(invalid)).toBe(true);
    const future = toConnectError(new DomainError("INVALID_ARGUMENT", "events[0]: occurred_at is in the future", { index: "0", field: "occurred_at" }));
    expect(isPermanentAuditRefusal(future)).toBe(false);
    for (const code of [Code.Unavailable, Code.DeadlineExceeded, Code.ResourceExhausted, Code.Internal, Code.PermissionDenied, Code.Unauthenticated]) {
      expect(isPermanentAuditRefusal(new ConnectError("x", code))).toBe(false);
    }
    expect(isPermanentAuditRefusal(new Error("connect ECONNREFUSED 127.0.0.1:1"))).toBe(false);
  });
});
