/**
 * Licensing's view of signing-keys (docs/design.md §2: licensing calls `Sign`): signing licence and
 * lease tokens, issuing appliance certificates, the JWKS and the appliance trust bundle for our
 * listener. Licensing never holds a signing key or the appliance CA key.
 *
 * The JWKS is believed for `jwksMaxAgeMs` at most (JWKS_MAX_AGE, default 5 s): a key revoked in
 * signing-keys (dropped from its JWKS) stops verifying here within that time, since every use
 * after it refetches — and when signing-keys cannot be reached past it, verification fails
 * (Unavailable) rather than trusting a set that may hold a revoked key. A token naming an unknown
 * kid refetches at once (rate-limited), so a freshly rotated key verifies without waiting.
 */
import { create, type JsonObject } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Client } from "@connectrpc/connect";
import { SignRequestSchema, SigningKeyService } from "@lcp/proto/signing/v1/signing_key_service_pb";
import { normalizeSerialNumber } from "@lcp/pki";
import { fromPeerError, type Logger } from "@lcp/rpc";
import { createJwksVerifierSet, type JwksVerifierSet, type TokenType } from "@lcp/tokens";
import type { JSONWebKeySet } from "jose";
import type { TokenSigner } from "./core/signer.js";

/** A certificate signing-keys issued for an appliance. */
export interface IssuedApplianceCertificate {
  certificatePem: string;
  chainPem: string[];
  /** Normalised hex serial (as the rpc layer reports a peer's). */
  serialNumber: string;
  notAfter: Date;
}

/** The JWKS as licensing holds it: the document, its JSON, and a verifier set built once. */
export interface JwksSnapshot {
  jwks: JSONWebKeySet;
  json: string;
  verifier: JwksVerifierSet;
  kids: ReadonlySet<string>;
}

/** Everything licensing asks of signing-keys. */
export interface SigningKeysGateway extends TokenSigner {
  issueApplianceCertificate(deploymentId: string, csrPem: string): Promise<IssuedApplianceCertificate>;
  /** The JWKS, refetched when the cached one is older than `jwksMaxAgeMs` (see the module comment). */
  jwks(): Promise<JwksSnapshot>;
  /** The last JWKS fetched, however old, without I/O (undefined before the first fetch). */
  lastJwks(): JwksSnapshot | undefined;
  /**
   * Refetches the JWKS, e.g. when a token names an unknown kid. Rate-limited: within
   * `minRefreshMs` of the last fetch it returns the cached one, so forged tokens cannot turn
   * licensing into an amplifier against signing-keys.
   */
  refreshJwks(): Promise<JwksSnapshot>;
  /** The appliance CA certificates (PEM), current first. */
  applianceTrustBundle(): Promise<string[]>;
}

/** Options of {@link createSigningKeysGateway}. */
export interface SigningKeysGatewayOptions {
  client: Client<typeof SigningKeyService>;
  log: Logger;
  /** Minimum time between two JWKS fetches triggered by unknown kids. Default 1 s. */
  minRefreshMs?: number;
  /** How long a fetched JWKS is believed (JWKS_MAX_AGE). Default {@link DEFAULT_JWKS_MAX_AGE_MS}. */
  jwksMaxAgeMs?: number;
}

/** The default of JWKS_MAX_AGE: how long after its revocation a signing key may still verify here. */
export const DEFAULT_JWKS_MAX_AGE_MS = 5_000;

const SIGNING_UNAVAILABLE = "the signing service is unavailable; retry shortly";

/**
 * Errors from signing-keys, as our caller should see them (libs/rpc peer-errors.ts): a permanent
 * refusal (a bad CSR, claims over 16 KiB, no ACTIVE key) keeps its code and reason, because
 * retrying cannot help; anything else is our dependency failing, which the caller can only retry
 * (Unavailable) — never a PermissionDenied that would blame them.
 */
function fromSigningError(err: unknown, log: Logger, operation: string): Error {
  return fromPeerError(err, { log, peer: "signing-keys", operation, unavailableMessage: SIGNING_UNAVAILABLE });
}

/** Builds the gateway over a typed SigningKeyService client (mTLS with licensing's service certificate). */
export function createSigningKeysGateway(options: SigningKeysGatewayOptions): SigningKeysGateway {
  const { client, log } = options;
  const minRefreshMs = options.minRefreshMs ?? 1_000;
  const maxAgeMs = options.jwksMaxAgeMs ?? DEFAULT_JWKS_MAX_AGE_MS;
  let cached: JwksSnapshot | undefined;
  let fetchedAt = 0;
  let inFlight: Promise<JwksSnapshot> | undefined;

  async function fetchJwks(): Promise<JwksSnapshot> {
    // One fetch at a time: a burst of unknown-kid tokens shares it.
    inFlight ??= (async () => {
      try {
        const res = await client.getJwks({});
        const jwks = JSON.parse(res.jwksJson) as JSONWebKeySet;
        const kids = new Set(jwks.keys.map((k) => k.kid).filter((k): k is string => typeof k === "string"));
        cached = { jwks, json: res.jwksJson, verifier: createJwksVerifierSet(jwks), kids };
        fetchedAt = performance.now();
        return cached;
      } catch (err) {
        throw fromSigningError(err, log, "GetJwks");
      } finally {
        inFlight = undefined;
      }
    })();
    return inFlight;
  }

  return {
    async sign(typ: TokenType, claims: Record<string, unknown>) {
      try {
        const res = await client.sign(create(SignRequestSchema, { typ, claims: claims as JsonObject }));
        return { token: res.token, kid: res.kid };
      } catch (err) {
        throw fromSigningError(err, log, `Sign ${typ}`);
      }
    },
    async issueApplianceCertificate(deploymentId, csrPem) {
      try {
        const res = await client.issueApplianceCertificate({ deploymentId, csrPem });
        return {
          certificatePem: res.certificatePem,
          chainPem: [...res.chainPem],
          serialNumber: normalizeSerialNumber(res.serialNumber),
          notAfter: res.notAfter ? timestampDate(res.notAfter) : new Date(0),
        };
      } catch (err) {
        throw fromSigningError(err, log, "IssueApplianceCertificate");
      }
    },
    async jwks() {
      if (cached && performance.now() - fetchedAt < maxAgeMs) return cached;
      return fetchJwks();
    },
    lastJwks: () => cached,
    async refreshJwks() {
      if (cached && performance.now() - fetchedAt < minRefreshMs) return cached;
      return fetchJwks();
    },
    async applianceTrustBundle() {
      const res = await client.getApplianceTrustBundle({});
      return [...res.caCertificatesPem];
    },
  };
}
