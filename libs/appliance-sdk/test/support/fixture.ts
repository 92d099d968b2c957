/** One box against the scripted server, with a fake clock and a temp state directory. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  createAppliance,
  type Appliance,
  type ApplianceOptions,
  type DirectiveEvent,
  type LeaseRejectedEvent,
  type StateChangeEvent,
} from "@lcp/appliance-sdk";
import { ManualClock } from "./manual-clock.js";
import { FINGERPRINT, ISSUER, LICENSE_ID, createScriptedServer, type ScriptedServer, type ScriptedServerOptions } from "./scripted-server.js";

/** Whole seconds, so lease exp (JWT seconds) lands exactly on iat + grace window. */
export const T0 = Math.floor(Date.now() / 1000) * 1000;

/** Everything an appliance emitted, in order. */
export interface Recorded {
  states: Array<StateChangeEvent & { at: number }>;
  rejections: LeaseRejectedEvent[];
  directives: DirectiveEvent[];
  errors: Error[];
}

/** Subscribes to every event of an appliance. */
export function record(appliance: Appliance): Recorded {
  const r: Recorded = { states: [], rejections: [], directives: [], errors: [] };
  appliance.on("state", (e) => r.states.push(e));
  appliance.on("lease-rejected", (e) => r.rejections.push(e));
  appliance.on("directive", (e) => r.directives.push(e));
  appliance.on("error", (e) => r.errors.push(e));
  return r;
}

/** A test world: clock, server, state dir, and a factory for boxes sharing them. */
export interface World {
  clock: ManualClock;
  server: ScriptedServer;
  dir: string;
  stateFile: string;
  make(extra?: Partial<ApplianceOptions>): Promise<Appliance>;
  close(): Promise<void>;
}

/** Builds a {@link World}; `close()` stops every box made and removes the directory. */
export async function createWorld(options: Partial<Omit<ScriptedServerOptions, "serverClock">> = {}): Promise<World> {
  const dir = await mkdtemp(join(tmpdir(), "appliance-sdk-"));
  const clock = new ManualClock(T0);
  const server = await createScriptedServer({ serverClock: clock.trueNow, graceWindowMs: 60_000, heartbeatIntervalMs: 1_000, maxClockSkewMs: 5_000, ...options });
  const made: Appliance[] = [];
  const stateFile = join(dir, "box", "state.json");
  return {
    clock,
    server,
    dir,
    stateFile,
    async make(extra = {}) {
      const box = await createAppliance({
        baseUrl: "https://licensing.invalid:7443",
        caPem: server.pki.ca.certPem,
        licenseId: LICENSE_ID,
        licenseToken: server.licenseToken,
        fingerprint: FINGERPRINT,
        stateFile,
        issuer: ISSUER,
        clock: clock.now,
        scheduler: clock,
        transport: server.transport,
        random: () => 0.5,
        backoff: { initialMs: 1_000, maxMs: 8_000 },
        ...extra,
      });
      made.push(box);
      return box;
    },
    async close() {
      for (const box of made) await box.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
