/**
 * Licensing's view of signing-keys (docs/design.md §2: licensing calls `Sign`): signing licence and
 * lease tokens, issuing appliance certificates, the JWKS (cached, refreshed when a token names a
 * key we have not seen) and the appliance trust bundle for our listener. Licensing never holds a
 * signing key or the appliance CA key.
 */
import { create, type JsonObject } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { ErrorInfoSchema } from "@lcp/proto/google/rpc/error_details_pb";
import { SignRequestSchema, SigningKeyService } from "@lcp/proto/signing/v1/signing_key_service_pb";
import { normalizeSerialNumber } from "@lcp/pki";
import { DomainError, type Logger } from "@lcp/rpc";
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
  /** The cached JWKS (fetched on first use). */
  jwks(): Promise<JwksSnapshot>;
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
}

const SIGNING_UNAVAILABLE = "the signing service is unavailable; retry shortly";

/**
 * Errors from signing-keys, as our caller should see them: a refused input (a bad CSR) keeps
 * its code and reason, because the caller sent it; anything else is our dependency failing,
 * which the caller can only retry (Unavailable) — never a PermissionDenied that would blame them.
 */
function fromSigningError(err: unknown, log: Logger, operation: string): Error {
  const error = ConnectError.from(err);
  if (error.code === Code.InvalidArgument) {
    const reason = error.findDetails(ErrorInfoSchema)[0]?.reason ?? "INVALID_ARGUMENT";
    return new DomainError(reason, error.rawMessage);
  }
  log.error({ err: error, operation, code: Code[error.code] }, "signing-keys call failed");
  return new ConnectError(SIGNING_UNAVAILABLE, Code.Unavailable);
}

/** Builds the gateway over a typed SigningKeyService client (mTLS with licensing's service certificate). */
export function createSigningKeysGateway(options: SigningKeysGatewayOptions): SigningKeysGateway {
  const { client, log } = options;
  const minRefreshMs = options.minRefreshMs ?? 1_000;
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
        fetchedAt = Date.now();
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
        // A Sign refusal is our bug (we built the claims), never the caller's: Unavailable + log.
        const error = ConnectError.from(err);
        log.error({ err: error, typ, code: Code[error.code] }, "signing-keys Sign failed");
        throw new ConnectError(SIGNING_UNAVAILABLE, Code.Unavailable);
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
      return cached ?? fetchJwks();
    },
    async refreshJwks() {
      if (cached && Date.now() - fetchedAt < minRefreshMs) return cached;
      return fetchJwks();
    },
    async applianceTrustBundle() {
      const res = await client.getApplianceTrustBundle({});
      return [...res.caCertificatesPem];
    },
  };
}
