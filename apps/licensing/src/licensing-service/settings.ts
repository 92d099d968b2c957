/**
 * GetSettings / UpdateSettings — screen licensing/settings. One settings row with a version:
 * an update applies the masked fields, validates the merged result against the domain's ranges
 * (e.g. grace window 1 s to 365 d, heartbeat_timeout < grace_window) and writes it with
 * compare-and-set on the version, so two operators editing at once cannot silently overwrite each
 * other (Aborted, reason CONFLICT). Audited settings.update in the same transaction.
 *
 * A settings change does not re-derive every deployment here: reads always derive with the
 * current settings, and the sweep records the transitions it causes.
 */
import { create } from "@bufbuild/protobuf";
import { applySettingsPatch } from "@lcp/domain";
import { isUniqueViolation, type Database } from "@lcp/persistence";
import {
  GetSettingsResponseSchema,
  UpdateSettingsResponseSchema,
  type UpdateSettingsRequest,
  type UpdateSettingsResponse,
  type GetSettingsResponse,
} from "@lcp/proto/licensing/v1/licensing_service_pb";
import { DomainError } from "@lcp/rpc";
import { recordEvent, type CallContext } from "../core/audit.js";
import type { LicensingDeps } from "../deps.js";
import { settingsToProto } from "../mapping.js";
import { settingsOf } from "../storage/repository.js";
import { SettingsEntity, type SettingsRow } from "../storage/entities.js";
import { defaultSettingsRow, loadSettingsRow, SETTINGS_ID } from "../storage/repository.js";
import { validateUpdateSettings } from "./validate.js";

/** Writes the default settings row (version 1) if there is none yet; safe to race across replicas. */
export async function ensureSettingsRow(db: Database, now: Date): Promise<void> {
  const em = db.em();
  if (await em.findOne(SettingsEntity, { id: SETTINGS_ID }, { disableIdentityMap: true })) return;
  try {
    await em.insert(SettingsEntity, { ...defaultSettingsRow(now), version: 1 });
  } catch (err) {
    // Another replica created it first: that is the row we wanted.
    if (!isUniqueViolation(err)) throw err;
  }
}

/** The current settings. */
export async function getSettings(deps: LicensingDeps): Promise<GetSettingsResponse> {
  const row = await loadSettingsRow(deps.db.em(), deps.now());
  return create(GetSettingsResponseSchema, { settings: settingsToProto(row) });
}

/** Updates settings; see the module comment. */
export async function updateSettings(deps: LicensingDeps, call: CallContext, req: UpdateSettingsRequest): Promise<UpdateSettingsResponse> {
  const input = validateUpdateSettings(req);
  const now = deps.now();
  const current = await loadSettingsRow(deps.db.em(), now);
  if (input.expectedVersion !== null && input.expectedVersion !== current.version) {
    throw new DomainError("CONFLICT", `settings are at version ${current.version}, not ${input.expectedVersion}; reload and retry`, {
      version: String(current.version),
    });
  }
  const before = settingsOf(current);
  const verdict = applySettingsPatch(before, input.patch);
  if (!verdict.ok) throw new DomainError(verdict.code, verdict.message, verdict.field ? { field: verdict.field } : {});
  const after = verdict.settings;
  const updated: SettingsRow = { ...current, ...after, version: current.version + 1, updatedAt: now };

  await deps.db.transactional(async (em) => {
    const affected = await em.nativeUpdate(
      SettingsEntity,
      { id: SETTINGS_ID, version: current.version },
      { ...after, version: updated.version, updatedAt: now },
    );
    if (affected !== 1) {
      throw new DomainError("CONFLICT", "settings were changed concurrently; reload and retry");
    }
    await deps.faults?.afterStateChange?.({ deploymentId: null, action: "settings.update" });
    const changed = (Object.keys(after) as (keyof typeof after)[]).filter((k) => after[k] !== before[k]);
    recordEvent(
      em,
      call,
      {
        action: "settings.update",
        resource: { type: "settings", id: String(SETTINGS_ID) },
        details: { changed, before, after, version: updated.version },
      },
      now,
    );
  });
  return create(UpdateSettingsResponseSchema, { settings: settingsToProto(updated) });
}
