import { durationMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { LicensingService, type SendDirectiveRequest } from "@lcp/proto/licensing/v1/licensing_service_pb";
import { DirectiveType } from "@lcp/proto/licensing/v1/types_pb";
import { DomainError, toConnectError } from "@lcp/rpc";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { directiveOutcomeText, emptyDirectiveForm, OPERATOR_DIRECTIVES, validateDirectiveForm, type DirectiveForm } from "../src/lib/directive.js";
import { describeError } from "../src/lib/errors.js";
import { createConsoleTransport } from "../src/lib/transport.js";
import { startTestApi, type TestApi } from "./support.js";

const ID = "01890a5d-ac96-774b-bcce-b302099a8057";
const form = (patch: Partial<DirectiveForm>): DirectiveForm => ({ ...emptyDirectiveForm(ID), type: String(DirectiveType.REFRESH_KEYS), ...patch });

function errorsOf(patch: Partial<DirectiveForm>): Readonly<Record<string, string>> {
  const r = validateDirectiveForm(form(patch));
  return r.ok ? {} : r.errors;
}

describe("the Send directive form", () => {
  it("offers exactly the four directives SendDirective accepts from an operator", () => {
    expect(OPERATOR_DIRECTIVES.map((d) => d.type)).toEqual([DirectiveType.REFRESH_KEYS, DirectiveType.SET_INTERVAL, DirectiveType.RENEW_LEASE, DirectiveType.RENEW_CERTIFICATE]);
    for (const stateDirective of [DirectiveType.LOCK, DirectiveType.SUSPEND, DirectiveType.REACTIVATE, DirectiveType.UNSPECIFIED]) {
      expect(errorsOf({ type: String(stateDirective) }).type, String(stateDirective)).toBe("Choose a directive.");
    }
    for (const junk of ["", "abc", "6.5", "-6", "99"]) expect(errorsOf({ type: junk }).type, junk).toBeDefined();
  });

  it("builds the request: a normalised deployment id, the type, the reason, and an interval only with SET_INTERVAL", () => {
    const refresh = validateDirectiveForm(form({ deploymentId: `  ${ID.toUpperCase()} `, reason: " keys rotated \n after an incident " }));
    expect(refresh).toMatchObject({ ok: true, intervalMs: null, request: { deploymentId: ID, type: DirectiveType.REFRESH_KEYS, reason: "keys rotated \n after an incident" } });
    expect(refresh.ok && "heartbeatInterval" in refresh.request).toBe(false);
    // An interval typed before switching to another directive is not sent.
    const lease = validateDirectiveForm(form({ type: String(DirectiveType.RENEW_LEASE), interval: { amount: "5", unit: "min" } }));
    expect(lease.ok).toBe(true);
    expect(lease.ok ? "heartbeatInterval" in lease.request : true).toBe(false);
    const interval = validateDirectiveForm(form({ type: String(DirectiveType.SET_INTERVAL), interval: { amount: "1.5", unit: "min" } }));
    expect(interval.ok && interval.intervalMs).toBe(90_000);
    expect(interval.ok && durationMs(interval.request.heartbeatInterval!)).toBe(90_000);
  });

  it("refuses an interval outside 1 s to 1 h, or one that is not a number, on the interval field", () => {
    const set = String(DirectiveType.SET_INTERVAL);
    expect(validateDirectiveForm(form({ type: set, interval: { amount: "1", unit: "s" } })).ok).toBe(true);
    expect(validateDirectiveForm(form({ type: set, interval: { amount: "1", unit: "h" } })).ok).toBe(true);
    for (const interval of [
      { amount: "999", unit: "ms" },
      { amount: "0", unit: "s" },
      { amount: "61", unit: "min" },
      { amount: "2", unit: "d" },
      { amount: "-5", unit: "s" },
      { amount: "1e3", unit: "s" },
      { amount: "", unit: "s" },
      { amount: "ten", unit: "s" },
    ] as const) {
      expect(errorsOf({ type: set, interval }).heartbeat_interval, JSON.stringify(interval)).toBeDefined();
    }
  });

  it("refuses a deployment id that is not a UUID, and says what one looks like", () => {
    for (const deploymentId of ["", "   ", "icu-ward-3", `${ID}x`, `${ID}' OR 1=1 --`, "../../etc/passwd", ID.replace(/-/g, "")]) {
      expect(errorsOf({ deploymentId }).deployment_id, deploymentId).toBeDefined();
    }
    expect(errorsOf({ deploymentId: "" }).deployment_id).toBe("Enter the deployment ID.");
  });

  it("refuses a reason the audit trail would refuse: control, bidi and separator characters, or over 1024 characters", () => {
    expect(validateDirectiveForm(form({ reason: "" })).ok).toBe(true);
    expect(validateDirectiveForm(form({ reason: "a".repeat(1024) })).ok).toBe(true);
    for (const reason of ["a".repeat(1025), "bad\u0000byte", "carriage\rreturn", "evil\u202Etxt.exe", "line\u2028split", "esc\u001b[31m"]) {
      expect(errorsOf({ reason }).reason, JSON.stringify(reason.slice(0, 20))).toBeDefined();
    }
  });

  it("reports every problem at once, each on its field", () => {
    const r = validateDirectiveForm({ deploymentId: "nope", type: "", interval: { amount: "x", unit: "s" }, reason: "\u0000" });
    expect(r.ok).toBe(false);
    expect(Object.keys(r.ok ? {} : r.errors).sort()).toEqual(["deployment_id", "reason", "type"]);
  });

  it("says whether the box got it now or will on reconnect", () => {
    expect(directiveOutcomeText("Refresh keys", true)).toMatch(/^Refresh keys was delivered now/);
    expect(directiveOutcomeText("Renew lease", false)).toMatch(/^Renew lease is queued: .*when it next connects/);
  });
});

describe("sending the form", () => {
  let api: TestApi;
  const received: SendDirectiveRequest[] = [];
  beforeAll(async () => {
    api = await startTestApi((router) =>
      router.service(LicensingService, {
        sendDirective: (req) => {
          received.push(req);
          if (req.type === DirectiveType.SET_INTERVAL && req.heartbeatInterval && durationMs(req.heartbeatInterval) > 1_800_000) {
            // The shape of the service's own refusal (libs/rpc's mapping of a DomainError with a field).
            throw toConnectError(new DomainError("SETTINGS_OUT_OF_RANGE", "heartbeat_interval must be between 1 s and 1 h", { field: "heartbeat_interval" }));
          }
          if (req.deploymentId === "01890a5d-0000-7000-8000-000000000000") throw toConnectError(new DomainError("NOT_ACTIVATED", "no box is activated on this deployment"));
          return { directive: { id: "d-1", type: req.type, reason: req.reason }, delivered: req.type === DirectiveType.REFRESH_KEYS };
        },
      }),
    );
  });
  afterAll(() => api.close());
  const client = () => createClient(LicensingService, createConsoleTransport({ baseUrl: api.baseUrl, csrfToken: () => "t", onUnauthenticated: () => {} }));

  it("arrives as the service reads it, with the interval as a Duration only for SET_INTERVAL", async () => {
    for (const f of [form({}), form({ type: String(DirectiveType.SET_INTERVAL), interval: { amount: "30", unit: "s" }, reason: "calm the fleet" })]) {
      const checked = validateDirectiveForm(f);
      if (!checked.ok) throw new Error("form refused");
      const res = await client().sendDirective(checked.request);
      expect(res.directive?.id).toBe("d-1");
    }
    const [refresh, interval] = received.slice(-2);
    expect(refresh).toMatchObject({ deploymentId: ID, type: DirectiveType.REFRESH_KEYS, reason: "" });
    expect(refresh?.heartbeatInterval).toBeUndefined();
    expect(interval?.type).toBe(DirectiveType.SET_INTERVAL);
    expect(durationMs(interval!.heartbeatInterval!)).toBe(30_000);
    expect(interval?.reason).toBe("calm the fleet");
  });

  it("puts the service's refusal of the interval on the interval field the form uses, and a state refusal in words", async () => {
    const checked = validateDirectiveForm(form({ type: String(DirectiveType.SET_INTERVAL), interval: { amount: "45", unit: "min" } }));
    if (!checked.ok) throw new Error("form refused");
    const err = await client().sendDirective(checked.request).catch((e: unknown) => e);
    expect(describeError(err).fieldErrors.heartbeat_interval).toBe("heartbeat_interval must be between 1 s and 1 h");

    const notActive = validateDirectiveForm(form({ deploymentId: "01890a5d-0000-7000-8000-000000000000" }));
    if (!notActive.ok) throw new Error("form refused");
    const refused = describeError(await client().sendDirective(notActive.request).catch((e: unknown) => e));
    expect(refused.reason).toBe("NOT_ACTIVATED");
    expect(refused.message).toBe("no box is activated on this deployment");
  });
});
