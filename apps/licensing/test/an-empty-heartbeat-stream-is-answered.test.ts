/**
 * A raw gRPC Heartbeat stream whose request is only headers with END_STREAM (no message at all)
 * is answered at once with a gRPC status, on the raw transport as on the Connect one. The stream's
 * `end` arrives while the call is still being admitted (authn, revoked serials, the policy are
 * asynchronous); a handler that only listens for it afterwards never learns the box is done, and
 * the stream (and its slot among the connection's streams) is held until the box gives up.
 */
import * as http2 from "node:http2";
import { testDatabases } from "@lcp/testing/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HEARTBEAT_PATH } from "../src/heartbeat/index.js";
import { activateBox, newBox, provisionOnPrem, startHarness, type Box, type LicensingHarness } from "./support.js";

const sqlite = testDatabases().filter((d) => d.name === "sqlite");

/** Sends headers + END_STREAM on the Heartbeat path; resolves with the grpc-status, or "no answer" after `ms`. */
function emptyStream(h: LicensingHarness, box: Box, how: "with the headers" | "after the headers", ms: number): Promise<number | "no answer"> {
  const session = http2.connect(h.licensing.url, { ca: h.pki.ca.certPem, cert: box.activation!.certificatePem, key: box.keyPem });
  session.on("error", () => undefined);
  const stream = session.request({ ":method": "POST", ":path": HEARTBEAT_PATH, "content-type": "application/grpc", te: "trailers" }, { endStream: how === "with the headers" });
  stream.on("error", () => undefined);
  // An empty DATA frame carrying END_STREAM, once the headers are out.
  if (how === "after the headers") stream.end();
  return new Promise((resolve) => {
    let status: string | string[] | undefined;
    const timer = setTimeout(() => {
      session.destroy();
      resolve("no answer");
    }, ms);
    stream.on("response", (headers) => (status ??= headers["grpc-status"]));
    stream.on("trailers", (trailers) => (status ??= trailers["grpc-status"]));
    stream.resume();
    stream.on("close", () => {
      clearTimeout(timer);
      session.close();
      resolve(status === undefined ? "no answer" : Number(status));
    });
  });
}

describe.each(sqlite)("an empty Heartbeat stream ($name)", (tdb) => {
  let h: LicensingHarness;
  let box: Box;
  beforeAll(async () => {
    h = await startHarness(tdb);
    const { deployment, license } = await provisionOnPrem(h);
    box = await newBox(h, deployment.id);
    await activateBox(h, license, box);
  });
  afterAll(async () => {
    await h?.close();
  });

  // OK, as the Connect path answers a box that half-closes before its hello: nothing to answer.
  it.each(["with the headers", "after the headers"] as const)("END_STREAM %s: answered with a gRPC status, promptly", async (how) => {
    expect(await emptyStream(h, box, how, 3_000)).toBe(0);
  });
});
