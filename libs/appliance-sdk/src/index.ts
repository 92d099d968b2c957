/**
 * @lcp/appliance-sdk — what an appliance embeds: activate with a CSR, hold the heartbeat stream
 * over mTLS, verify leases offline and decide its own state (docs/design.md §4–§6, §8).
 *
 * ```ts
 * const box = await createAppliance({ baseUrl, caPem, licenseId, licenseToken, fingerprint, stateFile, issuer });
 * if (!box.isActivated()) await box.activate();
 * box.on("state", (s) => console.log(s.state, s.reason));
 * box.start();
 * ```
 *
 * An air-gapped box (no `baseUrl`) activates and renews by files an operator carries:
 *
 * ```ts
 * const request = await box.writeActivationRequest(); // carry it to the control plane
 * await box.importResponse(responseFile);             // its answer, carried back
 * box.on("renewal-due", () => void box.writeRenewalRequest({ scans: 42 }).then(carry));
 * box.start();
 * ```
 */
export {
  ActivationError,
  type ActivationResult,
  type Appliance,
  type ApplianceEvents,
  type ApplianceLogger,
  type ApplianceOptions,
  type ApplianceStateView,
  type ApplianceStatus,
  type DirectiveEvent,
  type DirectiveKind,
  type LeaseRejectedEvent,
  type LeaseReplacingEvent,
  type LicenseRenewedEvent,
  type OfflineImportResult,
  type OfflineResponseRefusedEvent,
  type RenewalDueEvent,
  type StateChangeEvent,
  type UnaryHeartbeatResult,
} from "./api.js";
export { createAppliance } from "./appliance.js";
export { deploymentIdFromLicenseToken } from "./activation.js";
export { DEFAULT_BACKOFF, backoffDelay, replacedDelay, type BackoffOptions } from "./backoff.js";
export { createEmitter, type EventMap, type TypedEmitter, type TypedEvents } from "./emitter.js";
export { checkLease, fingerprintHash, toApplianceLease, type LeaseCheck, type LeaseRejectionCode, type LeaseVerdict } from "./lease.js";
export { DEFAULT_LEASE_REPLACEMENT_MS, type LeaseReplacement } from "./key-set.js";
export {
  OfflineFileError,
  PENDING_REQUEST_SUFFIX,
  pendingRequestPath,
  type OfflineFileErrorCode,
  type OfflineRequestKind,
} from "./offline.js";
export { realScheduler, type Scheduler, type TimerHandle } from "./scheduler.js";
export { SessionTicketCache, refreshTicket, resumingConnection, type ClientTls } from "./tls-session.js";
export {
  STATE_FILE_VERSION,
  StateFileError,
  readStateFile,
  writeStateFile,
  type ApplianceRuntimeSettings,
  type ApplianceStateFile,
} from "./state-file.js";
export type { ApplianceLockReason, ApplianceState } from "@lcp/domain";
