/**
 * The raw gRPC transport of Heartbeat (heartbeat/raw-heartbeat.ts, libs/rpc raw-bidi.ts and raw-stream.ts) over real
 * mTLS, driven frame by frame with a bare `node:http2` client: its own failure modes end the
 * stream with the right gRPC status and write nothing — a truncated frame (InvalidArgument), bytes
 * that are no HeartbeatRequest (Internal), a compressed frame (Internal), a frame header announcing
 * more than the limit (ResourceExhausted before its body is read), no client certificate
 * (Unauthenticated, trailers-only, audited); a reset or a dropped connection frees the held
 * stream; a graceful close ends held streams with Unavailable. Requests that are not binary gRPC
 * on the same path (another content type, the Connect protocol) still reach the Connect stack.
 */
import * as http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { HeartbeatRequestSchema } from "@lcp/proto/licensing/v1/appliance_service_pb";
import { testDatabases } from "@lcp/testing/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HEARTBEAT_PATH } from "../src/heartbeat/index.js";
import { frame } from "@lcp/rpc/grpc-frame";
import { beat, helloOf, metric, rawStream, startReplica, until, writesNothing } from "./heartbeat-support.js";
import { activateBox, auditEvents, newBox, provisionOnPrem, startHarness, type Box, type LicensingHarness } from "./support.js";

const sqlite = testDatabases().filter((d) => d.name === "sqlite");

/** What a bare HTTP/2 request on the Heartbeat path got back. */
interface Answer {
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders | undefined;
  data: Buffer;
  /** grpc-status from the trailers, or from the headers of a trailers-only answer. */
  grpcStatus: number | undefined;
  grpcMessage: string;
}

interface Exchange {
  stream: http2.ClientHttp2Stream;
  session: http2.ClientHttp2Session;
  /** Resolves when the stream has closed (status received or reset). */
  answer: Promise<Answer>;
}

/** Opens the Heartbeat path with a bare http2 client: `box`'s certificate, or none. */
function open(h: LicensingHarness, box: Box | null, headers: http2.OutgoingHttpHeaders = {}, url = h.licensing.url): Exchange {
  const session = http2.connect(url, {
    ca: h.pki.ca.certPem,
    ...(box ? { cert: box.activation!.certificatePem, key: box.keyPem } : {}),
  });
  session.on("error", () => undefined);
  const stream = session.request({ ":method": "POST", ":path": HEARTBEAT_PATH, "content-type": "application/grpc", te: "trailers", ...headers });
  stream.on("error", () => undefined);
  const answer = new Promise<Answer>((resolve) => {
    let responseHeaders: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders | undefined;
    const chunks: Buffer[] = [];
    stream.on("response", (h) => (responseHeaders = h));
    stream.on("trailers", (t) => (trailers = t));
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("close", () => {
      session.close();
      const status = (trailers ?? responseHeaders)["grpc-status"];
      resolve({
        headers: responseHeaders,
        trailers,
        data: Buffer.concat(chunks),
        grpcStatus: status === undefined ? undefined : Number(status),
        grpcMessage: decodeURIComponent(String((trailers ?? responseHeaders)["grpc-message"] ?? "")),
      });
    });
  });
  return { stream, session, answer };
}

function requestFrame(init: Parameters<typeof create<typeof HeartbeatRequestSchema>>[1]): Buffer {
  return frame(toBinary(HeartbeatRequestSchema, create(HeartbeatRequestSchema, init)));
}

describe.each(sqlite)("the raw gRPC Heartbeat transport ($name)", (tdb) => {
  let h: LicensingHarness;
  beforeAll(async () => {
    h = await startHarness(tdb);
  });
  afterAll(async () => {
    await h?.close();
  });

  async function activated() {
    const { deployment, license } = await provisionOnPrem(h);
    const box = await newBox(h, deployment.id);
    await activateBox(h, license, box);
    return { license, box, deploymentId: deployment.id };
  }

  it("serves binary gRPC itself: headers at once, acks as frames, OK when the box half-closes", async () => {
    const { license, box } = await activated();
    const x = open(h, box);
    x.stream.write(requestFrame(helloOf(license, box)));
    x.stream.write(requestFrame(beat(42n)));
    x.stream.end();
    const answer = await x.answer;
    // The raw path announces it takes no compressed messages (connect-node offers gzip).
    expect(answer.headers["grpc-accept-encoding"]).toBe("identity");
    expect(answer.headers["x-request-id"]).toBeTruthy();
    expect(answer.grpcStatus).toBe(0);
    expect(answer.data.length).toBeGreaterThan(5);
  });

  it("a truncated frame: InvalidArgument, closed, nothing written", async () => {
    const { box } = await activated();
    await writesNothing(h, async () => {
      const x = open(h, box);
      const header = Buffer.from([0, 0, 0, 0, 100]);
      x.stream.end(Buffer.concat([header, Buffer.alloc(10, 1)]));
      const answer = await x.answer;
      expect(answer.grpcStatus).toBe(Code.InvalidArgument as number);
      expect(answer.grpcMessage).toMatch(/incomplete envelope/);
    });
  });

  it("bytes that are no HeartbeatRequest: Internal, closed, nothing written", async () => {
    const { box } = await activated();
    await writesNothing(h, async () => {
      const x = open(h, box);
      x.stream.write(frame(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff])));
      const answer = await x.answer;
      expect(answer.grpcStatus).toBe(Code.Internal as number);
      expect(answer.grpcMessage).toMatch(/^parse binary/);
      expect(answer.data.length).toBe(0);
    });
  });

  it("a compressed frame: Internal (identity only), closed, nothing written", async () => {
    const { license, box } = await activated();
    await writesNothing(h, async () => {
      const x = open(h, box);
      const hello = requestFrame(helloOf(license, box));
      hello[0] = 1;
      x.stream.write(hello);
      const answer = await x.answer;
      expect(answer.grpcStatus).toBe(Code.Internal as number);
    });
  });

  it("a frame header announcing 5 MB: ResourceExhausted before a byte of it is read, stream reset", async () => {
    const { box } = await activated();
    await writesNothing(h, async () => {
      const x = open(h, box);
      const header = Buffer.alloc(5);
      header.writeUInt32BE(5 * 1024 * 1024, 1);
      // Only the header: the refusal must not wait for (or read) the body.
      x.stream.write(header);
      const answer = await x.answer;
      expect(answer.grpcStatus).toBe(Code.ResourceExhausted as number);
      expect(x.stream.rstCode).toBe(http2.constants.NGHTTP2_CANCEL);
    });
  });

  it("no client certificate: Unauthenticated in a trailers-only answer, audited authz.denied", async () => {
    const before = (await auditEvents(h)).length;
    const x = open(h, null);
    x.stream.end(Buffer.from([0, 0, 0, 0, 0]));
    const answer = await x.answer;
    expect(answer.trailers).toBeUndefined();
    expect(answer.grpcStatus).toBe(Code.Unauthenticated as number);
    await until(async () => (await auditEvents(h)).length > before, "the refusal audited");
    expect((await auditEvents(h)).slice(before).map((e) => e.action)).toEqual(["authz.denied"]);
  });

  it("a reset or a dropped connection frees the held stream", async () => {
    const { license, box } = await activated();
    const streamsBefore = await metric(h, "licensing_heartbeat_streams");
    for (const drop of ["reset", "connection"] as const) {
      const x = open(h, box);
      x.stream.write(requestFrame(helloOf(license, box)));
      x.stream.write(requestFrame(beat(1n)));
      await until(async () => (await metric(h, "licensing_heartbeat_streams")) === streamsBefore + 1, "the stream held");
      if (drop === "reset") x.stream.close(http2.constants.NGHTTP2_CANCEL);
      else x.session.destroy();
      await until(async () => (await metric(h, "licensing_heartbeat_streams")) === streamsBefore, `the stream freed after a ${drop}`);
    }
  });

  it("a graceful close ends held streams with Unavailable, so boxes reconnect", async () => {
    const replica = await startReplica(h, { logLevel: "silent" });
    try {
      const { license, box } = await activated();
      const s = rawStream(h, box, replica.url);
      s.send(helloOf(license, box));
      s.send(beat(1n));
      await until(() => s.responses.some((r) => r.kind.case === "ack"), "the ack");
      const closing = replica.close();
      const err = await s.ended;
      expect(err && Code[err.code]).toBe("Unavailable");
      await closing;
    } finally {
      await replica.close();
    }
  });

  it("other content types on the path are the Connect stack's: text/plain is refused, the Connect protocol streams", async () => {
    const { license, box } = await activated();
    const x = open(h, box, { "content-type": "text/plain" });
    x.stream.end("hello");
    const answer = await x.answer;
    expect(answer.headers[":status"]).toBe(415);

    const s = rawStream(h, box, h.licensing.url, "connect");
    s.send(helloOf(license, box));
    s.send(beat(9n));
    await until(() => s.responses.some((r) => r.kind.case === "ack"), "the ack over the Connect protocol");
    s.end();
    expect(await s.ended).toBeUndefined();
  });
});
