import { randomBytes } from "node:crypto";

/**
 * A random, positive 128-bit serial number as uppercase hex (32 digits).
 *
 * The top byte is forced into 0x40–0x7F: positive (no DER sign byte) and never a leading zero,
 * so the hex we choose is byte-for-byte what node's `X509Certificate.serialNumber` and
 * `tls.TLSSocket.getPeerCertificate().serialNumber` report back. 126 bits stay random.
 */
export function randomSerialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x3f) | 0x40;
  return bytes.toString("hex").toUpperCase();
}

/**
 * Canonical form for comparing serial numbers from any source: uppercase hex, no colons or
 * spaces, no leading zero bytes (some tools print a DER sign byte `00`).
 */
export function normalizeSerialNumber(serial: string): string {
  const hex = serial.replace(/[:\s]/g, "").toUpperCase().replace(/^(00)+(?=[0-9A-F])/, "");
  return hex;
}
