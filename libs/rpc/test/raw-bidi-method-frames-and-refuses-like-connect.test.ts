/**
 * The generic raw bidi method (raw-bidi.ts, grpc-frame.ts) with a toy session that echoes each
 * message: frames split anywhere or packed several to a chunk are read whole and in order; a
 * compressed or oversized message and an incomplete envelope are refused with the codes
 * connect-node gives; an empty request is answered OK.
 */
import * as http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRawBidiMethod, RawBidiCall } from "@lcp/rpc";
import { frame, GrpcFrameReader } from "@lcp/rpc/grpc-frame";
import { startTestServer, type TestServer } from "@lcp/testing/server";
import { newCalls, signingStub } from "./fixtures.js";

const PATH = "/toy.v1.Echo/Chat";
const MAX = 64;

/** Echoes each message; "slow" is answered a tick later, holding the next ones meanwhile. */
class EchoCall extends RawBidiCall {
  protected handleMessage(bytes: Uint8Array): Promise<void> | undefined {
    const copy = Buffer.from(bytes);
    if (copy.toString() !== "slow") {
      this.write(frame(copy));
      return undefined;
    }
    return new Promise((resolve) => setTimeout(resolve, 5)).then(() => this.write(frame(copy)));
  }
  protected dispose(): void {}
}

/** Collects every message of a byte stream. */
class Collector extends GrpcFrameReader {
  readonly messages: string[] = [];
  protected acceptFrame(): boolean {
    return true;
  }
  protected onFrame(message: Uint8Array): void {
    this.messages.push(Buffer.from(message).toString());
  }
}

interface Answer {
  messages: string[];
  grpcStatus: number | undefined;
  grpcMessage: string;
}

describe("a raw bidi method", () => {
  let t: TestServer;
  let cert: { certPem: string; keyPem: string };
  beforeAll(async () => {
    t = await startTestServer({
      name: "signing-keys",
      register: signingStub(newCalls()),
      policy: { "toy.v1.Echo/Chat": { services: ["licensing"] } },
      maxReceiveMessageBytes: MAX,
      rawStreams: { [PATH]: createRawBidiMethod((call) => new EchoCall(call)) },
    });
    cert = await t.pki.service("licensing");
  });
  afterAll(() => t.close());

  /** Opens the toy method, sends `chunks` one write (and one tick) apart, then half-closes. */
  async function exchange(chunks: Buffer[]): Promise<Answer> {
    const session = http2.connect(t.url, { ca: t.pki.ca.certPem, cert: cert.certPem, key: cert.keyPem });
    session.on("error", () => undefined);
    const stream = session.request({ ":method": "POST", ":path": PATH, "content-type": "application/grpc", te: "trailers" }, { endStream: chunks.length === 0 });
    stream.on("error", () => undefined);
    const reader = new Collector();
    let status: http2.IncomingHttpHeaders = {};
    stream.on("response", (h) => (status = h));
    stream.on("trailers", (h) => (status = h));
    stream.on("data", (c: Buffer) => reader.read(c));
    const closed = new Promise<void>((resolve) => stream.on("close", resolve));
    for (const [i, chunk] of chunks.entries()) {
      if (stream.closed) break;
      await new Promise<void>((resolve) => stream.write(chunk, () => resolve()));
      if (i === chunks.length - 1) stream.end();
      else await new Promise((r) => setTimeout(r, 2));
    }
    await closed;
    session.close();
    const code = status["grpc-status"];
    return { messages: reader.messages, grpcStatus: code === undefined ? undefined : Number(code), grpcMessage: decodeURIComponent(String(status["grpc-message"] ?? "")) };
  }

  const msg = (s: string) => frame(Buffer.from(s));

  it("reads frames split across chunks, even inside the header", async () => {
    const bytes = Buffer.concat([msg("hello"), msg("world")]);
    const answer = await exchange([bytes.subarray(0, 2), bytes.subarray(2, 7), bytes.subarray(7, 12), bytes.subarray(12)]);
    expect(answer).toEqual({ messages: ["hello", "world"], grpcStatus: 0, grpcMessage: "" });
  });

  it("reads several messages in one chunk, in order, holding the rest while one needs I/O", async () => {
    const answer = await exchange([Buffer.concat([msg("a"), msg("slow"), msg("b"), msg(""), msg("c")])]);
    expect(answer).toEqual({ messages: ["a", "slow", "b", "", "c"], grpcStatus: 0, grpcMessage: "" });
  });

  it("refuses a compressed message as Internal", async () => {
    const compressed = msg("zip");
    compressed[0] = 1;
    const answer = await exchange([Buffer.concat([msg("first"), compressed])]);
    expect(answer).toMatchObject({ messages: ["first"], grpcStatus: 13 });
    expect(answer.grpcMessage).toContain("received compressed envelope");
  });

  it("refuses an oversized message on its header alone, as ResourceExhausted", async () => {
    const header = Buffer.from([0, 0, 0, 0, MAX + 1]);
    const answer = await exchange([header]);
    expect(answer).toMatchObject({ messages: [], grpcStatus: 8 });
    expect(answer.grpcMessage).toContain(`message size ${MAX + 1} is larger than configured readMaxBytes ${MAX}`);
  });

  it("refuses an envelope left incomplete at the end of the request, as InvalidArgument", async () => {
    const answer = await exchange([msg("whole"), msg("cut").subarray(0, 6)]);
    expect(answer).toEqual({ messages: ["whole"], grpcStatus: 3, grpcMessage: "protocol error: incomplete envelope" });
  });

  it("answers an empty request (headers with END_STREAM) with OK", async () => {
    expect(await exchange([])).toEqual({ messages: [], grpcStatus: 0, grpcMessage: "" });
  });
});

describe("the gRPC frame reader", () => {
  it("yields the same messages wherever the byte stream is cut", () => {
    const bytes = Buffer.concat(["a", "", "bcdefgh", "ij"].map((s) => frame(Buffer.from(s))));
    for (let i = 0; i <= bytes.length; i++) {
      for (let j = i; j <= bytes.length; j++) {
        const reader = new Collector();
        for (const part of [bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)]) reader.read(part);
        expect(reader.messages, `cut at ${i} and ${j}`).toEqual(["a", "", "bcdefgh", "ij"]);
      }
    }
  });
});
