/**
 * `npm run bench -- offline`: what an operator waits for and carries at an air-gapped site. The
 * time RespondToActivation and RespondToRenewal take (one call at a time, as an operator makes
 * them), beside online Activate on the same licensing process (a child, signing-keys beside it,
 * SQLite): the same licence checks, change and lease, without the files. And the size of each
 * file, beside the 64 KiB the issue allows and the ~2.9 KB one QR code holds.
 */
import { createHash } from "node:crypto";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { applianceSpiffeId, generateKeyAndCsr } from "@lcp/pki";
import { ApplianceService } from "@lcp/proto/licensing/v1/appliance_service_pb";
import { Connectivity, DeploymentKind } from "@lcp/proto/licensing/v1/types_pb";
import { newOfflineNonce, signActivationRequest, signRenewalRequest } from "@lcp/tokens";
import { startLicensingPair } from "./licensing.js";
import type { BenchResult } from "./result.js";

const CALLS = 30;
const QR_CODE_BYTES = 2_953; // version 40, low error correction, byte mode
const ISSUE_LIMIT_BYTES = 64 * 1024;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

export async function benchOffline(): Promise<BenchResult[]> {
  const { pki, licensing, admin, stop } = await startLicensingPair("offline");
  try {
    const boxes = createClient(ApplianceService, createConnectTransport({ baseUrl: licensing.url, httpVersion: "2", nodeOptions: { ca: pki.ca.certPem } }));

    // Every call gets its own deployment and box, made beforehand: only the answer is timed.
    const site = async (connectivity: Connectivity, i: number) => {
      const made = await admin.provisionDeployment({ name: `offline-${connectivity}-${i}`, customer: "bench", kind: DeploymentKind.ON_PREM, connectivity });
      const id = made.deployment!.id;
      const key = await generateKeyAndCsr({ commonName: id, spiffeId: applianceSpiffeId(pki.trustDomain, id) });
      return { license: made.license!, fingerprint: `fp-${connectivity}-${i}`, ...key };
    };
    const online = await Promise.all(Array.from({ length: CALLS }, (_, i) => site(Connectivity.ONLINE, i)));
    const gapped = await Promise.all(Array.from({ length: CALLS }, (_, i) => site(Connectivity.AIR_GAPPED, i)));
    const fph = (fingerprint: string) => createHash("sha256").update(fingerprint).digest("hex");
    const requests = await Promise.all(
      gapped.map((b) =>
        signActivationRequest({ privateKeyPem: b.keyPem, lic: b.license.id, tok: b.license.token, fph: fph(b.fingerprint), csr: b.csrPem, nce: newOfflineNonce(), boxTime: new Date() }),
      ),
    );

    const activate: number[] = [];
    const respondActivation: number[] = [];
    const certificates: string[] = [];
    let responseBytes = 0;
    for (let i = 0; i < CALLS; i++) {
      const b = online[i]!;
      activate.push(await timed(() => boxes.activate({ licenseId: b.license.id, licenseToken: b.license.token, fingerprint: b.fingerprint, csrPem: b.csrPem })));
      let certificate = "";
      respondActivation.push(
        await timed(async () => {
          const res = await admin.respondToActivation({ requestFile: requests[i]! });
          responseBytes = Math.max(responseBytes, Buffer.byteLength(res.responseFile));
          certificate = JSON.parse(Buffer.from(res.responseFile.split(".")[1]!, "base64url").toString()).crt as string;
        }),
      );
      certificates.push(certificate);
    }
    const renewals = await Promise.all(
      gapped.map((b, i) =>
        signRenewalRequest({ privateKeyPem: b.keyPem, lic: b.license.id, dep: b.license.deploymentId, fph: fph(b.fingerprint), seq: 1, crt: certificates[i]!, nce: newOfflineNonce(), boxTime: new Date(), use: { uptime_s: 5_184_000, studies: 12_345 } }),
      ),
    );
    const respondRenewal: number[] = [];
    let renewalResponseBytes = 0;
    for (let i = 0; i < CALLS; i++) {
      respondRenewal.push(
        await timed(async () => {
          const res = await admin.respondToRenewal({ requestFile: renewals[i]! });
          renewalResponseBytes = Math.max(renewalResponseBytes, Buffer.byteLength(res.responseFile));
        }),
      );
    }

    const latency = (name: string, values: number[]): BenchResult => ({
      name: `${name}, median of ${CALLS} one at a time (ratio = baseline/value)`,
      value: median(values),
      unit: "ms",
      baseline: "online Activate on the same process",
      baselineValue: median(activate),
      ratio: median(activate) / median(values),
      detail: `slowest ${Math.max(...values).toFixed(1)} ms`,
    });
    const size = (name: string, bytes: number): BenchResult => ({
      name: `${name} size (ratio = baseline/value)`,
      value: bytes,
      unit: "bytes",
      baseline: "the issue's limit of 64 KiB",
      baselineValue: ISSUE_LIMIT_BYTES,
      ratio: ISSUE_LIMIT_BYTES / bytes,
      goal: "≥ 4",
      detail: bytes <= QR_CODE_BYTES ? "fits one QR code (2,953 bytes)" : `${Math.ceil(bytes / QR_CODE_BYTES)} QR codes' worth (2,953 bytes each)`,
    });
    return [
      latency("RespondToActivation", respondActivation),
      latency("RespondToRenewal", respondRenewal),
      size("activation request", Math.max(...requests.map((r) => Buffer.byteLength(r)))),
      size("activation response", responseBytes),
      size("renewal request", Math.max(...renewals.map((r) => Buffer.byteLength(r)))),
      size("renewal response", renewalResponseBytes),
    ];
  } finally {
    await stop();
  }
}
