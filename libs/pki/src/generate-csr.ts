import { exportPrivateKeyPem, generateKeyPair, signingParams } from "./keys.js";
import { x509 } from "./x509.js";

/** Options for {@link generateKeyAndCsr}. */
export interface GenerateCsrOptions {
  /** The identity to request as the only URI SAN; omit to request no SAN (the CA adds it). */
  spiffeId?: string;
  /** Subject common name, e.g. the deployment id. */
  commonName: string;
  /** Key algorithm; P-256 by default because the key becomes a TLS client key (node TLS cannot use Ed25519). */
  algorithm?: "P-256" | "Ed25519";
}

/** A fresh private key (PEM PKCS#8) and a PKCS#10 CSR (PEM) signed with it. */
export interface KeyAndCsr {
  keyPem: string;
  csrPem: string;
}

/**
 * Generates a key pair and a CSR proving possession of it — what an appliance sends to
 * `Activate` (and renewals), and what tests use to get appliance certificates.
 */
export async function generateKeyAndCsr(options: GenerateCsrOptions): Promise<KeyAndCsr> {
  const algorithm = options.algorithm ?? "P-256";
  const keys = await generateKeyPair(algorithm);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: [{ CN: [options.commonName] }],
    keys,
    signingAlgorithm: signingParams(algorithm),
    extensions: options.spiffeId
      ? [new x509.SubjectAlternativeNameExtension([{ type: "url", value: options.spiffeId }], false)]
      : [],
  });
  return { keyPem: await exportPrivateKeyPem(keys.privateKey), csrPem: csr.toString("pem") };
}
