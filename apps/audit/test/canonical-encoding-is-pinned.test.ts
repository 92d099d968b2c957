import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { canonicalEventText, canonicalJson } from "../src/chain/canonical.js";
import { chainHash, createChainLinker, GENESIS_HASH, verifyPage, type StoredChainEvent } from "../src/chain/hash.js";

const revoke = {
  seq: 1,
  id: "0190a000-0000-7000-8000-000000000001",
  occurredAt: new Date("2025-01-02T03:04:05.678Z"),
  actorKind: "admin",
  actorId: "carol",
  actorRoles: ["support"],
  action: "license.revoke",
  resourceType: "license",
  resourceId: "lic-42",
  outcome: "success",
  requestId: "req-1",
  details: '{"reason":"contract terminated"}',
  producer: "licensing",
};

describe("the canonical encoding (README: 'Hash chain')", () => {
  it("is pinned: a change to the encoding breaks every stored chain, so it must be deliberate", () => {
    expect(canonicalEventText(revoke)).toBe(
      '["lcp.audit.v1",1,"0190a000-0000-7000-8000-000000000001","2025-01-02T03:04:05.678Z","admin","carol",["support"],' +
        '"license.revoke","license","lic-42","success","req-1",{"reason":"contract terminated"},"licensing"]',
    );
    // Also reproducible outside node: printf '<text>' plus 32 zero bytes | sha256sum.
    expect(chainHash(revoke, GENESIS_HASH)).toBe("dd2c53072b6981f0029ef8e4a2382dd4bbcecb7f3b6d55e7f7a2d9ffe4a50ecb");
  });

  it("sorts object keys recursively and keeps array order", () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: null } })).toBe('{"a":{"c":null,"d":[3,{"y":2,"z":1}]},"b":1}');
  });

  it("does not depend on key order and is a fixed point", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const text = canonicalJson(value);
        expect(canonicalJson(JSON.parse(text))).toBe(text);
        expect(canonicalJson(shuffleKeys(value))).toBe(text);
      }),
    );
  });

  it("the append path's linker makes exactly chainHash's links, across producers and from any head", () => {
    const head = { seq: 41, hash: "ab".repeat(32) };
    const linker = createChainLinker(head);
    let prev = head.hash;
    for (let i = 0; i < 6; i++) {
      const producer = i < 3 ? "licensing" : 'odd "name"';
      const link = linker.next({ ...revoke, details: `{"i":${i}}` }, producer);
      expect(link).toEqual({ seq: 42 + i, prevHash: prev, hash: chainHash({ ...revoke, details: `{"i":${i}}`, seq: 42 + i, producer }, prev) });
      prev = link.hash;
    }
    expect(linker.head()).toEqual({ seq: 47, hash: prev });
    // An encoding too long for the shared scratch buffer hashes the same (checked against a
    // plain createHash of the documented bytes).
    const big = { ...revoke, details: JSON.stringify({ blob: "é".repeat(30_000) }) };
    const reference = createHash("sha256").update(canonicalEventText({ ...big, seq: 1, producer: "licensing" }), "utf8").update(Buffer.alloc(32)).digest("hex");
    expect(createChainLinker({ seq: 0, hash: GENESIS_HASH }).next(big, "licensing").hash).toBe(reference);
  });

  it("links each event to the previous hash: changing any field or reordering breaks the chain", () => {
    const chain: StoredChainEvent[] = [];
    let prev = GENESIS_HASH;
    for (let seq = 1; seq <= 5; seq++) {
      const e = { ...revoke, seq, id: revoke.id.replace(/1$/, String(seq)) };
      const hash = chainHash(e, prev);
      chain.push({ ...e, prevHash: prev, hash });
      prev = hash;
    }
    expect(verifyPage(chain, { nextSeq: 1, prevHash: GENESIS_HASH })).toMatchObject({ ok: true, checked: 5 });
    const tampered = chain.map((e) => (e.seq === 3 ? { ...e, actorId: "mallory" } : e));
    expect(verifyPage(tampered, { nextSeq: 1, prevHash: GENESIS_HASH })).toMatchObject({ ok: false, code: "HASH_MISMATCH", seq: 3 });
    const gap = chain.filter((e) => e.seq !== 2);
    expect(verifyPage(gap, { nextSeq: 1, prevHash: GENESIS_HASH })).toMatchObject({ ok: false, code: "GAP", seq: 2 });
  });
});

function shuffleKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(shuffleKeys);
  if (v !== null && typeof v === "object") {
    return Object.fromEntries(Object.entries(v).reverse().map(([k, x]) => [k, shuffleKeys(x)]));
  }
  return v;
}
