/**
 * The licence a command acts on must be its deployment's current one (revoke and rebind alike):
 * checked before the change, and again inside each decision against a concurrent IssueLicense.
 */
import { DomainError } from "@lcp/rpc";
import type { Loaded } from "../core/deployment-change.js";
import type { LicensingDeps } from "../deps.js";
import type { LicenseRow } from "../storage/entities.js";
import { loadLicense } from "../storage/repository.js";

/**
 * Loads the licence a command names and checks it is its deployment's current one. A superseded
 * licence is refused (LICENSE_SUPERSEDED): the binding moved to the newer licence, which is the one
 * to revoke or rebind.
 */
export async function requireCurrentLicense(deps: LicensingDeps, licenseId: string): Promise<LicenseRow> {
  const license = await loadLicense(deps.db.em(), licenseId);
  if (!license) throw new DomainError("NOT_FOUND", `licence ${licenseId} does not exist`, { licenseId });
  if (license.supersededBy && !license.revokedAt) {
    throw new DomainError(
      "LICENSE_SUPERSEDED",
      `licence ${licenseId} was superseded by licence ${license.supersededBy}; act on that one`,
      { licenseId, supersededBy: license.supersededBy },
    );
  }
  return license;
}

/** Re-checked inside each decision: a concurrent IssueLicense may have superseded the licence meanwhile. */
export function assertStillCurrent(loaded: Loaded, licenseId: string): void {
  if (loaded.deployment.licenseId !== licenseId) {
    throw new DomainError("LICENSE_SUPERSEDED", `licence ${licenseId} was superseded by a newer licence of its deployment`, {
      licenseId,
    });
  }
}
