/**
 * An air-gapped box for the browser tests, as its own process (the tests import nothing of the
 * workspace): it writes the activation request file a box writes for the licence the operator
 * copied off the console — a fresh P-256 key and CSR for the box's SPIFFE id, signed with that
 * key (libs/tokens offline-files.ts) — and keeps the key beside it for whoever imports the answer.
 *
 *   node --conditions=source --import tsx test/browser/air-gapped-box.ts <dir> <license-token> <fingerprint>
 *
 * Writes `<dir>/activation-request.jwt` and `<dir>/box-key.pem`, and prints the request's path.
 */
import { createHash } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { applianceSpiffeId, DEFAULT_TRUST_DOMAIN, generateKeyAndCsr } from "@lcp/pki";
import { newOfflineNonce, signActivationRequest } from "@lcp/tokens";

const [dir, token, fingerprint] = process.argv.slice(2);
if (!dir || !token || !fingerprint) throw new Error("usage: air-gapped-box.ts <dir> <license-token> <fingerprint>");

// Read without verifying: the box takes its ids from the token it was shipped with.
const claims = JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString("utf8")) as { sub: string; dep: string };
const { keyPem, csrPem } = await generateKeyAndCsr({ spiffeId: applianceSpiffeId(DEFAULT_TRUST_DOMAIN, claims.dep), commonName: claims.dep });
const file = await signActivationRequest({
  privateKeyPem: keyPem,
  lic: claims.sub,
  tok: token,
  fph: createHash("sha256").update(fingerprint, "utf8").digest("hex"),
  csr: csrPem,
  nce: newOfflineNonce(),
  boxTime: new Date(),
  agv: "browser-test-box/1",
});
mkdirSync(dir, { recursive: true, mode: 0o700 });
writeFileSync(join(dir, "box-key.pem"), keyPem, { mode: 0o600 });
const path = join(dir, "activation-request.jwt");
writeFileSync(path, `${file}\n`);
console.log(path);
