/**
 * What a producer records can never be refused by Append: for any untrusted text a caller can
 * put in an event (ids, roles, request ids, details of any size, any UTF-16 including NUL and
 * lone surrogates), the event as the relay ships it — built by newAuditEvent, stored as outbox
 * JSON, read back and sent with `details_json` — passes the audit service's own validator.
 */
import { toJsonString } from "@bufbuild/protobuf";
import { AUDIT_EVENT_LIMITS, AUDIT_TRUNCATION_MARKER, sanitizeAuditText } from "@lcp/domain";
import { newAuditEvent, outboxDeliveryEvents, sanitizeAuditEvent } from "@lcp/persistence";
import { AuditEventSchema, type AuditEvent } from "@lcp/proto/audit/v1/audit_service_pb";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { deniedEvent } from "../src/denials.js";
import { validateAppendBatch } from "../src/validate.js";

const NOW = new Date("2030-01-01T00:00:00.000Z");

// Every UTF-16 code unit (NUL, controls, lone surrogates), short and long.
const anyText = fc.oneof(
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.string({ unit: fc.constantFrom("\u0000", "\u001b", "\u202e", "\ud800", "\udc00", "é", "😀", "a"), maxLength: 600 }),
  fc.nat({ max: 40_000 }).map((n) => "x".repeat(n)),
);
const anyJson: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: "small" }, anyText, fc.double(), fc.boolean(), fc.constant(null), fc.array(tie("value"), { maxLength: 5 }), fc.dictionary(anyText, tie("value"), { maxKeys: 5 })),
})).value;
const anyDetails = fc.oneof(
  fc.dictionary(anyText, anyJson, { maxKeys: 8 }),
  // Many medium fields: no single value is large, only their sum.
  fc.array(fc.string({ maxLength: 500 }), { maxLength: 200 }).map((xs) => Object.fromEntries(xs.map((x, i) => [`k${i}`, x]))),
);

function shipped(event: AuditEvent): AuditEvent[] {
  return outboxDeliveryEvents({ payload: toJsonString(AuditEventSchema, event) });
}

function expectAccepted(events: AuditEvent[]): void {
  const verdict = validateAppendBatch(events, NOW, 0);
  expect(verdict.ok ? "accepted" : verdict.message).toBe("accepted");
}

describe("sanitised audit events always pass Append validation", () => {
  it("holds for events built by newAuditEvent from any untrusted input", () => {
    fc.assert(
      fc.property(
        anyText,
        fc.array(anyText, { maxLength: 120 }),
        anyText,
        anyText,
        anyText,
        fc.option(anyDetails, { nil: undefined }),
        (actorId, roles, resourceType, resourceId, requestId, details) => {
          const event = newAuditEvent({
            action: "license.activate",
            actor: { kind: "admin", id: actorId, roles },
            resource: { type: resourceType, id: resourceId },
            outcome: "denied",
            requestId,
            details,
            now: NOW,
          });
          expectAccepted(shipped(event));
        },
      ),
      { numRuns: 300 },
    );
  });

  it("holds for events carrying their own details_json", () => {
    fc.assert(
      fc.property(fc.oneof(anyText, anyJson.map((j) => JSON.stringify(j) ?? "")), anyText, (detailsJson, resourceId) => {
        const event = newAuditEvent({ action: "authz.denied", actor: { kind: "anonymous", id: "-" }, resource: { type: "rpc", id: resourceId }, outcome: "denied", now: NOW });
        event.detailsJson = detailsJson;
        expectAccepted([sanitizeAuditEvent(event)]);
      }),
      { numRuns: 300 },
    );
  });

  it("is idempotent, and marks what it cut", () => {
    fc.assert(
      fc.property(anyText, fc.integer({ min: 1, max: 300 }), (text, max) => {
        const once = sanitizeAuditText(text, max);
        expect(once.length).toBeLessThanOrEqual(max);
        expect(sanitizeAuditText(once, max)).toBe(once);
      }),
    );
    expect(sanitizeAuditText("\u0000", 256)).toBe("\\u0000");
    const long = sanitizeAuditText("l".repeat(300), AUDIT_EVENT_LIMITS.idText);
    expect(long).toHaveLength(AUDIT_EVENT_LIMITS.idText);
    expect(long.endsWith(AUDIT_TRUNCATION_MARKER)).toBe(true);
  });

  it("keeps a refusal's code when its message is oversized, and says how much was left out", () => {
    const event = newAuditEvent({
      action: "license.activate",
      actor: { kind: "anonymous", id: "-" },
      resource: { type: "license", id: "l" },
      outcome: "denied",
      details: { code: "LICENSE_NOT_FOUND", message: "m".repeat(20_000), extra: Array.from({ length: 40 }, () => "e".repeat(1_000)) },
      now: NOW,
    });
    const [sent] = shipped(event);
    expectAccepted([sent!]);
    const details = JSON.parse(sent!.detailsJson) as Record<string, unknown>;
    expect(details.code).toBe("LICENSE_NOT_FOUND");
    expect(String(details.message).endsWith(AUDIT_TRUNCATION_MARKER)).toBe(true);
    expect(details.extra).toMatchObject({ truncated: true });
  });

  it("bounds audit's own authz.denied events the same way (they skip Append's validation)", () => {
    fc.assert(
      fc.property(anyText, fc.array(anyText, { maxLength: 60 }), anyText, anyText, (subject, roles, reason, requestId) => {
        const e = deniedEvent(
          { principal: { kind: "admin", subject, roles, permissions: new Set() }, procedure: "audit.v1.AuditService/ListEvents", code: "permission_denied", reason, requestId },
          NOW,
        );
        const texts = [e.actorId, ...e.actorRoles, e.resourceId, e.requestId];
        expect(texts.some((t) => t.includes("\0"))).toBe(false);
        expect(e.actorId.length).toBeLessThanOrEqual(AUDIT_EVENT_LIMITS.idText);
        expect(e.requestId.length).toBeLessThanOrEqual(AUDIT_EVENT_LIMITS.requestId);
        expect(e.actorRoles.length).toBeLessThanOrEqual(AUDIT_EVENT_LIMITS.roles);
        expect(e.actorRoles.every((r) => r.length <= AUDIT_EVENT_LIMITS.role)).toBe(true);
        expect(Buffer.byteLength(e.details, "utf8")).toBeLessThanOrEqual(AUDIT_EVENT_LIMITS.detailsBytes);
      }),
      { numRuns: 200 },
    );
  });
});
