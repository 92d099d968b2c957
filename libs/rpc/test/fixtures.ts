/**
 * A tiny real registration for the rpc tests: SigningKeyService with stub *handlers* returning
 * fixed data (the real signing-keys app is tested in apps/signing-keys), plus counters so tests
 * can tell whether a handler ran.
 */
import type { ConnectRouter } from "@connectrpc/connect";
import { SigningKeyService } from "@lcp/proto/signing/v1/signing_key_service_pb";
import { DomainError } from "@lcp/rpc";

/** How often each stub handler ran. */
export interface Calls {
  getJwks: number;
  listKeys: number;
  sign: number;
  rotateKeys: number;
}

/** Registers SigningKeyService with stubs; `behaviour` lets a test make a handler fail. */
export function signingStub(calls: Calls, behaviour: { failListKeys?: () => never; failGetJwks?: () => void } = {}) {
  return (router: ConnectRouter) => {
    router.service(SigningKeyService, {
      getJwks() {
        calls.getJwks++;
        behaviour.failGetJwks?.();
        return { jwksJson: '{"keys":[]}', kids: ["k1"] };
      },
      listKeys() {
        calls.listKeys++;
        behaviour.failListKeys?.();
        return { keys: [{ kid: "k1", algorithm: "EdDSA" }] };
      },
      sign(req) {
        calls.sign++;
        if (req.typ === "domain-error") throw new DomainError("NO_ACTIVE_KEY", "no active signing key");
        if (req.typ === "crash") throw new Error("SELECT secret FROM keys failed at /srv/db.ts:12");
        return { token: `signed:${req.typ}`, kid: "k1" };
      },
      rotateKeys() {
        calls.rotateKeys++;
        return {};
      },
      // CreateKey and the rest are deliberately left out: connect answers Unimplemented.
    });
  };
}

/** Fresh counters. */
export function newCalls(): Calls {
  return { getJwks: 0, listKeys: 0, sign: 0, rotateKeys: 0 };
}
