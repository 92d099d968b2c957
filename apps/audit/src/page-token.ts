import { createHash } from "node:crypto";
import { canonicalJson } from "./chain/canonical.js";
import type { EventFilter } from "./storage/audit-store.js";

const PREFIX = "a1";

/**
 * The opaque `page_token` of ListEvents: a keyset cursor (the seq of the last event returned;
 * the next page holds smaller seqs) bound to the filters it was issued for, base64url-encoded.
 * Keyset, not offset: events appended between pages never shift, repeat or hide one.
 */
export function encodePageToken(lastSeq: number, filter: EventFilter): string {
  return Buffer.from(`${PREFIX}.${lastSeq}.${filterDigest(filter)}`, "utf8").toString("base64url");
}

/**
 * Decodes a page token issued for `filter`: the seq to continue below, or an error message
 * (garbage, or a token of a query with other filters, whose cursor would mean nothing here).
 */
export function decodePageToken(token: string, filter: EventFilter): { ok: true; beforeSeq: number } | { ok: false; message: string } {
  const garbage = { ok: false as const, message: "page_token is not a token this service issued" };
  if (token.length > 200 || !/^[A-Za-z0-9_-]+$/.test(token)) return garbage;
  const parts = Buffer.from(token, "base64url").toString("utf8").split(".");
  if (parts.length !== 3 || parts[0] !== PREFIX || !/^[1-9]\d{0,15}$/.test(parts[1]!)) return garbage;
  const beforeSeq = Number(parts[1]);
  if (!Number.isSafeInteger(beforeSeq)) return garbage;
  if (parts[2] !== filterDigest(filter)) return { ok: false, message: "page_token was issued for other filters; repeat the same filters or start over" };
  return { ok: true, beforeSeq };
}

function filterDigest(f: EventFilter): string {
  const canonical = canonicalJson({
    action: f.action ?? "",
    resourceType: f.resourceType ?? "",
    resourceId: f.resourceId ?? "",
    actorId: f.actorId ?? "",
    outcome: f.outcome ?? "",
    startTime: f.startTime?.getTime() ?? null,
    endTime: f.endTime?.getTime() ?? null,
  });
  return createHash("sha256").update(canonical).digest("base64url").slice(0, 16);
}
