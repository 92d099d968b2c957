import type { CertificateAuthority } from "./ca.js";
import { x509 } from "./x509.js";

// Internal (not exported from the package): the extensions shared by every leaf we issue.

/** Extensions every issued leaf carries: cA=false, the CA's key id, the leaf's own key id. */
export async function leafBaseExtensions(ca: CertificateAuthority, publicKey: x509.PublicKeyType): Promise<x509.Extension[]> {
  return [
    new x509.BasicConstraintsExtension(false, undefined, true),
    await authorityKeyIdentifier(ca),
    await x509.SubjectKeyIdentifierExtension.create(publicKey),
  ];
}

// The AKI must equal the CA's SKI byte for byte (chain builders match on it), so copy it when the
// CA has one instead of recomputing a hash that might use another method.
async function authorityKeyIdentifier(ca: CertificateAuthority): Promise<x509.AuthorityKeyIdentifierExtension> {
  const ski = ca.certificate.getExtension(x509.SubjectKeyIdentifierExtension);
  if (ski) return new x509.AuthorityKeyIdentifierExtension(ski.keyId, false);
  return x509.AuthorityKeyIdentifierExtension.create(ca.certificate.publicKey, false);
}
