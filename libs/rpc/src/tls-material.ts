/**
 * The checks a listener's TLS material passes before it is served: the certificate (chain) and
 * key parse and belong together, the chain leads to one of the platform CAs, every certificate of
 * the chain is valid now, and a replacement keeps the identity it replaces. Used by `createServer`
 * at start and by `setTls` when the files are rotated, so a bad set is refused before any client
 * sees it and the old one keeps serving.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from "node:crypto";
import { certificateUris, splitPemCertificates } from "@lcp/pki";
import { chainsTo } from "./authn.js";
import type { ServerTls } from "./server-options.js";

/** Why TLS material was refused, in the order the checks run. */
export type TlsMaterialCode =
  | "CERT_UNPARSABLE"
  | "KEY_UNPARSABLE"
  | "CA_UNPARSABLE"
  | "KEY_MISMATCH"
  | "CHAIN_UNTRUSTED"
  | "CERT_NOT_YET_VALID"
  | "CERT_EXPIRED"
  | "IDENTITY_CHANGED";

/** The verdict on a set of TLS material; `serialNumber`/`validTo` describe the leaf that would be served. */
export type TlsMaterialCheck =
  | { readonly ok: true; readonly serialNumber: string; readonly validTo: string }
  | { readonly ok: false; readonly code: TlsMaterialCode; readonly message: string };

/** TLS material that failed {@link checkServerTls}; nothing was changed. */
export class TlsMaterialError extends Error {
  override name = "TlsMaterialError";
  constructor(
    readonly code: TlsMaterialCode,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}

/**
 * Checks `tls` at `now` (epoch ms). With `current` (the material being replaced), the new leaf
 * must also carry the same URI SANs (the SPIFFE service id): a Secret of another service mounted
 * by mistake would otherwise make every peer refuse this app's calls.
 */
export function checkServerTls(tls: ServerTls, now: number, current?: ServerTls): TlsMaterialCheck {
  const refuse = (code: TlsMaterialCode, message: string): TlsMaterialCheck => ({ ok: false, code, message });
  const chain = parseCertificates(tls.certPem);
  if (!chain) return refuse("CERT_UNPARSABLE", "the certificate file holds no parsable certificate");
  let key: KeyObject;
  try {
    key = createPrivateKey(tls.keyPem);
  } catch {
    // The parser's message is not echoed: it is about the contents of a private key file.
    return refuse("KEY_UNPARSABLE", "the key file holds no parsable private key");
  }
  const cas = parseCertificates(tls.caPem);
  if (!cas) return refuse("CA_UNPARSABLE", "the CA file holds no parsable certificate");
  const leaf = chain[0]!;
  if (!leaf.checkPrivateKey(key)) return refuse("KEY_MISMATCH", `the key does not belong to certificate ${leaf.serialNumber}`);
  if (!chainsTo(chain, cas)) return refuse("CHAIN_UNTRUSTED", `certificate ${leaf.serialNumber} does not chain to the CA file's certificates`);
  for (const cert of chain) {
    if (now < Date.parse(cert.validFrom)) return refuse("CERT_NOT_YET_VALID", `certificate ${cert.serialNumber} is valid from ${cert.validFrom}`);
    if (now > Date.parse(cert.validTo)) return refuse("CERT_EXPIRED", `certificate ${cert.serialNumber} expired ${cert.validTo}`);
  }
  if (current) {
    const before = parseCertificates(current.certPem)?.[0];
    const was = before ? certificateUris(before).sort().join(" ") : "";
    const now = certificateUris(leaf).sort().join(" ");
    if (was !== now) return refuse("IDENTITY_CHANGED", `certificate ${leaf.serialNumber} names ${now || "no URI"} instead of ${was || "no URI"}`);
  }
  return { ok: true, serialNumber: leaf.serialNumber, validTo: leaf.validTo };
}

/** Every certificate of a PEM bundle, or undefined when there is none or one does not parse. */
function parseCertificates(pem: string): X509Certificate[] | undefined {
  try {
    const certs = splitPemCertificates(pem).map((block) => new X509Certificate(block));
    return certs.length > 0 ? certs : undefined;
  } catch {
    return undefined;
  }
}
