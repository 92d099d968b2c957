/**
 * ApplianceService.Heartbeat (bidi stream) and SendHeartbeat (unary, also over HTTP/1.1): "The
 * appliance renews by heartbeat (POST /licenses/:id/heartbeat)". Identity and the certificate
 * serial were checked once when the call opened (libs/rpc authn + licensing's checkAppliance);
 * everything after that is session.ts.
 *
 * The stream's two directions run independently: a reader task feeds the box's messages to the
 * session one at a time, and the response generator drains the session's queue, into which the
 * reader (acks), the hub (pushed directives) and background work (lease and certificate
 * renewals) all push. A refusal ends the queue with the error after what was queued before it,
 * so "LOCK, then FailedPrecondition" reaches the box in that order.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { SendHeartbeatResponseSchema, type ApplianceService, type HeartbeatRequest } from "@lcp/proto/licensing/v1/appliance_service_pb";
import { lockReasonToProto, principalKey, shuttingDownError, stateToProto, type AppliancePrincipal } from "@lcp/rpc";
import { callContextOf } from "../core/audit.js";
import { createPushQueue } from "./push-queue.js";
import { ackMessage, type HeartbeatContext, type HeartbeatOut, type HeartbeatOutlet } from "./context.js";
import { validateHello } from "./hello.js";
import { HeartbeatStream, requireAppliance } from "./session.js";
import { unaryHeartbeat } from "./unary.js";

function appliancePrincipal(ctx: HandlerContext): AppliancePrincipal {
  return requireAppliance(ctx.values.get(principalKey));
}

/** Builds the Heartbeat and SendHeartbeat handlers. */
export function createHeartbeatHandlers(hb: HeartbeatContext): Pick<ServiceImpl<typeof ApplianceService>, "heartbeat" | "sendHeartbeat"> {
  return {
    async *heartbeat(requests: AsyncIterable<HeartbeatRequest>, ctx: HandlerContext): AsyncIterable<HeartbeatOut> {
      const principal = appliancePrincipal(ctx);
      const out = createPushQueue<HeartbeatOut>();
      const outlet: HeartbeatOutlet = {
        push: (m) => out.push(m),
        ack: (nonce, nowMs, derived) => out.push(ackMessage(nonce, nowMs, derived)),
        fail: (e) => out.fail(e),
        close: () => out.close(),
      };
      const stream = new HeartbeatStream(hb, principal, callContextOf(ctx).requestId, outlet);
      // Server shutdown (or the box going away) ends the call: end our side too, so a graceful
      // close does not wait out its grace period on streams that would never finish.
      const onAbort = () => out.fail(shuttingDownError());
      if (ctx.signal.aborted) onAbort();
      else ctx.signal.addEventListener("abort", onAbort, { once: true });
      void (async () => {
        try {
          for await (const message of requests) {
            if (stream.isClosed) break;
            await stream.onMessage(message);
          }
          // The box half-closed: nothing more to answer.
          out.close();
        } catch (err) {
          out.fail(err);
        } finally {
          stream.dispose();
        }
      })();
      try {
        yield* out;
      } finally {
        ctx.signal.removeEventListener("abort", onAbort);
        stream.dispose();
      }
    },

    async sendHeartbeat(req, ctx) {
      const principal = appliancePrincipal(ctx);
      const input = validateHello(req);
      const result = await unaryHeartbeat(hb, principal, callContextOf(ctx), input, req.ackedDirectiveIds);
      return create(SendHeartbeatResponseSchema, {
        serverTime: timestampFromMs(result.now.getTime()),
        state: stateToProto(result.derived.state),
        lockReason: lockReasonToProto(result.derived.lockReason),
        directives: result.directives,
      });
    },
  };
}
