/** The row of a freshly issued licence, shared by IssueLicense and ProvisionDeployment's auto-issue. */
import type { LicenseRow } from "../storage/entities.js";

/** What a new licence is made of. */
export interface NewLicense {
  id: string;
  deploymentId: string;
  customer: string;
  entitlements: readonly string[];
  /** The signed licence token and the key that signed it. */
  signed: { token: string; kid: string };
  issuedAt: Date;
  expiresAt: Date;
  /** The licence it replaces, if any. */
  previous?: Pick<LicenseRow, "leaseSeq" | "leaseIssuedAt"> | null;
}

/** An unbound, unrevoked licence row. */
export function newLicenseRow(input: NewLicense): LicenseRow {
  return {
    id: input.id,
    deploymentId: input.deploymentId,
    customer: input.customer,
    entitlements: JSON.stringify(input.entitlements),
    token: input.signed.token,
    kid: input.signed.kid,
    fingerprintHash: null,
    issuedAt: input.issuedAt,
    expiresAt: input.expiresAt,
    activatedAt: null,
    revokedAt: null,
    revokeReason: null,
    supersededAt: null,
    supersededBy: null,
    // Lease seqs continue across licences of a deployment, so a box never sees one go backwards.
    leaseSeq: input.previous?.leaseSeq ?? 0,
    leaseIssuedAt: input.previous?.leaseIssuedAt ?? null,
  };
}
