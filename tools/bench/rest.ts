/**
 * `npm run bench -- rest`: the product page's HTTP paths through the transcoder (libs/rpc
 * http-gateway) beside the same calls over the Connect protocol with JSON, in the same run, on
 * the same licensing process (a child, with signing-keys beside it, SQLite): `GET /licenses`
 * (an admin's bearer token) and `POST /licenses/{license_id}/heartbeat` (the box's client
 * certificate). Both sides use HTTP/1.1 keep-alive connections, so the figure is the cost of
 * transcoding — path match, query and body to a request message, proto3 JSON back — not of the
 * transport. Goal: ≥ 0.8× the Connect JSON throughput.
 */
import { Agent, request } from "node:https";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { applianceSpiffeId, generateKeyAndCsr } from "@lcp/pki";
import { ApplianceService } from "@lcp/proto/licensing/v1/appliance_service_pb";
import { LicensingService } from "@lcp/proto/licensing/v1/licensing_service_pb";
import { DeploymentKind } from "@lcp/proto/licensing/v1/types_pb";
import { childCpu, load, startLicensingPair } from "./licensing.js";
import type { BenchResult } from "./result.js";

const CONCURRENCY = 8;
const DURATION_MS = 3_000;
const WARMUP_MS = 500;
const LICENSES = 50;

/** One HTTP/1.1 request on `agent`; resolves with the status once the body has been read. */
function call(agent: Agent, url: string, method: string, headers: Record<string, string>, body?: string): Promise<number> {
  return new Promise((done, fail) => {
    const req = request(url, { agent, method, headers }, (res) => {
      res.resume();
      res.once("end", () => done(res.statusCode ?? 0));
    });
    req.once("error", fail);
    req.end(body);
  });
}

export async function benchRest(): Promise<BenchResult[]> {
  const { pki, licensing, token, admin, stop } = await startLicensingPair("rest");
  try {
    let box: { licenseId: string; certPem: string; keyPem: string } | undefined;
    for (let i = 0; i < LICENSES; i++) {
      const made = await admin.provisionDeployment({ name: `rest-${i}`, customer: "bench", kind: DeploymentKind.ON_PREM });
      if (i > 0) continue;
      const id = made.deployment!.id;
      const { csrPem, keyPem } = await generateKeyAndCsr({ commonName: id, spiffeId: applianceSpiffeId(pki.trustDomain, id) });
      const boxes = createClient(ApplianceService, createConnectTransport({ baseUrl: licensing.url, httpVersion: "1.1", nodeOptions: { ca: pki.ca.certPem } }));
      const activated = await boxes.activate({ licenseId: made.license!.id, licenseToken: made.license!.token, fingerprint: "fp-rest", csrPem });
      box = { licenseId: made.license!.id, certPem: activated.certificatePem, keyPem };
    }

    const adminAgent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY, ca: pki.ca.certPem });
    const boxAgent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY, ca: pki.ca.certPem, cert: box!.certPem, key: box!.keyPem });
    const bearer: Interceptor = (next) => (req) => {
      req.header.set("authorization", `Bearer ${token}`);
      return next(req);
    };
    const connectAdmin = createClient(
      LicensingService,
      createConnectTransport({ baseUrl: licensing.url, httpVersion: "1.1", useBinaryFormat: false, nodeOptions: { agent: adminAgent }, interceptors: [bearer] }),
    );
    const connectBox = createClient(
      ApplianceService,
      createConnectTransport({ baseUrl: licensing.url, httpVersion: "1.1", useBinaryFormat: false, nodeOptions: { agent: boxAgent } }),
    );
    const ok = (status: number) => {
      if (status !== 200) throw new Error(`HTTP ${status}`);
    };
    const cases = [
      {
        name: `GET /licenses (page of ${LICENSES}), ${CONCURRENCY} callers`,
        rest: async () => ok(await call(adminAgent, `${licensing.url}/licenses?page_size=${LICENSES}`, "GET", { authorization: `Bearer ${token}` })),
        connect: () => connectAdmin.listLicenses({ pageSize: LICENSES }),
      },
      {
        name: `POST /licenses/{license_id}/heartbeat (client certificate), ${CONCURRENCY} callers`,
        rest: async () =>
          ok(await call(boxAgent, `${licensing.url}/licenses/${box!.licenseId}/heartbeat`, "POST", { "content-type": "application/json" }, JSON.stringify({ fingerprint: "fp-rest", lastLeaseSeq: "1" }))),
        connect: () => connectBox.sendHeartbeat({ licenseId: box!.licenseId, fingerprint: "fp-rest", lastLeaseSeq: 1n }),
      },
    ];
    // TLS connections the server accepted: both sides must reuse theirs, or the figure measures handshakes.
    const connections = async () => {
      const text = await new Promise<string>((done, fail) => {
        const req = request(`${licensing.url}/metrics`, { ca: pki.ca.certPem, agent: false }, (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (d: string) => (body += d));
          res.on("end", () => done(body));
        });
        req.once("error", fail);
        req.end();
      });
      return [...text.matchAll(/^licensing_rpc_server_tls_connections_total\{[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
    };
    const results: BenchResult[] = [];
    for (const c of cases) {
      // Alternate the two sides twice and keep each side's better run: a 2-core machine's noise
      // then penalises neither side alone.
      const rates = { rest: 0, connect: 0 };
      const opened = { rest: 0, connect: 0 };
      const calls = { rest: 0, connect: 0 };
      const cpu = { rest: 0, connect: 0 };
      for (let round = 0; round < 2; round++) {
        for (const side of ["rest", "connect"] as const) {
          await load(c[side], CONCURRENCY, (_, ms) => ms >= WARMUP_MS);
          const before = await connections();
          const cpuBefore = await childCpu(licensing.child);
          const run = await load(c[side], CONCURRENCY, (_, ms) => ms >= DURATION_MS);
          cpu[side] += (await childCpu(licensing.child)) - cpuBefore;
          opened[side] += (await connections()) - before - 1;
          calls[side] += run.count;
          rates[side] = Math.max(rates[side], run.rate);
        }
      }
      results.push({
        name: c.name,
        value: rates.rest,
        unit: "ops/s",
        baseline: "the same call over Connect JSON (HTTP/1.1)",
        baselineValue: rates.connect,
        ratio: rates.rest / rates.connect,
        goal: "≥ 0.8",
        detail: `new TLS connections per 100 calls: HTTP paths ${((100 * opened.rest) / calls.rest).toFixed(1)}, Connect ${((100 * opened.connect) / calls.connect).toFixed(1)}; the load generator shares the 2 cores`,
      });
      // The server's own cost per call, which the client's cost on a shared machine does not blur.
      const perCall = { rest: cpu.rest / calls.rest, connect: cpu.connect / calls.connect };
      results.push({
        name: `licensing CPU per call, ${c.name.split(",")[0]} (ratio = baseline/value)`,
        value: perCall.rest,
        unit: "µs",
        baseline: "the same call over Connect JSON (HTTP/1.1)",
        baselineValue: perCall.connect,
        ratio: perCall.connect / perCall.rest,
        goal: "≥ 0.8",
      });
    }
    adminAgent.destroy();
    boxAgent.destroy();
    return results;
  } finally {
    await stop();
  }
}
