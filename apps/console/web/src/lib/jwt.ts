/**
 * Reads a licence token's header and claims for display. It does not verify anything: the
 * signature is checked by the box against the JWKS, never by the browser, and the screen says so.
 */

/** A token's decoded header and claims, or why it could not be read. */
export type DecodedToken =
  | { readonly ok: true; readonly header: Readonly<Record<string, unknown>>; readonly claims: Readonly<Record<string, unknown>> }
  | { readonly ok: false; readonly problem: string };

const MAX_TOKEN = 16 * 1024;

function decodePart(part: string): Record<string, unknown> | null {
  if (!/^[A-Za-z0-9_-]*$/.test(part)) return null;
  const base64 = part.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((part.length + 3) % 4);
  let text: string;
  try {
    const binary = atob(base64);
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** Decodes a compact JWS's header and payload (no verification; see the module comment). */
export function decodeToken(token: string): DecodedToken {
  if (token.length > MAX_TOKEN) return { ok: false, problem: "The token is too long to be a licence token." };
  const parts = token.trim().split(".");
  if (parts.length !== 3) return { ok: false, problem: "The token is not a signed JWT (three dot-separated parts)." };
  const header = decodePart(parts[0]!);
  const claims = decodePart(parts[1]!);
  if (!header || !claims) return { ok: false, problem: "The token's header or claims are not base64url JSON." };
  return { ok: true, header, claims };
}

/** What each licence-token claim means (docs/design.md §6). */
export const CLAIM_LABELS: Readonly<Record<string, string>> = {
  iss: "Issuer (iss)",
  sub: "Licence ID (sub)",
  dep: "Deployment ID (dep)",
  ent: "Entitlements (ent)",
  iat: "Issued at (iat)",
  nbf: "Not before (nbf)",
  exp: "Expires (exp)",
  jti: "Token ID (jti)",
};

/** Claims holding NumericDate seconds. */
export const TIME_CLAIMS: ReadonlySet<string> = new Set(["iat", "nbf", "exp"]);
