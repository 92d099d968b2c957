/**
 * A tiny real registration for the rpc tests: SigningKeyService with stub *handlers* returning
 * fixed data (the real signing-keys app is tested in apps/signing-keys), plus counters so tests
 * can tell whether a handler ran, and hooks so a test can make one fail or wait.
 */
import { ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { SigningKeyService } from "@lcp/proto/signing/v1/signing_key_service_pb";
import { DomainError, type ErrorCode } from "@lcp/rpc";

/** How often each stub handler ran. */
export interface Calls {
  getJwks: number;
  listKeys: number;
  sign: number;
}

/** Hooks run at the start of a handler (throw to fail it, await to delay it). */
export interface Behaviour {
  getJwks?: (attempt: number) => void | Promise<void>;
  sign?: (attempt: number) => void | Promise<void>;
}

/** Registers SigningKeyService with stubs; CreateKey and others are left unimplemented. */
export function signingStub(calls: Calls, behaviour: Behaviour = {}) {
  return (router: ConnectRouter) => {
    router.service(SigningKeyService, {
      async getJwks() {
        calls.getJwks++;
        await behaviour.getJwks?.(calls.getJwks);
        return { jwksJson: '{"keys":[]}', kids: ["k1"] };
      },
      listKeys() {
        calls.listKeys++;
        return { keys: [{ kid: "k1", algorithm: "EdDSA" }] };
      },
      async sign(req) {
        calls.sign++;
        await behaviour.sign?.(calls.sign);
        if (req.typ === "domain-error") throw new DomainError("NO_ACTIVE_KEY", "no active signing key", { hint: "rotate" });
        if (req.typ === "unmapped-domain-error") {
          // Only an untyped string at run time can miss the table (the type forbids it): it must still answer Internal.
          throw new DomainError("NOT_IN_THE_TABLE" as ErrorCode, "whatever");
        }
        if (req.typ === "crash") throw new Error("SELECT secret FROM keys failed at /srv/db.ts:12");
        return { token: `signed:${req.typ}`, kid: "k1" };
      },
      // CreateKey and the rest are deliberately left out: connect answers Unimplemented.
    });
  };
}

/** Fresh counters. */
export function newCalls(): Calls {
  return { getJwks: 0, listKeys: 0, sign: 0 };
}

/** The error a call failed with; fails the test if the call succeeded. */
export async function failure(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (e) {
    return ConnectError.from(e);
  }
  throw new Error("expected the call to fail, it succeeded");
}

/** A promise with its resolve function (node 20 has no Promise.withResolvers). */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}
