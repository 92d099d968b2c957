/**
 * The operator's side of signing-keys for licensing's suites: a SigningKeyService client with a
 * super_admin bearer token from the dev issuer both services of the harness trust (RotateKeys,
 * RevokeKey), and the kid a token's header names.
 */
import type { Client } from "@connectrpc/connect";
import { SigningKeyService } from "@lcp/proto/signing/v1/signing_key_service_pb";
import { createAdminClient } from "@lcp/rpc";
import { ensureDevAdminIssuer } from "@lcp/tokens";
import { decodeProtectedHeader } from "jose";
import type { LicensingHarness } from "./support.js";

/** A SigningKeyService client as a super_admin of the harness's dev issuer. */
export async function signingAdmin(h: LicensingHarness): Promise<Client<typeof SigningKeyService>> {
  const dev = await ensureDevAdminIssuer(h.db.dataDir);
  return createAdminClient(SigningKeyService, {
    baseUrl: h.signingKeys.url,
    caPem: h.pki.ca.certPem,
    token: () => dev.mint({ subject: "test-key-operator", roles: ["super_admin"], ttlSeconds: 600 }),
    retries: 0,
  });
}

/** Rotates the keys and revokes the one that was ACTIVE before: the response to a leaked key. Returns both kids. */
export async function rotateAndRevoke(h: LicensingHarness): Promise<{ revoked: string; active: string }> {
  const admin = await signingAdmin(h);
  const rotation = await admin.rotateKeys({ reason: "key leaked" });
  const revoked = rotation.retired!.kid;
  await admin.revokeKey({ kid: revoked, reason: "key leaked" });
  return { revoked, active: rotation.activated!.kid };
}

/** The kid in a token's header. */
export function kidOf(token: string): string {
  return decodeProtectedHeader(token).kid ?? "";
}
