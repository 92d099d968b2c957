/** Stored signing keys as the API shows them: public half and lifecycle times only, never the private key. */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { KeyState, SigningKeySchema, type SigningKey } from "@lcp/proto/signing/v1/signing_key_service_pb";
import type { SigningKeyRow } from "../storage/entities.js";
import type { KeyLifecycleState } from "./lifecycle.js";

const STATES: Record<KeyLifecycleState, KeyState> = {
  NEXT: KeyState.NEXT,
  ACTIVE: KeyState.ACTIVE,
  RETIRED: KeyState.RETIRED,
  REVOKED: KeyState.REVOKED,
};

/** The API view of a stored key. Built field by field, so a new column can never leak by accident. */
export function toSigningKey(row: SigningKeyRow): SigningKey {
  return create(SigningKeySchema, {
    kid: row.kid,
    state: STATES[row.state],
    algorithm: row.algorithm,
    publicJwkJson: row.publicJwk,
    createTime: timestampFromDate(row.createdAt),
    ...(row.activatedAt ? { activateTime: timestampFromDate(row.activatedAt) } : {}),
    ...(row.retiredAt ? { retireTime: timestampFromDate(row.retiredAt) } : {}),
    ...(row.revokedAt ? { revokeTime: timestampFromDate(row.revokedAt) } : {}),
    revokeReason: row.revokeReason ?? "",
  });
}
