/**
 * Request validation for ApplianceService: field shapes only, before any token is verified or row
 * read. The CSR's content (key, signature, the SPIFFE name it asks for) is checked by signing-keys
 * when it issues the certificate; here only its envelope.
 */
import type { ActivateRequest } from "@lcp/proto/licensing/v1/appliance_service_pb";
import { DomainError } from "@lcp/rpc";
import { invalid, requireFingerprintHash, requireId, requirePlainText } from "../validation.js";

/** The largest licence token accepted (ours are well under 2 KiB). */
export const MAX_TOKEN_BYTES = 16 * 1024;
/** The largest CSR accepted (an RSA-4096 CSR is about 1.7 KiB of PEM). */
export const MAX_CSR_BYTES = 16 * 1024;
/** The longest agent version kept. */
export const MAX_AGENT_VERSION_LENGTH = 128;

/** A validated Activate request; the fingerprint is already hashed (the raw value is never kept). */
export interface ActivateInput {
  licenseId: string;
  licenseToken: string;
  fingerprintHash: string;
  csrPem: string;
  agentVersion: string | null;
}

/** Checks a CSR's envelope (present, bounded, PEM PKCS#10); its content is signing-keys' to check. */
export function checkCsrEnvelope(csrPem: string, field: string): void {
  if (csrPem.trim() === "") throw invalid(field, `${field} is required`);
  if (csrPem.length > MAX_CSR_BYTES) throw new DomainError("CSR_MALFORMED", `${field} must be at most ${MAX_CSR_BYTES} bytes`, { field });
  if (!/-----BEGIN (NEW )?CERTIFICATE REQUEST-----/.test(csrPem)) {
    throw new DomainError("CSR_MALFORMED", `${field} is not a PEM PKCS#10 certificate signing request`, { field });
  }
}

/** Validates Activate's fields. */
export function validateActivate(req: ActivateRequest): ActivateInput {
  const licenseId = requireId(req.licenseId, "license_id");
  if (req.licenseToken === "") throw invalid("license_token", "license_token is required");
  if (req.licenseToken.length > MAX_TOKEN_BYTES) {
    throw new DomainError("TOKEN_MALFORMED", `license_token must be at most ${MAX_TOKEN_BYTES} bytes`, { field: "license_token" });
  }
  const fingerprintHash = requireFingerprintHash(req.fingerprint, "fingerprint");
  checkCsrEnvelope(req.csrPem, "csr_pem");
  const agentVersion = requirePlainText(req.agentVersion, "agent_version").trim();
  if (agentVersion.length > MAX_AGENT_VERSION_LENGTH) {
    throw invalid("agent_version", `agent_version must be at most ${MAX_AGENT_VERSION_LENGTH} characters`);
  }
  return { licenseId, licenseToken: req.licenseToken, fingerprintHash, csrPem: req.csrPem, agentVersion: agentVersion || null };
}
