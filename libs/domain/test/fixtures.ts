// Fixtures named by state, on seconds-scale settings like the service tests use.
import { type DeploymentFacts, type Settings, INITIAL_FACTS } from "../src/index.js";

export const S = 1_000;
export const T0 = 1_700_000_000_000;

/** Seconds-scale settings: interval 1 s, timeout 3 s, grace 10 s, renew 5 s, skew 2 s, sweep 1 s; air-gapped lease 20 s, renew 15 s. */
export const fastSettings: Settings = {
  heartbeatIntervalMs: 1 * S,
  heartbeatTimeoutMs: 3 * S,
  graceWindowMs: 10 * S,
  leaseRenewAfterMs: 5 * S,
  maxClockSkewMs: 2 * S,
  sweepIntervalMs: 1 * S,
  airGappedLeaseMs: 20 * S,
  airGappedRenewAfterMs: 15 * S,
};

export const provisionedDeployment: DeploymentFacts = { ...INITIAL_FACTS };
export const issuedLicense: DeploymentFacts = { ...INITIAL_FACTS, licenseExpiresAt: T0 + 1_000 * S };
export const activeDeployment: DeploymentFacts = {
  ...issuedLicense,
  activatedAt: T0,
  boundFingerprintHash: "fp-a",
  lastSeenAt: T0,
};
export const revokedLicense: DeploymentFacts = { ...activeDeployment, licenseRevoked: true };
export const expiredLicense: DeploymentFacts = { ...activeDeployment, licenseExpiresAt: T0 };
export const suspendedDeployment: DeploymentFacts = { ...activeDeployment, subscriptionValid: false };
/** An active deployment whose box is air-gapped (renewed by file). */
export const airGappedDeployment: DeploymentFacts = { ...activeDeployment, airGapped: true };
