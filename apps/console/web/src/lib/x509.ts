/**
 * Just enough X.509 to show an operator what a CA rotation produced: each PEM certificate's
 * subject, serial number and validity, read from its DER (RFC 5280 §4.1) in a few dozen lines
 * rather than a dependency. Display only: nothing here verifies a signature or trusts a
 * certificate, and anything that does not parse is shown as "not readable", never guessed at.
 */

/** What the console shows of a certificate. */
export interface CertificateSummary {
  /** The subject's common name, else the whole subject as `O=…, CN=…`, else "". */
  readonly subject: string;
  /** The serial number as upper-case hex, as the services log it. */
  readonly serialHex: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]{1,65536}?)-----END CERTIFICATE-----/g;
const MAX_BUNDLE = 1 << 20;

/** The CERTIFICATE blocks of a PEM text, in order (a bundle may hold several). */
export function splitPemCertificates(text: string): string[] {
  if (text.length > MAX_BUNDLE) return [];
  return [...text.matchAll(PEM_BLOCK)].map((m) => m[0]);
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

function base64Decode(text: string): Uint8Array | null {
  const clean = text.replace(/\s+/g, "").replace(/=+$/, "");
  if (!/^[A-Za-z0-9+/]*$/.test(clean) || clean.length % 4 === 1) return null;
  const out = new Uint8Array(Math.floor((clean.length * 3) / 4));
  let bits = 0;
  let acc = 0;
  let o = 0;
  for (const ch of clean) {
    acc = (acc << 6) | B64.indexOf(ch);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  return out.subarray(0, o);
}

interface Tlv {
  readonly tag: number;
  /** Where the value starts and ends in the buffer. */
  readonly start: number;
  readonly end: number;
}

class DerError extends Error {}

function readTlv(der: Uint8Array, at: number, limit: number): Tlv {
  if (at + 2 > limit) throw new DerError("truncated");
  const tag = der[at]!;
  let len = der[at + 1]!;
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || start + n > limit) throw new DerError("bad length");
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + der[start + i]!;
    start += n;
  }
  const end = start + len;
  if (end > limit) throw new DerError("truncated");
  return { tag, start, end };
}

function children(der: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let at = parent.start; at < parent.end; ) {
    const t = readTlv(der, at, parent.end);
    out.push(t);
    at = t.end;
  }
  return out;
}

function text(der: Uint8Array, t: Tlv): string {
  return new TextDecoder("utf-8", { fatal: false }).decode(der.subarray(t.start, t.end));
}

// UTCTime YYMMDDHHMMSSZ (years 1950–2049, RFC 5280 §4.1.2.5.1) or GeneralizedTime YYYYMMDDHHMMSSZ.
function readTime(der: Uint8Array, t: Tlv): Date {
  const s = text(der, t);
  const m = t.tag === 0x17 ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s) : t.tag === 0x18 ? /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s) : null;
  if (!m) throw new DerError("bad time");
  let year = Number(m[1]);
  if (t.tag === 0x17) year += year < 50 ? 2000 : 1900;
  return new Date(Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
}

const NAME_OIDS: Readonly<Record<string, string>> = {
  "2.5.4.3": "CN",
  "2.5.4.10": "O",
  "2.5.4.11": "OU",
  "2.5.4.6": "C",
};

function oid(der: Uint8Array, t: Tlv): string {
  const bytes = der.subarray(t.start, t.end);
  if (bytes.length === 0) return "";
  const parts = [Math.floor(bytes[0]! / 40), bytes[0]! % 40];
  let value = 0;
  for (const b of bytes.subarray(1)) {
    value = value * 128 + (b & 0x7f);
    if (!(b & 0x80)) {
      parts.push(value);
      value = 0;
    }
  }
  return parts.join(".");
}

function readName(der: Uint8Array, name: Tlv): string {
  const attrs: Array<[string, string]> = [];
  for (const rdn of children(der, name)) {
    for (const atv of children(der, rdn)) {
      const [type, value] = children(der, atv);
      if (!type || !value) continue;
      const key = NAME_OIDS[oid(der, type)];
      if (key) attrs.push([key, text(der, value)]);
    }
  }
  const cn = attrs.find(([k]) => k === "CN");
  return cn ? cn[1] : attrs.map(([k, v]) => `${k}=${v}`).join(", ");
}

/** Reads one PEM certificate; null when it is not one this parser can read. */
export function parseCertificatePem(pem: string): CertificateSummary | null {
  const block = splitPemCertificates(pem)[0];
  if (!block) return null;
  const der = base64Decode(block.replace(/-----(BEGIN|END) CERTIFICATE-----/g, ""));
  if (!der) return null;
  try {
    const cert = readTlv(der, 0, der.length);
    const [tbs] = children(der, cert);
    if (cert.tag !== 0x30 || !tbs || tbs.tag !== 0x30) return null;
    const fields = children(der, tbs);
    // version is an optional explicit [0]; serial, signature, issuer, validity, subject follow.
    const offset = fields[0]?.tag === 0xa0 ? 1 : 0;
    const serial = fields[offset];
    const validity = fields[offset + 3];
    const subject = fields[offset + 4];
    if (!serial || serial.tag !== 0x02 || !validity || validity.tag !== 0x30 || !subject || subject.tag !== 0x30) return null;
    const [notBefore, notAfter] = children(der, validity);
    if (!notBefore || !notAfter) return null;
    let serialBytes = der.subarray(serial.start, serial.end);
    // A leading zero only keeps a positive INTEGER positive; it is not part of the number.
    while (serialBytes.length > 1 && serialBytes[0] === 0) serialBytes = serialBytes.subarray(1);
    return {
      subject: readName(der, subject),
      serialHex: Array.from(serialBytes, (b) => b.toString(16).padStart(2, "0")).join("").toUpperCase(),
      notBefore: readTime(der, notBefore),
      notAfter: readTime(der, notAfter),
    };
  } catch (err) {
    if (err instanceof DerError) return null;
    throw err;
  }
}
