/**
 * Signing as the core sees it: licensing never holds a private key, it asks signing-keys to sign
 * (`SigningKeyService.Sign`). The claims are built with `@lcp/tokens` so their shape is the one
 * verifiers expect.
 */
import { leaseClaims, licenseClaims, TOKEN_TYPES, type LeaseClaimsInput, type LicenseClaimsInput, type TokenType } from "@lcp/tokens";

/** Signs a token of our own kinds; implemented over `SigningKeyService.Sign`. */
export interface TokenSigner {
  sign(typ: TokenType, claims: Record<string, unknown>): Promise<{ token: string; kid: string }>;
}

/** Signs a lease (typ lease+jwt) and returns the compact token. */
export async function signLease(signer: TokenSigner, input: LeaseClaimsInput): Promise<string> {
  const { token } = await signer.sign(TOKEN_TYPES.lease, { ...leaseClaims(input) });
  return token;
}

/** Signs a licence token (typ license+jwt); returns the token and the key that signed it. */
export async function signLicense(signer: TokenSigner, input: LicenseClaimsInput): Promise<{ token: string; kid: string }> {
  return signer.sign(TOKEN_TYPES.license, { ...licenseClaims(input) });
}
