import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import {
  GetJwksRequestSchema,
  GetJwksResponseSchema,
  SignRequestSchema,
  SignResponseSchema,
} from "@lcp/proto/signing/v1/signing_key_service_pb";
import { createClient as createConnectClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { SigningKeyService } from "@lcp/proto/signing/v1/signing_key_service_pb";
import { startTestServer, type TestServer } from "@lcp/testing/server";
import { newCalls, signingStub } from "./fixtures.js";

const run = promisify(execFile);
const root = resolve(import.meta.dirname, "../../..");
const buf = join(root, "node_modules/.bin/buf");

/** A grpc-js method definition from protobuf-es schemas: an independent client, no codegen. */
function method<I extends DescMessage, O extends DescMessage>(path: string, input: I, output: O) {
  return {
    path,
    requestStream: false,
    responseStream: false,
    requestSerialize: (m: MessageInitShape<I>) => Buffer.from(toBinary(input, create(input, m))),
    requestDeserialize: (b: Buffer) => fromBinary(input, b),
    responseSerialize: (m: MessageShape<O>) => Buffer.from(toBinary(output, m)),
    responseDeserialize: (b: Buffer) => fromBinary(output, b),
  };
}

const SigningClient = grpc.makeGenericClientConstructor(
  {
    getJwks: method("/signing.v1.SigningKeyService/GetJwks", GetJwksRequestSchema, GetJwksResponseSchema),
    sign: method("/signing.v1.SigningKeyService/Sign", SignRequestSchema, SignResponseSchema),
  },
  "SigningKeyService",
);

function unary<T>(client: grpc.Client, name: string, req: unknown, metadata = new grpc.Metadata()): Promise<T> {
  return new Promise((ok, fail) => {
    (client as unknown as Record<string, (r: unknown, m: grpc.Metadata, cb: (e: grpc.ServiceError | null, v: T) => void) => void>)[name]!(
      req,
      metadata,
      (err, value) => (err ? fail(err) : ok(value)),
    );
  });
}

describe("independent clients: @grpc/grpc-js and buf curl --reflect", () => {
  let t: TestServer;
  let caFile: string;
  const clients: grpc.Client[] = [];
  beforeAll(async () => {
    t = await startTestServer({ name: "signing-keys", register: signingStub(newCalls()) });
    caFile = join(t.dir, "ca.crt");
    await writeFile(caFile, t.pki.ca.certPem);
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await t?.close();
  });
  const target = () => `localhost:${t.server.port}`;

  it("answers grpc-js's standard health client: SERVING", async () => {
    const def = protoLoader.loadSync(join(root, "node_modules/grpc-health-check/proto/health/v1/health.proto"), { enums: String });
    const pkg = grpc.loadPackageDefinition(def) as unknown as {
      grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
    };
    const health = new pkg.grpc.health.v1.Health(target(), grpc.credentials.createSsl(Buffer.from(t.pki.ca.certPem)));
    clients.push(health);
    const res = await unary<{ status: string }>(health, "Check", { service: "" });
    expect(res.status).toBe("SERVING");
    const svc = await unary<{ status: string }>(health, "Check", { service: "signing.v1.SigningKeyService" });
    expect(svc.status).toBe("SERVING");
  });

  it("serves a grpc-js client over TLS with a bearer token, and over mTLS as licensing", async () => {
    const tlsOnly = new SigningClient(target(), grpc.credentials.createSsl(Buffer.from(t.pki.ca.certPem)));
    clients.push(tlsOnly);
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${await t.adminToken(["super_admin"])}`);
    const jwks = await unary<{ kids: string[] }>(tlsOnly, "getJwks", {}, md);
    expect(jwks.kids).toEqual(["k1"]);
    await expect(unary(tlsOnly, "sign", { typ: "x" })).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED });

    const cert = await t.pki.service("licensing");
    const mtls = new SigningClient(
      target(),
      grpc.credentials.createSsl(Buffer.from(t.pki.ca.certPem), Buffer.from(cert.keyPem), Buffer.from(cert.certPem)),
    );
    clients.push(mtls);
    const signed = await unary<{ token: string }>(mtls, "sign", { typ: "license+jwt" });
    expect(signed.token).toBe("signed:license+jwt");
  });

  it("lets buf curl list services and methods by reflection and call GetJwks", async () => {
    const base = ["curl", "--cacert", caFile, "--reflect", "--protocol", "grpc"];
    const services = await run(buf, [...base, "--list-services", t.url]);
    expect(services.stdout.split("\n")).toEqual(
      expect.arrayContaining(["signing.v1.SigningKeyService", "grpc.health.v1.Health"]),
    );
    const methods = await run(buf, [...base, "--list-methods", t.url]);
    expect(methods.stdout).toContain("signing.v1.SigningKeyService/IssueApplianceCertificate");
    const call = await run(buf, [...base, `${t.url}/signing.v1.SigningKeyService/GetJwks`]);
    expect(JSON.parse(call.stdout)).toEqual({ jwksJson: '{"keys":[]}', kids: ["k1"] });
  });

  it("serves reflection v1alpha too (older grpcurl)", async () => {
    const base = ["curl", "--cacert", caFile, "--reflect", "--reflect-protocol", "grpc-v1alpha", "--protocol", "grpc"];
    const call = await run(buf, [...base, `${t.url}/signing.v1.SigningKeyService/GetJwks`]);
    expect(JSON.parse(call.stdout).kids).toEqual(["k1"]);
  });

  it("serves the Connect protocol over HTTP/1.1, with mTLS identities too", async () => {
    const cert = await t.pki.service("licensing");
    const client = createConnectClient(
      SigningKeyService,
      createConnectTransport({
        baseUrl: t.url,
        httpVersion: "1.1",
        nodeOptions: { ca: t.pki.ca.certPem, cert: cert.certPem, key: cert.keyPem },
      }),
    );
    expect((await client.getJwks({})).kids).toEqual(["k1"]);
    expect((await client.sign({ typ: "lease+jwt" })).token).toBe("signed:lease+jwt");
  });
});
