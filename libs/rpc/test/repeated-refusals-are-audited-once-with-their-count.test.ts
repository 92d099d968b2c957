/**
 * A refusal repeated in a loop is not a loop of audit writes (libs/rpc denial-audit.ts), over real
 * TLS: the first refusal of a kind reaches `onDenied` before the caller is answered, its repeats
 * within the window come as one summary with their count, another kind is not held back by it, a
 * window that has closed starts again with a full event, and `close()` writes the summaries still
 * open before it resolves. Past the cap on kinds, refusals are counted by RPC and code.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { SigningKeyService } from "@lcp/proto/signing/v1/signing_key_service_pb";
import { createTestPki, type TestPki } from "@lcp/testing/pki";
import { startTestServer, type TestServer } from "@lcp/testing/server";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ANONYMOUS, coalesceDenials, createLogger, type DeniedEvent } from "../src/index.js";
import { newCalls, signingStub } from "./fixtures.js";

// Long enough for twenty refused calls over TLS on a busy two-core machine; the test waits for it
// to close twice.
const WINDOW_MS = 1_500;

async function refused(call: Promise<unknown>): Promise<Code> {
  try {
    await call;
  } catch (err) {
    return ConnectError.from(err).code;
  }
  throw new Error("the call was not refused");
}

async function until(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe("repeated refusals are audited once, then as a count", () => {
  let pki: TestPki;
  let t: TestServer | undefined;
  const denied: DeniedEvent[] = [];
  beforeAll(async () => {
    pki = await createTestPki();
  });
  afterEach(async () => {
    await t?.close();
    t = undefined;
    denied.length = 0;
  });
  const start = async (windowMs: number | undefined) =>
    (t = await startTestServer({
      name: "signing-keys",
      pki,
      register: signingStub(newCalls()),
      // A slow audit write: the first refusal's answer waits for it, a repeat's does not.
      onDenied: async (e) => {
        await new Promise((resolve) => setTimeout(resolve, 5));
        denied.push(e);
      },
      ...(windowMs !== undefined ? { deniedAuditWindowMs: windowMs } : {}),
    }));

  it("hands over the first refusal before answering, and its repeats as one summary when the window closes", async () => {
    const server = await start(WINDOW_MS);
    const anonymous = server.anonymousClient(SigningKeyService);
    expect(await refused(anonymous.sign({ typ: "license+jwt" }))).toBe(Code.Unauthenticated);
    // Written before the caller was answered.
    expect(denied).toHaveLength(1);
    expect(denied[0]).toMatchObject({ procedure: "signing.v1.SigningKeyService/Sign", code: "unauthenticated" });
    expect(denied[0]!.repeated).toBeUndefined();

    const opened = Date.now();
    for (let i = 0; i < 19; i++) expect(await refused(anonymous.sign({ typ: "license+jwt" }))).toBe(Code.Unauthenticated);
    // Another kind (another caller) in the same window is its own first refusal.
    const box = await server.applianceClient(SigningKeyService, "dep-1");
    expect(await refused(box.sign({}))).toBe(Code.PermissionDenied);
    expect(denied).toHaveLength(2);
    expect(denied[1]).toMatchObject({ principal: { kind: "appliance" }, code: "permission_denied" });

    await until(() => denied.length === 3);
    const summary = denied[2]!;
    expect(summary).toMatchObject({ procedure: "signing.v1.SigningKeyService/Sign", code: "unauthenticated", principal: ANONYMOUS });
    expect(summary.repeated).toMatchObject({ count: 19, mixed: false });
    expect(summary.repeated!.firstAt.getTime()).toBeGreaterThanOrEqual(opened - 5);
    expect(summary.repeated!.lastAt.getTime()).toBeGreaterThanOrEqual(summary.repeated!.firstAt.getTime());
    expect(summary.requestId).not.toBe(denied[0]!.requestId);
    // The appliance's kind had no repeats: no summary for it.
    await new Promise((resolve) => setTimeout(resolve, WINDOW_MS + 100));
    expect(denied).toHaveLength(3);

    // The window is over: the same refusal is a first one again.
    expect(await refused(anonymous.sign({ typ: "license+jwt" }))).toBe(Code.Unauthenticated);
    expect(denied).toHaveLength(4);
    expect(denied[3]!.repeated).toBeUndefined();
  });

  it("writes the windows still open when the server closes, before close() resolves", async () => {
    const server = await start(undefined); // the default window, a minute
    const anonymous = server.anonymousClient(SigningKeyService);
    for (let i = 0; i < 5; i++) expect(await refused(anonymous.sign({ typ: "license+jwt" }))).toBe(Code.Unauthenticated);
    expect(denied).toHaveLength(1);
    await server.close();
    expect(denied).toHaveLength(2);
    expect(denied[1]!.repeated).toMatchObject({ count: 4 });
  });

  it("with a window of 0 hands over every refusal; a negative window is refused at start", async () => {
    const server = await start(0);
    const anonymous = server.anonymousClient(SigningKeyService);
    for (let i = 0; i < 3; i++) expect(await refused(anonymous.sign({ typ: "license+jwt" }))).toBe(Code.Unauthenticated);
    expect(denied).toHaveLength(3);
    expect(denied.every((e) => e.repeated === undefined)).toBe(true);
    await expect(start(-1)).rejects.toThrow(/window/);
    await expect(start(1.5)).rejects.toThrow(/window/);
  });

  it("past the cap on kinds, counts new kinds by RPC and code, saying the callers were mixed", async () => {
    const written: DeniedEvent[] = [];
    const denials = coalesceDenials((e) => void written.push(e), { windowMs: 60_000, logger: createLogger("test", "silent") });
    const refusal = (i: number): DeniedEvent => ({
      principal: { kind: "admin", subject: `user-${i}`, roles: [], permissions: new Set() },
      procedure: "signing.v1.SigningKeyService/CreateKey",
      code: "permission_denied",
      reason: "needs super_admin",
      requestId: `req-${i}`,
    });
    for (let i = 0; i < 1_005; i++) await denials.onDenied(refusal(i));
    // A thousand kinds are tracked apart; the five after them are only counted.
    expect(written).toHaveLength(1_000);
    await denials.flush();
    expect(written).toHaveLength(1_001);
    expect(written[1_000]).toMatchObject({ requestId: "req-1004", repeated: { count: 5, mixed: true } });
  });
});
