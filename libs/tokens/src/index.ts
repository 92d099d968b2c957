/**
 * @lcp/tokens — licence and lease token formats (jose, EdDSA), JWKS verification, admin bearer
 * tokens, the development admin issuer and private-key wrapping (AES-256-GCM).
 */
export type { TokenRefusal, TokenRefusalCode } from "./token-refusal.js";
export { DurationError, parseDuration } from "./duration.js";
export {
  generateSigningKey,
  signJwt,
  TOKEN_TYPES,
  type GeneratedSigningKey,
  type SignJwtInput,
  type SigningPublicJwk,
  type TokenType,
} from "./signing-key.js";
export { buildJwks, createJwksVerifierSet, type JwksVerifierSet } from "./jwks.js";
export type { VerifyTokenOptions } from "./verify-own-token.js";
export {
  licenseClaims,
  verifyLicenseToken,
  type LicenseClaimsInput,
  type LicenseClaimsToSign,
  type LicenseTokenClaims,
  type LicenseTokenVerdict,
} from "./license-token.js";
export {
  LEASE_STATUSES,
  leaseClaims,
  verifyLeaseToken,
  type LeaseClaimsInput,
  type LeaseClaimsToSign,
  type LeaseStatus,
  type LeaseTokenClaims,
  type LeaseTokenVerdict,
} from "./lease-token.js";
export {
  createKeyring,
  KekNotConfiguredError,
  kekFingerprint,
  KeyWrapError,
  loadOrCreateDevKek,
  parseKek,
  unwrapSecret,
  wrapSecret,
  wrappedKekFingerprint,
  type Keyring,
} from "./key-wrap.js";
export { readOrCreateFile } from "./write-file-once.js";
export {
  createTrustingFetch,
  parseCertificateBundle,
  type TrustingFetch,
  type TrustingFetchInit,
  type TrustingFetchOptions,
} from "./trusting-fetch.js";
export {
  ADMIN_TOKEN_ALGORITHMS,
  createAdminTokenVerifier,
  readClaim,
  type AdminTokenAccepted,
  type AdminTokenAlgorithm,
  type AdminTokenVerdict,
  type AdminTokenVerifier,
  type AdminTokenVerifierOptions,
} from "./admin-token.js";
export {
  DEV_ADMIN_AUDIENCE,
  DEV_ADMIN_ISSUER,
  ensureDevAdminIssuer,
  mintAdminToken,
  type DevAdminIssuer,
  type DevMintOptions,
  type MintAdminTokenInput,
} from "./dev-admin-issuer.js";
export {
  MAX_OFFLINE_FILE_BYTES,
  newOfflineNonce,
  OFFLINE_FILE_TYPES,
  OFFLINE_FILE_VERSION,
  OFFLINE_RESPONSE_VALIDITY_MS,
  signActivationRequest,
  signOfflineResponse,
  signRenewalRequest,
  verifyActivationRequest,
  verifyOfflineResponse,
  verifyRenewalRequest,
  type ActivationRequestClaims,
  type ActivationRequestInput,
  type ActivationResponseClaims,
  type OfflineAnswerState,
  type OfflineApplianceSettings,
  type OfflineFileKind,
  type OfflineFileRefusal,
  type OfflineFileRefusalCode,
  type OfflineFileVerdict,
  type OfflineLockReason,
  type OfflineResponseClaims,
  type OfflineResponseSigner,
  type OfflineResponseTrust,
  type RenewalRequestClaims,
  type RenewalRequestInput,
  type RenewalResponseClaims,
  type ResponseToSign,
  type UsageSummary,
  type VerifiedActivationRequest,
  type VerifiedRenewalRequest,
} from "./offline-files.js";
