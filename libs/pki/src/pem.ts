import { X509Certificate as NodeX509Certificate } from "node:crypto";

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+?-----END CERTIFICATE-----/g;

/** Splits a PEM bundle (e.g. `ca.crt` holding several CAs) into one PEM string per certificate. */
export function splitPemCertificates(bundle: string): string[] {
  return (bundle.match(CERT_BLOCK) ?? []).map((block) => `${block.replace(/\r\n/g, "\n")}\n`);
}

/** SHA-256 fingerprint of a certificate's DER, lowercase hex without colons (for logs and pinning). */
export function certificateFingerprint(certPem: string): string {
  return new NodeX509Certificate(certPem).fingerprint256.replace(/:/g, "").toLowerCase();
}

/** A certificate's serial number as node reports it (uppercase hex), the convention used everywhere here. */
export function certificateSerialNumber(certPem: string): string {
  return new NodeX509Certificate(certPem).serialNumber.toUpperCase();
}

/** The URI SANs of a certificate (e.g. its SPIFFE id), parsed from node's `subjectAltName`. */
export function certificateUris(cert: string | NodeX509Certificate): string[] {
  const parsed = typeof cert === "string" ? new NodeX509Certificate(cert) : cert;
  return sanEntries(parsed.subjectAltName).filter((e) => e.type === "URI").map((e) => e.value);
}

/**
 * Parses node's `subjectAltName` string (`DNS:localhost, IP Address:127.0.0.1, URI:spiffe://…`).
 * Node quotes entries containing `,` or `"` as JSON strings, so a value can't smuggle in a fake entry.
 */
export function sanEntries(subjectAltName: string | undefined): { type: string; value: string }[] {
  if (!subjectAltName) return [];
  const entries: { type: string; value: string }[] = [];
  let rest = subjectAltName;
  while (rest.length > 0) {
    const colon = rest.indexOf(":");
    if (colon < 0) break;
    const type = rest.slice(0, colon).trim();
    rest = rest.slice(colon + 1);
    let value: string;
    if (rest.startsWith('"')) {
      // JSON-quoted value: find the closing quote honouring escapes.
      let i = 1;
      while (i < rest.length && rest[i] !== '"') i += rest[i] === "\\" ? 2 : 1;
      value = JSON.parse(rest.slice(0, i + 1)) as string;
      rest = rest.slice(i + 1);
    } else {
      const comma = rest.indexOf(", ");
      value = comma < 0 ? rest : rest.slice(0, comma);
      rest = comma < 0 ? "" : rest.slice(comma);
    }
    entries.push({ type, value });
    rest = rest.replace(/^, /, "");
  }
  return entries;
}
