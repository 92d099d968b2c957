import { createPublicKey, X509Certificate as NodeX509Certificate, type KeyObject } from "node:crypto";
import { CLOCK_SKEW_MS, type CertificateAuthority } from "./ca.js";
import { leafBaseExtensions } from "./leaf-extensions.js";
import { randomSerialNumber } from "./serial.js";
import { parseSpiffeId } from "./spiffe.js";
import { x509 } from "./x509.js";

/** Why a CSR was refused, in the order the checks run. */
export type CsrRefusalCode =
  | "VALIDITY_OUT_OF_RANGE"
  | "CSR_MALFORMED"
  | "CSR_WEAK_KEY"
  | "CSR_BAD_SIGNATURE"
  | "CSR_NAME_NOT_ALLOWED";

/** Options for {@link issueCertificateFromCsr}. */
export interface IssueFromCsrOptions {
  /** PEM PKCS#10 CSR (`CERTIFICATE REQUEST` or `NEW CERTIFICATE REQUEST`), or its DER bytes. */
  csrPem: string | Uint8Array;
  /** The one identity the certificate may carry, e.g. `spiffe://lcp.local/appliance/<deployment-id>`. */
  spiffeId: string;
  /** How long the certificate is valid after `now`; {@link MIN_CERTIFICATE_VALIDITY_MS}..{@link MAX_CERTIFICATE_VALIDITY_MS}. */
  validityMs: number;
  /** Issue time; defaults to the current time. */
  now?: Date;
}

/** A certificate issued from a CSR. */
export interface IssuedCertificate {
  ok: true;
  certPem: string;
  /**
   * Uppercase hex, no colons: exactly node's `X509Certificate.serialNumber` (and
   * `getPeerCertificate().serialNumber`), so revocation lists compare with `===`.
   */
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
}

/** A refused CSR: a code to map to an RPC status and a message safe to show the caller. */
export interface CsrRefusal {
  ok: false;
  code: CsrRefusalCode;
  message: string;
}

/** Shortest certificate lifetime we issue. */
export const MIN_CERTIFICATE_VALIDITY_MS = 60_000;
/** Longest certificate lifetime we issue (397 days, the CA/Browser Forum ceiling). */
export const MAX_CERTIFICATE_VALIDITY_MS = 397 * 86_400_000;
// Real CSRs are well under 4 KiB; the cap keeps an attacker from making us parse megabytes.
const MAX_CSR_BYTES = 16 * 1024;
const SAN_OID = "2.5.29.17";

const refuse = (code: CsrRefusalCode, message: string): CsrRefusal => ({ ok: false, code, message });

/**
 * The public key a CSR asks a certificate for, or null when it is not a parsable PKCS#10 request.
 * It does not check the CSR's signature: {@link issueCertificateFromCsr} does, when it issues.
 */
export function csrPublicKey(csrPem: string): KeyObject | null {
  const der = csrDer(csrPem);
  if (!der) return null;
  try {
    const csr = new x509.Pkcs10CertificateRequest(der);
    return createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: "der", type: "spki" });
  } catch {
    return null;
  }
}

/**
 * Checks a PKCS#10 CSR and, if it passes, issues a client certificate for `spiffeId` signed by `ca`.
 *
 * Checks run in this order (the first failure is the answer): validity in range; the CSR parses;
 * its key is Ed25519, ECDSA P-256/P-384 or RSA ≥ 2048; its signature proves possession of that key;
 * it requests no subject alternative name other than `spiffeId` (none at all is fine).
 * The CSR's subject and any other requested extensions are ignored: the certificate is built only
 * from what we decide — subject CN = the SPIFFE id's name (deployment id), URI SAN = `spiffeId`,
 * EKU clientAuth only, cA=false, notBefore = now − 5 min (clock skew), notAfter = now + validityMs.
 * Throws only for programmer errors (an invalid `spiffeId`).
 */
export async function issueCertificateFromCsr(
  ca: CertificateAuthority,
  options: IssueFromCsrOptions,
): Promise<IssuedCertificate | CsrRefusal> {
  const identity = parseSpiffeId(options.spiffeId);
  if (!identity) throw new TypeError(`invalid SPIFFE id ${JSON.stringify(options.spiffeId)}`);

  const { validityMs } = options;
  if (!Number.isFinite(validityMs) || validityMs < MIN_CERTIFICATE_VALIDITY_MS || validityMs > MAX_CERTIFICATE_VALIDITY_MS) {
    return refuse("VALIDITY_OUT_OF_RANGE", "certificate validity must be between 1 minute and 397 days");
  }

  const der = csrDer(options.csrPem);
  if (!der) return refuse("CSR_MALFORMED", "CSR is not a PEM or DER PKCS#10 certificate request");
  let csr: x509.Pkcs10CertificateRequest;
  let extensions: x509.Extension[];
  try {
    csr = new x509.Pkcs10CertificateRequest(der);
    extensions = [...csr.extensions];
  } catch {
    return refuse("CSR_MALFORMED", "CSR is not a valid PKCS#10 certificate request");
  }

  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: "der", type: "spki" });
  } catch {
    return refuse("CSR_MALFORMED", "CSR public key cannot be parsed");
  }
  const weak = keyWeakness(key);
  if (weak) return refuse("CSR_WEAK_KEY", weak);

  // Proof of possession: only the holder of the private key can have signed the request.
  let signatureOk = false;
  try {
    signatureOk = await csr.verify();
  } catch {
    signatureOk = false;
  }
  if (!signatureOk) return refuse("CSR_BAD_SIGNATURE", "CSR signature does not verify with its own public key");

  for (const extension of extensions) {
    if (extension.type !== SAN_OID) continue;
    let names: x509.JsonGeneralName[];
    try {
      names = new x509.SubjectAlternativeNameExtension(extension.rawData).names.toJSON();
    } catch {
      // otherName, X.400 and friends: nothing we would ever issue.
      return refuse("CSR_NAME_NOT_ALLOWED", "CSR requests a subject alternative name type that is not allowed");
    }
    for (const name of names) {
      if (name.type !== "url" || name.value !== options.spiffeId) {
        return refuse("CSR_NAME_NOT_ALLOWED", `CSR requests a name other than ${options.spiffeId}`);
      }
    }
  }

  const now = options.now ?? new Date();
  const notBefore = new Date(now.getTime() - CLOCK_SKEW_MS);
  const notAfter = new Date(now.getTime() + validityMs);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialNumber(),
    subject: [{ CN: [identity.name] }],
    issuer: ca.certificate.subjectName,
    notBefore,
    notAfter,
    publicKey: csr.publicKey,
    signingKey: ca.signingKey,
    signingAlgorithm: ca.signingAlgorithm,
    extensions: [
      ...(await leafBaseExtensions(ca, csr.publicKey)),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], false),
      new x509.SubjectAlternativeNameExtension([{ type: "url", value: options.spiffeId }], false),
    ],
  });
  const certPem = cert.toString("pem");
  const parsed = new NodeX509Certificate(certPem);
  return {
    ok: true,
    certPem,
    serialNumber: parsed.serialNumber.toUpperCase(),
    // X.509 times have one-second resolution; report what the certificate actually says.
    notBefore: new Date(parsed.validFrom),
    notAfter: new Date(parsed.validTo),
  };
}

function csrDer(input: string | Uint8Array): Uint8Array | null {
  if (typeof input !== "string") {
    return input.byteLength > 0 && input.byteLength <= MAX_CSR_BYTES ? input : null;
  }
  if (input.length > MAX_CSR_BYTES * 2) return null;
  const match = /^\s*-----BEGIN (NEW )?CERTIFICATE REQUEST-----\r?\n([A-Za-z0-9+/=\s]+?)-----END \1CERTIFICATE REQUEST-----\s*$/.exec(input);
  if (!match) return null;
  const body = match[2]!.replace(/\s+/g, "");
  if (body.length === 0 || body.length % 4 !== 0) return null;
  const der = Buffer.from(body, "base64");
  return der.length > 0 && der.length <= MAX_CSR_BYTES ? der : null;
}

function keyWeakness(key: KeyObject): string | null {
  switch (key.asymmetricKeyType) {
    case "ed25519":
      return null;
    case "ec": {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      return curve === "prime256v1" || curve === "secp384r1" ? null : `ECDSA curve ${curve ?? "unknown"} is not allowed (use P-256 or P-384)`;
    }
    case "rsa": {
      const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
      if (bits < 2048) return `RSA key of ${bits} bits is too weak (need at least 2048)`;
      // Beyond 8192 bits verification cost is a denial-of-service lever, not security.
      if (bits > 8192) return `RSA key of ${bits} bits is not allowed (at most 8192)`;
      return null;
    }
    default:
      return `key type ${key.asymmetricKeyType ?? "unknown"} is not allowed (use Ed25519, ECDSA P-256/P-384 or RSA ≥ 2048)`;
  }
}
