/**
 * The control plane's contracts as protobuf-es descriptors. Import message types from their
 * generated module (`@lcp/proto/licensing/v1/licensing_service_pb`); this index lists the
 * services, so a test can enumerate every RPC and reflection can serve every file.
 */
import type { DescFile, DescService } from "@bufbuild/protobuf";
import { AuditService, file_audit_v1_audit_service } from "./gen/audit/v1/audit_service_pb.js";
import { FleetSweepService, file_fleet_v1_fleet_sweep_service } from "./gen/fleet/v1/fleet_sweep_service_pb.js";
import { ApplianceService, file_licensing_v1_appliance_service } from "./gen/licensing/v1/appliance_service_pb.js";
import { LicensingService, file_licensing_v1_licensing_service } from "./gen/licensing/v1/licensing_service_pb.js";
import { ReconcileService, file_licensing_v1_reconcile_service } from "./gen/licensing/v1/reconcile_service_pb.js";
import { SigningKeyService, file_signing_v1_signing_key_service } from "./gen/signing/v1/signing_key_service_pb.js";
import { OutboxService, file_ops_v1_outbox_service } from "./gen/ops/v1/outbox_service_pb.js";

export { AuditService, FleetSweepService, ApplianceService, LicensingService, ReconcileService, SigningKeyService, OutboxService };

/** Every control-plane service (not health or reflection), in the order of docs/design.md §2. */
export const controlPlaneServices: readonly DescService[] = [
  LicensingService,
  ApplianceService,
  ReconcileService,
  SigningKeyService,
  AuditService,
  FleetSweepService,
  // Served by each service that relays an audit outbox, about its own outbox.
  OutboxService,
];

/** The files that declare the control-plane services (their imports follow from `dependencies`). */
export const controlPlaneFiles: readonly DescFile[] = [
  file_licensing_v1_licensing_service,
  file_licensing_v1_appliance_service,
  file_licensing_v1_reconcile_service,
  file_signing_v1_signing_key_service,
  file_audit_v1_audit_service,
  file_fleet_v1_fleet_sweep_service,
  file_ops_v1_outbox_service,
];

export { openApiDocument } from "./openapi.js";
