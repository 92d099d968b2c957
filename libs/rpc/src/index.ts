/**
 * @lcp/rpc — what every app's server and client is built from: one TLS listener serving
 * Connect, gRPC and gRPC-Web with mTLS/bearer authentication, the system policy table, error
 * mapping, logging, health, reflection, Prometheus metrics and graceful shutdown; typed clients
 * with safe retries; and the shared environment parsing.
 */
export * from "./principal.js";
export * from "./errors.js";
export * from "./peer-errors.js";
export * from "./policy.js";
export {
  chainsTo,
  createAuthenticator,
  peerFromSocket,
  peerKey,
  type AdminTokenVerifierLike,
  type ApplianceCheck,
  type Authenticator,
  type AuthnOptions,
  type PeerInfo,
} from "./authn.js";
export * from "./interceptors.js";
export * from "./health.js";
export * from "./admin-server.js";
export * from "./metrics.js";
export * from "./reflection.js";
export * from "./server.js";
export * from "./tls-material.js";
export * from "./tls-reload.js";
export * from "./raw-stream.js";
export * from "./raw-bidi.js";
export { frame, FRAME_HEADER_BYTES, GrpcFrameReader, writeFrameHeader } from "./grpc-frame.js";
export { connectionLimitsOf, DEFAULT_CONNECTION_LIMITS, type ConnectionLimits } from "./connections.js";
export { createPublicStreamBudget, DEFAULT_MAX_PUBLIC_STREAMS, type PublicStreamBudget } from "./public-streams.js";
export * from "./client.js";
export * from "./logger.js";
export * from "./tracing.js";
export * from "./config.js";
export * from "./audit-fields.js";
export {
  coalesceDenials,
  coalesceRepeats,
  DEFAULT_DENIED_AUDIT_WINDOW_MS,
  type CoalescedDenials,
  type CoalescedRepeats,
  type DenialCoalescingOptions,
  type RepeatCoalescingOptions,
} from "./denial-audit.js";
export * from "./outbox-admin.js";
export * from "./codec/states.js";
export { compileHttpRoutes, type HttpRoutes, type HttpRoute } from "./http-rules.js";
export { OPENAPI_PATH, sendOpenApi } from "./openapi.js";
