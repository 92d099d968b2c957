import { describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus as S } from "@lcp/proto/grpc/health/v1/health_pb";
import { SigningKeyService } from "@lcp/proto/signing/v1/signing_key_service_pb";
import { startTestServer } from "@lcp/testing/server";
import { deferred, failure, newCalls, signingStub } from "./fixtures.js";

describe("graceful shutdown", () => {
  it("ends an open Health.Watch cleanly with NOT_SERVING and resolves within the grace period", async () => {
    const t = await startTestServer({ name: "signing-keys", register: signingStub(newCalls()), shutdownGraceMs: 3_000 });
    const health = t.anonymousClient(Health);
    expect((await health.check({ service: "signing.v1.SigningKeyService" })).status).toBe(S.SERVING);
    expect(await failure(health.check({ service: "no.such.Service" }))).toMatchObject({ code: Code.NotFound });

    const seen: S[] = [];
    const opened = deferred();
    const watching = (async () => {
      for await (const res of health.watch({ service: "" }, { timeoutMs: 30_000 })) {
        seen.push(res.status);
        if (seen.length === 1) opened.resolve();
      }
    })();
    await opened.promise;

    const started = Date.now();
    await t.close();
    expect(Date.now() - started).toBeLessThan(3_000);
    await watching; // ends without an error
    expect(seen).toEqual([S.SERVING, S.NOT_SERVING]);
    await t.close(); // idempotent
  });

  it("delivers the answer of a call that completes while closing, with a late call refused beside it", async () => {
    // A call in flight when close() begins, a second call sent after the GOAWAY (refused, and read
    // as Unavailable: it was not processed), then the first completes. A server that destroyed its
    // sessions as soon as no call was in flight cut about half of those answers (CANCEL): the work
    // done, the caller told it failed (seen as a sweep page committed and reported failed). Twenty
    // rounds, each with its own server.
    const outcomes: string[] = [];
    for (let round = 0; round < 20; round++) {
      const release = deferred();
      const entered = deferred();
      const sign = () => {
        entered.resolve();
        return release.promise;
      };
      const t = await startTestServer({ name: "signing-keys", shutdownGraceMs: 5_000, register: signingStub(newCalls(), { sign }) });
      const client = await t.serviceClient(SigningKeyService, "licensing");
      const outcome = (call: Promise<{ token: string }>) => call.then((r) => r.token, (e: unknown) => `failed: ${ConnectError.from(e).message}`);
      const inFlight = outcome(client.sign({ typ: "in-flight" }));
      // In flight means in the handler: a fixed wait let a slow handshake put the first call
      // after close() on a busy machine.
      await entered.promise;
      const closed = t.close();
      const late = outcome(client.sign({ typ: "late" }));
      await new Promise((r) => setTimeout(r, round % 5));
      release.resolve();
      await closed;
      outcomes.push(await inFlight);
      // Refused after the GOAWAY, or (once the listener is gone) not connected: never processed,
      // and said so with Unavailable, which an idempotent call retries.
      expect(await late).toMatch(/^failed: \[unavailable\] /);
    }
    expect(outcomes).toEqual(Array.from({ length: 20 }, () => "signed:in-flight"));
  });

  it("lets an in-flight unary call finish, and cuts a stuck one after the grace period", async () => {
    const release = deferred();
    let mode: "slow" | "stuck" = "slow";
    const t = await startTestServer({
      name: "signing-keys",
      shutdownGraceMs: 500,
      register: signingStub(newCalls(), {
        getJwks: async () => {
          if (mode === "slow") await new Promise((r) => setTimeout(r, 200));
          else await release.promise;
        },
      }),
    });
    const client = t.anonymousClient(SigningKeyService);
    const slow = client.getJwks({});
    await new Promise((r) => setTimeout(r, 50));
    await t.close();
    expect((await slow).kids).toEqual(["k1"]);

    mode = "stuck";
    const t2 = await startTestServer({
      name: "signing-keys",
      shutdownGraceMs: 300,
      register: signingStub(newCalls(), { getJwks: () => release.promise }),
    });
    // Observed from the start, so the cut does not surface as an unhandled rejection.
    const stuck = failure(t2.anonymousClient(SigningKeyService).getJwks({}));
    await new Promise((r) => setTimeout(r, 50));
    const started = Date.now();
    await t2.close();
    expect(Date.now() - started).toBeLessThan(2_000);
    expect((await stuck).code).toBeDefined(); // cut, not answered
    release.resolve();
  });
});
