import { X509Certificate as NodeX509Certificate } from "node:crypto";
import { exportPrivateKeyPem, generateKeyPair, importSigningKey, signingParams, spkiDer, type KeyAlgorithm } from "./keys.js";
import { randomSerialNumber } from "./serial.js";
import { x509, type Algorithm, type CryptoKey, type EcdsaParams } from "./x509.js";

/** A certificate and its private key, both PEM (key as PKCS#8). */
export interface PemKeyPair {
  certPem: string;
  keyPem: string;
}

/** Options for {@link createCertificateAuthority}. */
export interface CertificateAuthorityOptions {
  /** Subject common name, e.g. "lcp development CA". */
  commonName: string;
  /** How long the CA certificate is valid, in days. */
  validityDays: number;
  /** Issue time; defaults to the current time. */
  now?: Date;
  /** CA key algorithm; P-256 by default (what node TLS and grpc-js verify everywhere). */
  algorithm?: KeyAlgorithm;
}

/** A loaded CA: its certificate and signing key, ready to issue certificates. */
export interface CertificateAuthority {
  /** The CA certificate, PEM. */
  readonly certPem: string;
  /** The CA certificate parsed by @peculiar/x509 (issuer name and key identifier source). */
  readonly certificate: x509.X509Certificate;
  /** The CA certificate parsed by node. */
  readonly nodeCertificate: NodeX509Certificate;
  /** The CA private key for signing. */
  readonly signingKey: CryptoKey;
  /** The signature algorithm the CA signs with. */
  readonly signingAlgorithm: Algorithm | EcdsaParams;
}

/** Clock-skew allowance: certificates start this long before "now" so a slightly slow peer accepts them. */
export const CLOCK_SKEW_MS = 5 * 60_000;
const DAY_MS = 86_400_000;

/**
 * Creates a self-signed certificate authority (basicConstraints cA critical, keyUsage
 * keyCertSign + cRLSign, subject key identifier). Used for the dev PKI, tests, and the appliance CA.
 */
export async function createCertificateAuthority(options: CertificateAuthorityOptions): Promise<PemKeyPair> {
  if (!(options.validityDays > 0)) throw new RangeError("validityDays must be positive");
  const algorithm = options.algorithm ?? "P-256";
  const now = options.now ?? new Date();
  const keys = await generateKeyPair(algorithm);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerialNumber(),
    name: [{ CN: [options.commonName] }],
    notBefore: new Date(now.getTime() - CLOCK_SKEW_MS),
    notAfter: new Date(now.getTime() + options.validityDays * DAY_MS),
    keys,
    signingAlgorithm: signingParams(algorithm),
    extensions: [
      // pathLength 0: this CA issues leaves only, never subordinate CAs.
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString("pem"), keyPem: await exportPrivateKeyPem(keys.privateKey) };
}

/**
 * Loads a CA from PEM so it can issue certificates. Throws if the certificate is not a CA
 * or the key does not belong to it (a mismatched pair would issue certificates nobody trusts).
 */
export async function loadCertificateAuthority(pair: PemKeyPair): Promise<CertificateAuthority> {
  const nodeCertificate = new NodeX509Certificate(pair.certPem);
  if (!nodeCertificate.ca) throw new Error(`certificate ${nodeCertificate.subject} is not a CA (basicConstraints cA is not set)`);
  const key = await importSigningKey(pair.keyPem);
  if (!spkiDer(key.keyObject).equals(spkiDer(nodeCertificate.publicKey))) {
    throw new Error(`CA private key does not match the CA certificate ${nodeCertificate.subject}`);
  }
  const certificate = new x509.X509Certificate(pair.certPem);
  return {
    certPem: certificate.toString("pem"),
    certificate,
    nodeCertificate,
    signingKey: key.privateKey,
    signingAlgorithm: key.signingAlgorithm,
  };
}
