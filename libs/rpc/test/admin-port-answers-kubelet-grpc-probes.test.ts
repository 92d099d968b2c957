/**
 * The admin port answers kubelet's `grpc` probe: gRPC over cleartext HTTP/2 (h2c, prior
 * knowledge) with `grpc.health.v1.Health/Check`, on the same port as the HTTP/1.1 paths. The
 * client here is grpc-js with insecure credentials, which is what kubelet's probe is (grpc-go).
 * Only Check is served: Watch and List, which would let an unauthenticated peer hold streams,
 * are UNIMPLEMENTED.
 */
import { connect } from "node:net";
import { join, resolve } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { HealthCheckResponse_ServingStatus as ServingStatus } from "@lcp/proto/grpc/health/v1/health_pb";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAdminServer, createMetrics, type AdminServer, type Readiness } from "../src/index.js";

const root = resolve(import.meta.dirname, "../../..");
interface HealthClient extends grpc.Client {
  Check(req: { service: string }, options: grpc.CallOptions, done: (err: grpc.ServiceError | null, res: { status: string }) => void): void;
  Watch(req: { service: string }): grpc.ClientReadableStream<unknown>;
}

describe("admin port: kubelet gRPC probes over h2c", () => {
  let admin: AdminServer;
  let readiness: Readiness = { ready: true };
  let health: HealthClient;

  beforeAll(async () => {
    admin = await createAdminServer({
      host: "127.0.0.1",
      port: 0,
      metrics: createMetrics({ app: "probe-test", processMetrics: false }),
      readiness: () => readiness,
      serviceStatus: (name) => (name === "audit.v1.AuditService" ? ServingStatus.SERVING : undefined),
      logger: pino({ level: "silent" }),
    });
    const def = protoLoader.loadSync(join(root, "node_modules/grpc-health-check/proto/health/v1/health.proto"), { enums: String });
    const pkg = grpc.loadPackageDefinition(def) as unknown as { grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } } };
    health = new pkg.grpc.health.v1.Health(`127.0.0.1:${admin.port}`, grpc.credentials.createInsecure()) as unknown as HealthClient;
  });
  afterAll(async () => {
    health?.close();
    await admin?.close();
  });

  const check = (service: string) =>
    new Promise<{ status?: string; code?: grpc.status }>((done) =>
      health.Check({ service }, { deadline: Date.now() + 5_000 }, (err, res) =>
        done(err ? { code: err.code } : { status: res.status }),
      ),
    );

  it("follows readiness for the overall status and for each known service", async () => {
    readiness = { ready: true };
    expect(await check("")).toEqual({ status: "SERVING" });
    expect(await check("audit.v1.AuditService")).toEqual({ status: "SERVING" });
    readiness = { ready: false, reason: "database unreachable" };
    expect(await check("")).toEqual({ status: "NOT_SERVING" });
    expect(await check("audit.v1.AuditService")).toEqual({ status: "NOT_SERVING" });
    readiness = { ready: true };
    expect(await check("")).toEqual({ status: "SERVING" });
  });

  it("refuses unknown services, oversized names, and every method but Check", async () => {
    expect(await check("nope.v1.Nothing")).toEqual({ code: grpc.status.NOT_FOUND });
    expect(await check("x".repeat(201))).toEqual({ code: grpc.status.INVALID_ARGUMENT });
    const watch = health.Watch({ service: "" });
    const code = await new Promise<grpc.status>((done) => {
      watch.on("error", (err: grpc.ServiceError) => done(err.code));
      watch.on("data", () => done(grpc.status.OK));
    });
    expect(code).toBe(grpc.status.UNIMPLEMENTED);
  });

  it("still serves the HTTP/1.1 paths on the same port, and drops a peer that says nothing", async () => {
    const res = await fetch(`http://127.0.0.1:${admin.port}/healthz`);
    expect([res.status, await res.text()]).toEqual([200, "ok\n"]);
    readiness = { ready: false, reason: "starting" };
    expect((await fetch(`http://127.0.0.1:${admin.port}/readyz`)).status).toBe(503);
    readiness = { ready: true };

    // A preface split across two writes is still HTTP/2 (the sniffer waits for the rest).
    const split = connect(admin.port, "127.0.0.1");
    const answered = new Promise<string>((done) => {
      let text = "";
      split.on("data", (d: Buffer) => (text += d.toString("latin1")));
      split.on("close", () => done(text));
      split.on("error", () => undefined);
    });
    split.write("PRI * HTTP/2.0\r\n");
    await new Promise((r) => setTimeout(r, 50));
    split.write("\r\nSM\r\n\r\n");
    // A server SETTINGS frame (type 0x04 at byte 3) comes back, not an HTTP/1.1 status line.
    const first = await new Promise<Buffer>((done) => split.once("data", done));
    expect(first[3]).toBe(0x04);
    split.destroy();
    expect(await answered).not.toMatch(/^HTTP\/1\.1/);

    const started = Date.now();
    const silent = connect(admin.port, "127.0.0.1");
    silent.on("error", () => undefined);
    await new Promise((done) => silent.once("close", done));
    expect(Date.now() - started).toBeLessThan(8_000);
  }, 15_000);
});
