/**
 * What licensing's handlers need, assembled once by `startLicensing`: the core (storage, clock,
 * signing, directive seam, logs) plus the signing-keys gateway and the token issuer.
 */
import { DomainError } from "@lcp/rpc";
import type { CoalescedRepeats } from "@lcp/rpc";
import type { AuditSpec, CallContext, RefusedCall } from "./core/audit.js";
import type { CoreDeps } from "./core/deployment-change.js";
import type { SigningKeysGateway } from "./signing-keys.js";
import type { OfflineResponseSigner } from "@lcp/tokens";

/** The handlers' dependencies. */
export interface LicensingDeps extends CoreDeps {
  signing: SigningKeysGateway;
  /** `iss` of our tokens (verification pins it). */
  tokenIssuer: string;
  trustDomain: string;
  /**
   * What signs the answers to air-gapped boxes' files: licensing's own service key and certificate
   * chain, read at each answer so a reloaded certificate signs from then on.
   */
  offlineSigner: () => OfflineResponseSigner;
  /** Where handlers' refusals are audited, coalesced like `authz.denied` (core/audit.ts createRefusalAudit). */
  refusals: CoalescedRepeats<RefusedCall>;
}

/**
 * Runs a command and, if it is refused (a DomainError: bad input, unknown id, a domain verdict),
 * records the refusal with outcome DENIED before rethrowing — through `deps.refusals`, so a refusal
 * repeated within the denied-audit window is counted, not written again. The refused change never
 * committed, so the record is written on its own; failing to write it is logged and never changes
 * the caller's answer.
 */
export async function auditRefusals<T>(
  deps: LicensingDeps,
  call: CallContext,
  spec: Omit<AuditSpec, "outcome"> | (() => Omit<AuditSpec, "outcome">),
  run: () => Promise<T>,
): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof DomainError) {
      const s = typeof spec === "function" ? spec() : spec;
      try {
        await deps.refusals.record({ call, spec: s, refusal: { code: err.code, message: err.message } });
      } catch (auditErr) {
        deps.log.error({ err: auditErr, action: s.action }, "could not record a refusal in the outbox");
      }
    }
    throw err;
  }
}
