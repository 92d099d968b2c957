/**
 * The refusal codes every token verifier in this package returns, and the one mapping from jose's
 * errors to them. Callers (the RPC error mapper, the appliance SDK) switch on these codes, so the
 * mapping is done on jose's stable `code` / `claim` properties, never on error messages.
 */
import { errors } from "jose";

/** Why a token was refused. One union for all token kinds so one table can map them to Connect codes. */
export type TokenRefusalCode =
  | "TOKEN_MALFORMED"
  | "TOKEN_WRONG_TYPE"
  | "TOKEN_BAD_ALGORITHM"
  | "TOKEN_BAD_SIGNATURE"
  | "TOKEN_UNKNOWN_KEY"
  | "TOKEN_EXPIRED"
  | "TOKEN_NOT_YET_VALID"
  | "TOKEN_BAD_ISSUER"
  | "TOKEN_BAD_AUDIENCE"
  | "TOKEN_CLAIMS_INVALID"
  | "TOKEN_NO_ROLES"
  | "TOKEN_KEYS_UNAVAILABLE";

/** A refused token: a code to switch on and a message safe to show the caller (no key material). */
export interface TokenRefusal {
  ok: false;
  code: TokenRefusalCode;
  message: string;
}

/** Builds a refusal; a helper so verifiers read as a list of policy checks. */
export function refuse(code: TokenRefusalCode, message: string): TokenRefusal {
  return { ok: false, code, message };
}

/**
 * Maps an error thrown by jose's verification to a refusal, or returns `undefined` when the error
 * is not one of jose's (a bug or an I/O failure the caller must decide about).
 */
export function refusalFromJoseError(error: unknown): TokenRefusal | undefined {
  if (!(error instanceof errors.JOSEError)) return undefined;
  switch (error.code) {
    case "ERR_JWT_EXPIRED":
      return refuse("TOKEN_EXPIRED", "token has expired");
    case "ERR_JWT_CLAIM_VALIDATION_FAILED": {
      const { claim } = error as errors.JWTClaimValidationFailed;
      switch (claim) {
        case "typ":
          return refuse("TOKEN_WRONG_TYPE", "token has the wrong type");
        case "iss":
          return refuse("TOKEN_BAD_ISSUER", "token was not issued by the expected issuer");
        case "aud":
          return refuse("TOKEN_BAD_AUDIENCE", "token is not meant for this audience");
        case "nbf":
          return refuse("TOKEN_NOT_YET_VALID", "token is not yet valid");
        default:
          return refuse("TOKEN_CLAIMS_INVALID", `token claim "${claim}" is missing or invalid`);
      }
    }
    case "ERR_JOSE_ALG_NOT_ALLOWED":
      return refuse("TOKEN_BAD_ALGORITHM", "token is signed with an algorithm that is not accepted");
    case "ERR_JWS_SIGNATURE_VERIFICATION_FAILED":
      return refuse("TOKEN_BAD_SIGNATURE", "token signature is invalid");
    case "ERR_JWKS_NO_MATCHING_KEY":
    case "ERR_JWKS_MULTIPLE_MATCHING_KEYS":
      return refuse("TOKEN_UNKNOWN_KEY", "token is signed by a key that is not trusted");
    case "ERR_JWKS_TIMEOUT":
    case "ERR_JWKS_INVALID":
    // jose raises the bare JOSEError only when a remote JWKS answers non-200 or non-JSON.
    case "ERR_JOSE_GENERIC":
      return refuse("TOKEN_KEYS_UNAVAILABLE", "the issuer's keys could not be loaded");
    case "ERR_JWS_INVALID":
    case "ERR_JWT_INVALID":
    case "ERR_JOSE_NOT_SUPPORTED":
    default:
      return refuse("TOKEN_MALFORMED", "token is malformed");
  }
}
