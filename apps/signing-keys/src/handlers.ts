/**
 * SigningKeyService: thin handlers over validate.ts (input), the key store and active-key cache
 * (keys/), and the appliance CA (ca/). Who may call what is decided before a handler runs, by the
 * one policy table in libs/rpc.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  GetApplianceTrustBundleResponseSchema,
  GetJwksResponseSchema,
  IssueApplianceCertificateResponseSchema,
  ListKeysResponseSchema,
  RotateApplianceCaResponseSchema,
  RotateKeysResponseSchema,
  SignResponseSchema,
  type SigningKeyService,
} from "@lcp/proto/signing/v1/signing_key_service_pb";
import { DomainError, principalKey, requestIdKey } from "@lcp/rpc";
import { signJwt } from "@lcp/tokens";
import { actorOf, type AuditContext } from "./audit.js";
import type { ApplianceCa } from "./ca/appliance-ca.js";
import type { ActiveKeyCache } from "./keys/active-key-cache.js";
import type { JwksCache } from "./keys/jwks.js";
import type { KeyStore } from "./keys/key-store.js";
import { toSigningKey } from "./keys/key-view.js";
import {
  encodePageToken,
  validateIssueCertificate,
  validateKid,
  validateListKeys,
  validateReason,
  validateSign,
} from "./validate.js";

/** What the handlers need. */
export interface HandlerDeps {
  keys: KeyStore;
  activeKey: ActiveKeyCache;
  jwks: JwksCache;
  ca: ApplianceCa;
  /** `iss` of every signed token. */
  issuer: string;
  now: () => Date;
}

function auditContext(ctx: HandlerContext, reason = ""): AuditContext {
  return { actor: actorOf(ctx.values.get(principalKey)), requestId: ctx.values.get(requestIdKey), reason };
}

/** The SigningKeyService implementation. */
export function createSigningKeyHandlers(deps: HandlerDeps): ServiceImpl<typeof SigningKeyService> {
  return {
    async listKeys(req) {
      const query = validateListKeys(req);
      const page = await deps.keys.list(query);
      return create(ListKeysResponseSchema, {
        keys: page.keys.map(toSigningKey),
        nextPageToken: page.nextCursor ? encodePageToken(page.nextCursor, query.states) : "",
      });
    },

    async createKey(req, ctx) {
      const reason = validateReason(req.reason);
      return { key: toSigningKey(await deps.keys.create(auditContext(ctx, reason))) };
    },

    async rotateKeys(req, ctx) {
      const reason = validateReason(req.reason);
      const result = await deps.keys.rotate(auditContext(ctx, reason));
      const retired = result.retired[0];
      return create(RotateKeysResponseSchema, {
        activated: toSigningKey(result.activated),
        ...(retired ? { retired: toSigningKey(retired) } : {}),
        next: toSigningKey(result.next),
      });
    },

    async retireKey(req, ctx) {
      const kid = validateKid(req.kid);
      const reason = validateReason(req.reason);
      return { key: toSigningKey(await deps.keys.retire(kid, auditContext(ctx, reason))) };
    },

    async revokeKey(req, ctx) {
      const kid = validateKid(req.kid);
      const reason = validateReason(req.reason);
      return { key: toSigningKey(await deps.keys.revoke(kid, auditContext(ctx, reason))) };
    },

    async getJwks() {
      const doc = await deps.jwks.get();
      return create(GetJwksResponseSchema, { jwksJson: doc.jwksJson, kids: doc.kids });
    },

    async sign(req) {
      const input = validateSign(req);
      const key = await deps.activeKey.get();
      if (!key) {
        throw new DomainError("NO_ACTIVE_KEY", "no signing key is ACTIVE (the last one was revoked or retired); an operator must run RotateKeys");
      }
      const token = signJwt({
        typ: input.typ,
        claims: input.claims,
        kid: key.kid,
        privateKeyPkcs8Pem: key.privateKeyPkcs8Pem,
        issuer: deps.issuer,
        now: deps.now(),
      });
      return create(SignResponseSchema, { token, kid: key.kid });
    },

    async issueApplianceCertificate(req, ctx) {
      const input = validateIssueCertificate(req);
      const issued = await deps.ca.issue(input, auditContext(ctx));
      return create(IssueApplianceCertificateResponseSchema, {
        certificatePem: issued.certificatePem,
        chainPem: issued.chainPem,
        serialNumber: issued.serialNumber,
        notBefore: timestampFromDate(issued.notBefore),
        notAfter: timestampFromDate(issued.notAfter),
        spiffeId: issued.spiffeId,
      });
    },

    async getApplianceTrustBundle() {
      return create(GetApplianceTrustBundleResponseSchema, { caCertificatesPem: await deps.ca.trustBundle() });
    },

    async rotateApplianceCa(req, ctx) {
      const reason = validateReason(req.reason);
      const rotated = await deps.ca.rotate(auditContext(ctx, reason));
      return create(RotateApplianceCaResponseSchema, {
        caCertificatePem: rotated.caCertificatePem,
        trustBundlePem: rotated.trustBundle,
      });
    },
  };
}
