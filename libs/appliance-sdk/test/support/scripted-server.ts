/**
 * A scripted ApplianceService on connect's in-memory router transport: real signed licence and
 * lease tokens (Ed25519, @lcp/tokens), real certificates issued from the box's CSR (@lcp/testing/pki),
 * and switches for outages and failures. It plays the contract, not the real licensing app; the
 * real server is proven against the SDK in test/e2e.
 */
import { createHash } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createRouterTransport, type Transport } from "@connectrpc/connect";
import { issueCertificateFromCsr, loadCertificateAuthority, type CertificateAuthority } from "@lcp/pki";
import {
  ActivateResponseSchema,
  ApplianceService,
  HeartbeatResponseSchema,
  SendHeartbeatResponseSchema,
  type ActivateRequest,
  type HeartbeatRequest,
  type HeartbeatResponse,
  type SendHeartbeatRequest,
} from "@lcp/proto/licensing/v1/appliance_service_pb";
import { DeploymentState, DirectiveSchema, DirectiveType, type Directive } from "@lcp/proto/licensing/v1/types_pb";
import { createTestPki, type TestPki } from "@lcp/testing/pki";
import { TOKEN_TYPES, buildJwks, generateSigningKey, leaseClaims, licenseClaims, signJwt, type GeneratedSigningKey } from "@lcp/tokens";
import type { MessageInitShape } from "@bufbuild/protobuf";

export const ISSUER = "https://lcp.test/licensing";
export const LICENSE_ID = "lic-0001";
export const DEPLOYMENT_ID = "dep-0001";
export const FINGERPRINT = "box-serial-0001";

/** One held Heartbeat stream, as the server sees it. */
export interface ServerStream {
  readonly requests: HeartbeatRequest[];
  push(response: HeartbeatResponse): void;
  /** Ends the stream (with an error, as a dying server would). */
  end(error?: Error): void;
  readonly closed: boolean;
}

/** Options of {@link createScriptedServer}. */
export interface ScriptedServerOptions {
  /** The control plane's true time (not the box's). */
  serverClock: () => number;
  graceWindowMs?: number;
  heartbeatIntervalMs?: number;
  maxClockSkewMs?: number;
}

/** What {@link createScriptedServer} returns. */
export interface ScriptedServer {
  readonly transport: Transport;
  readonly pki: TestPki;
  readonly signingKey: GeneratedSigningKey;
  readonly licenseToken: string;
  readonly activations: ActivateRequest[];
  readonly unaryCalls: SendHeartbeatRequest[];
  readonly streams: ServerStream[];
  /** Every call fails with Unavailable (licensing stopped, network cut); open streams die. */
  unreachable: boolean;
  /** Every call throws a plain Error (a buggy server: Internal). */
  throwing: boolean;
  /** Answer each beat with an ack (default true). */
  autoAck: boolean;
  /** Refuse Activate and the stream with this ErrorInfo-less domain failure. */
  refuseWith: ConnectError | null;
  /** Directives queued for the next unary call. */
  readonly unaryDirectives: Directive[];
  /** The latest open stream. */
  current(): ServerStream | undefined;
  /** Signs a lease (real Ed25519); defaults: next seq, ACTIVE, the server's key, now, our box. */
  signLease(opts?: { seq?: number; st?: "ACTIVE" | "SUSPENDED"; key?: GeneratedSigningKey; issuedAt?: number; fingerprint?: string; licenseId?: string }): string;
  /** The next seq signLease would use. */
  nextSeq(): number;
  /** A directive message. */
  directive(type: DirectiveType, init?: Partial<MessageInitShape<typeof DirectiveSchema>>): Directive;
  /** Pushes a directive on the current stream. */
  pushDirective(type: DirectiveType, init?: Partial<MessageInitShape<typeof DirectiveSchema>>): Directive;
  jwksJson(keys?: GeneratedSigningKey[]): string;
}

class ResponseQueue {
  private items: HeartbeatResponse[] = [];
  private wake: (() => void) | null = null;
  private done = false;
  private error: Error | undefined;
  push(r: HeartbeatResponse) {
    if (this.done) return;
    this.items.push(r);
    this.wake?.();
  }
  end(error?: Error) {
    if (this.done) return;
    this.done = true;
    this.error = error;
    this.wake?.();
  }
  get closed() {
    return this.done;
  }
  async *drain(): AsyncGenerator<HeartbeatResponse> {
    for (;;) {
      if (this.items.length > 0) {
        yield this.items.shift()!;
        continue;
      }
      if (this.done) {
        if (this.error) throw this.error;
        return;
      }
      await new Promise<void>((r) => (this.wake = r));
      this.wake = null;
    }
  }
}

/** Creates a scripted server (see the file comment). */
export async function createScriptedServer(options: ScriptedServerOptions): Promise<ScriptedServer> {
  const pki = await createTestPki();
  const applianceCa: CertificateAuthority = await loadCertificateAuthority(pki.applianceCa);
  const signingKey = await generateSigningKey();
  const graceWindowMs = options.graceWindowMs ?? 60_000;
  const heartbeatIntervalMs = options.heartbeatIntervalMs ?? 1_000;
  const maxClockSkewMs = options.maxClockSkewMs ?? 5_000;
  const now = options.serverClock;
  let seq = 0;
  let directiveSeq = 0;

  const licenseToken = signJwt({
    typ: TOKEN_TYPES.license,
    claims: { ...licenseClaims({ licenseId: LICENSE_ID, deploymentId: DEPLOYMENT_ID, entitlements: ["imaging"], notBefore: new Date(now() - 86_400_000), expiresAt: new Date(now() + 365 * 86_400_000) }) },
    kid: signingKey.kid,
    privateKeyPkcs8Pem: signingKey.privateKeyPkcs8Pem,
    issuer: ISSUER,
    now: new Date(now()),
  });

  const server: ScriptedServer = {
    transport: undefined as unknown as Transport,
    pki,
    signingKey,
    licenseToken,
    activations: [],
    unaryCalls: [],
    streams: [],
    unreachable: false,
    throwing: false,
    autoAck: true,
    refuseWith: null,
    unaryDirectives: [],
    current: () => server.streams.at(-1),
    nextSeq: () => seq + 1,
    signLease(opts = {}) {
      const s = opts.seq ?? ++seq;
      if (s > seq) seq = s;
      const key = opts.key ?? signingKey;
      const issuedAt = opts.issuedAt ?? now();
      return signJwt({
        typ: TOKEN_TYPES.lease,
        claims: {
          ...leaseClaims({
            licenseId: opts.licenseId ?? LICENSE_ID,
            deploymentId: DEPLOYMENT_ID,
            fingerprintHash: createHash("sha256").update(opts.fingerprint ?? FINGERPRINT, "utf8").digest("hex"),
            status: opts.st ?? "ACTIVE",
            seq: s,
            issuedAt: new Date(issuedAt),
            graceWindowMs,
          }),
        },
        kid: key.kid,
        privateKeyPkcs8Pem: key.privateKeyPkcs8Pem,
        issuer: ISSUER,
        now: new Date(issuedAt),
      });
    },
    directive(type, init = {}) {
      const base: MessageInitShape<typeof DirectiveSchema> = { id: `dir-${++directiveSeq}`, type, issueTime: timestampFromMs(now()) };
      return create(DirectiveSchema, { ...base, ...init } as MessageInitShape<typeof DirectiveSchema>);
    },
    pushDirective(type, init = {}) {
      const d = server.directive(type, init);
      const stream = server.current();
      if (!stream || stream.closed) throw new Error("no open stream to push a directive on");
      stream.push(create(HeartbeatResponseSchema, { kind: { case: "directive", value: d } }));
      return d;
    },
    jwksJson(keys = [signingKey]) {
      return JSON.stringify(buildJwks(keys.map((k) => k.publicJwk)));
    },
  };

  const gate = () => {
    if (server.throwing) throw new Error("scripted server bug");
    if (server.unreachable) throw new ConnectError("licensing is unreachable", Code.Unavailable);
    if (server.refuseWith) throw server.refuseWith;
  };

  const transport = createRouterTransport(({ service }) => {
    service(ApplianceService, {
      async activate(req) {
        gate();
        server.activations.push(req);
        const issued = await issueCertificateFromCsr(applianceCa, {
          csrPem: req.csrPem,
          spiffeId: pki.applianceId(DEPLOYMENT_ID),
          validityMs: 30 * 86_400_000,
        });
        if (!issued.ok) throw new ConnectError(issued.message, Code.InvalidArgument);
        return create(ActivateResponseSchema, {
          deploymentId: DEPLOYMENT_ID,
          certificatePem: issued.certPem,
          certificateChainPem: [pki.applianceCa.certPem],
          leaseToken: server.signLease({ fingerprint: req.fingerprint }),
          jwksJson: server.jwksJson(),
          settings: {
            heartbeatInterval: durationFromMs(heartbeatIntervalMs),
            graceWindow: durationFromMs(graceWindowMs),
            maxClockSkew: durationFromMs(maxClockSkewMs),
          },
          state: DeploymentState.ACTIVE,
          serverTime: timestampFromMs(now()),
        });
      },
      async *heartbeat(requests) {
        gate();
        const queue = new ResponseQueue();
        const stream: ServerStream = {
          requests: [],
          push: (r) => queue.push(r),
          end: (e) => queue.end(e),
          get closed() {
            return queue.closed;
          },
        };
        server.streams.push(stream);
        void (async () => {
          try {
            for await (const req of requests) {
              stream.requests.push(req);
              if (req.kind.case === "beat" && server.autoAck && !server.unreachable) {
                queue.push(
                  create(HeartbeatResponseSchema, {
                    kind: { case: "ack", value: { nonce: req.kind.value.nonce, serverTime: timestampFromMs(now()), state: DeploymentState.ACTIVE } },
                  }),
                );
              }
            }
            queue.end();
          } catch (e) {
            queue.end(e as Error);
          }
        })();
        yield* queue.drain();
      },
      async sendHeartbeat(req) {
        gate();
        server.unaryCalls.push(req);
        const directives = server.unaryDirectives.filter((d) => !req.ackedDirectiveIds.includes(d.id));
        server.unaryDirectives.splice(0, server.unaryDirectives.length, ...directives);
        return create(SendHeartbeatResponseSchema, { serverTime: timestampFromMs(now()), state: DeploymentState.ACTIVE, directives });
      },
    });
  });
  (server as { transport: Transport }).transport = transport;

  // Going unreachable kills the streams that are open, as a stopped licensing process would.
  let unreachable = false;
  Object.defineProperty(server, "unreachable", {
    get: () => unreachable,
    set: (v: boolean) => {
      unreachable = v;
      if (v) for (const s of server.streams) s.end(new ConnectError("licensing went away", Code.Unavailable));
    },
  });
  return server;
}

/** Ids of every DirectiveAck the box sent on a stream. */
export function ackedIds(stream: ServerStream | undefined): string[] {
  return (stream?.requests ?? []).flatMap((r) => (r.kind.case === "ack" ? r.kind.value.directiveIds : []));
}

/** Number of beats the box sent on a stream. */
export function beatCount(stream: ServerStream | undefined): number {
  return (stream?.requests ?? []).filter((r) => r.kind.case === "beat").length;
}

export { DirectiveType };
