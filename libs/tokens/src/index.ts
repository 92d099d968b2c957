/**
 * @lcp/tokens — licence and lease token formats (jose, EdDSA), JWKS verification, admin bearer
 * tokens, the development admin issuer and private-key wrapping (AES-256-GCM).
 */
export type { TokenRefusal, TokenRefusalCode } from "./token-refusal.js";
export { DurationError, parseDuration } from "./duration.js";
export {
  ADMIN_TOKEN_ALGORITHMS,
  createAdminTokenVerifier,
  type AdminTokenAccepted,
  type AdminTokenAlgorithm,
  type AdminTokenVerdict,
  type AdminTokenVerifier,
  type AdminTokenVerifierOptions,
} from "./admin-token.js";
