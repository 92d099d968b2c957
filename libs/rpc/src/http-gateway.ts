/**
 * The product page's HTTP paths (`GET /licenses`, `POST /licenses/{license_id}/revoke` …) served
 * on a service's own listener, from the `google.api.http` rules of the services it registers
 * (docs/design.md §3). A matching request is turned into a Connect unary call and handed to the
 * registered Connect handler itself, so it passes the same interceptors as gRPC: authentication
 * (bearer token or client certificate), the policy table, denial audit, error mapping, logging and
 * metrics. The answer is proto3 JSON, an error `google.rpc.Status` JSON with the HTTP status of its
 * code. A path no rule matches is left to `fallback` (Connect's 404).
 */
import * as http2 from "node:http2";
import { createRegistry, fromBinary, toBinary, toJson, type DescFile, type DescService, type JsonObject, type JsonValue, type Registry } from "@bufbuild/protobuf";
import { Code, ConnectError, type ContextValues } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerRequest } from "@connectrpc/connect/protocol";
import { errorFromJsonBytes } from "@connectrpc/connect/protocol-connect";
import { file_google_rpc_error_details } from "@lcp/proto/google/rpc/error_details_pb";
import type { Logger } from "pino";
import { compileHttpRoutes, HttpRuleError, requestFor, type HttpMatch } from "./http-rules.js";
import type { RpcMetrics } from "./metrics.js";

type NodeRequest = http2.Http2ServerRequest;
type NodeResponse = http2.Http2ServerResponse;

/** What the gateway needs from the server it is part of. */
export interface HttpGatewayOptions {
  /** The registered Connect handlers (`router.handlers`): the rules are read from their services. */
  readonly handlers: readonly UniversalHandler[];
  /** The largest request body accepted, as for Connect (`readMaxBytes`). */
  readonly maxBodyBytes: number;
  /** The context values of a call (the peer), as the Connect adapter gives them. */
  readonly contextValues: (req: NodeRequest) => ContextValues;
  /** Answers requests no rule matches. */
  readonly fallback: (req: NodeRequest, res: NodeResponse) => void;
  readonly logger: Logger;
  /**
   * Where the gateway's own refusals are counted (`http_gateway_refusals_total` by HTTP status):
   * a wrong method, an unreadable body or query never reaches the handler, so the RPC metrics
   * and the call log never see them.
   */
  readonly metrics?: RpcMetrics;
}

/** The metric counting the gateway's own refusals, by HTTP status. */
export const HTTP_GATEWAY_REFUSALS_METRIC = "http_gateway_refusals_total";

/** gRPC code → HTTP status, as google.rpc.Code documents it (and grpc-gateway uses). */
export const HTTP_STATUS_OF_CODE: Readonly<Record<Code, number>> = {
  [Code.Canceled]: 499,
  [Code.Unknown]: 500,
  [Code.InvalidArgument]: 400,
  [Code.DeadlineExceeded]: 504,
  [Code.NotFound]: 404,
  [Code.AlreadyExists]: 409,
  [Code.PermissionDenied]: 403,
  [Code.ResourceExhausted]: 429,
  [Code.FailedPrecondition]: 400,
  [Code.Aborted]: 409,
  [Code.OutOfRange]: 400,
  [Code.Unimplemented]: 501,
  [Code.Internal]: 500,
  [Code.Unavailable]: 503,
  [Code.DataLoss]: 500,
  [Code.Unauthenticated]: 401,
};

/** The HTTP status a refusal of the gateway itself is answered with → its gRPC code. */
const CODE_OF_GATEWAY_STATUS: Readonly<Record<number, Code>> = { 400: Code.InvalidArgument, 405: Code.Unimplemented, 413: Code.ResourceExhausted, 414: Code.InvalidArgument, 415: Code.InvalidArgument };

// Request headers that describe the HTTP request, not the call: the internal Connect request sets its own.
const DROPPED_HEADERS = /^(?::|content-|accept-encoding$|connect-|grpc-|te$|transfer-encoding$|connection$|keep-alive$|upgrade$|host$)/;

/**
 * A node request listener for the HTTP rules of the handlers' services (one per listener: each
 * serves only the RPCs it registers). Throws at start when a rule is malformed.
 */
export function createHttpGateway(options: HttpGatewayOptions): (req: NodeRequest, res: NodeResponse) => void {
  const services = [...new Set(options.handlers.map((h) => h.service))];
  const routes = compileHttpRoutes(services);
  const handlerOf = new Map(options.handlers.map((h) => [h.method, h]));
  const registry = registryOf(services);
  const refusals = options.metrics?.counter(HTTP_GATEWAY_REFUSALS_METRIC, "Requests on the HTTP paths refused before reaching their RPC (method, body, query), by HTTP status.", ["status"]);
  // One place for the gateway's own refusals: counted, logged at debug (the path bounded), answered.
  const refuse = (req: NodeRequest, res: NodeResponse, status: number, code: Code, message: string, extra?: Record<string, string>) => {
    refusals?.inc({ status: String(status) });
    options.logger.debug({ method: req.method, path: (req.url ?? "").slice(0, 256), status, reason: message }, "HTTP path refused");
    sendStatus(res, req, status, code, message, extra);
  };
  return (req, res) => {
    const url = req.url ?? "";
    const q = url.indexOf("?");
    const path = q === -1 ? url : url.slice(0, q);
    const found = routes.routes.length > 0 ? routes.match(req.method, path) : undefined;
    if (!found) {
      options.fallback(req, res);
      return;
    }
    if ("allow" in found) {
      refuse(req, res, 405, Code.Unimplemented, `${req.method} is not served at this path`, { allow: found.allow.join(", ") });
      return;
    }
    const handler = handlerOf.get(found.route.method)!;
    serve(req, res, q === -1 ? "" : url.slice(q + 1), found, handler, registry, options, refuse).catch((err: unknown) => {
      options.logger.error({ err, path }, "HTTP rule call failed");
      if (!res.headersSent) sendStatus(res, req, 500, Code.Internal, "internal error");
      else res.destroy();
    });
  };
}

async function serve(
  req: NodeRequest,
  res: NodeResponse,
  query: string,
  match: HttpMatch,
  handler: UniversalHandler,
  registry: Registry,
  options: HttpGatewayOptions,
  refuse: (req: NodeRequest, res: NodeResponse, status: number, code: Code, message: string) => void,
): Promise<void> {
  const { method } = match.route;
  let body: JsonValue | undefined;
  let message;
  try {
    body = await readJsonBody(req, options.maxBodyBytes);
    message = requestFor(match, { query, body }, registry);
  } catch (err) {
    if (!(err instanceof HttpRuleError)) throw err;
    refuse(req, res, err.status, CODE_OF_GATEWAY_STATUS[err.status] ?? Code.InvalidArgument, err.message);
    return;
  }
  const header = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || DROPPED_HEADERS.test(name)) continue;
    for (const v of Array.isArray(value) ? value : [value]) header.append(name, v);
  }
  header.set("content-type", "application/proto");
  header.set("connect-protocol-version", "1");
  const abort = new AbortController();
  res.once("close", () => abort.abort());
  const bytes = toBinary(method.input, message);
  const uReq: UniversalServerRequest = {
    httpVersion: req.httpVersion,
    method: "POST",
    url: new URL(handler.requestPath, `https://${req.headers[":authority"] ?? req.headers.host ?? "localhost"}`).toString(),
    header,
    body: (async function* () {
      yield bytes;
    })(),
    signal: abort.signal,
    contextValues: options.contextValues(req),
  };
  const uRes = await handler(uReq);
  const chunks: Uint8Array[] = [];
  for await (const chunk of uRes.body ?? []) chunks.push(chunk);
  const answer = Buffer.concat(chunks);
  if (uRes.status === 200) {
    const output = fromBinary(method.output, answer);
    sendJson(res, 200, toJson(method.output, output, { registry }));
    return;
  }
  const error = errorFromJsonBytes(answer, undefined, new ConnectError(`HTTP ${uRes.status}`, Code.Unknown));
  sendJson(res, HTTP_STATUS_OF_CODE[error.code] ?? 500, statusJson(error, registry));
}

/** A Connect error as google.rpc.Status JSON; details of types the registry lacks are left out. */
export function statusJson(error: ConnectError, registry: Registry): JsonObject {
  const details: JsonValue[] = [];
  for (const detail of error.details) {
    // Details read back from the wire carry their type name and bytes (IncomingDetail).
    if (!("type" in detail) || !(detail.value instanceof Uint8Array)) continue;
    const schema = registry.getMessage(detail.type);
    if (!schema) continue;
    const value = toJson(schema, fromBinary(schema, detail.value), { registry });
    details.push({ "@type": `type.googleapis.com/${detail.type}`, ...(value as JsonObject) });
  }
  return { code: error.code, message: error.rawMessage, details };
}

/** The body as JSON, undefined when empty; refuses an oversized, encoded, non-JSON or malformed body. */
async function readJsonBody(req: NodeRequest, max: number): Promise<JsonValue | undefined> {
  const encoding = req.headers["content-encoding"];
  if (encoding !== undefined && encoding !== "identity") throw new HttpRuleError(`content-encoding ${JSON.stringify(encoding.slice(0, 40))} is not accepted`, 415);
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > max) throw new HttpRuleError(`the request body is larger than ${max} bytes`, 413);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) throw new HttpRuleError(`the request body is larger than ${max} bytes`, 413);
    chunks.push(chunk);
  }
  if (size === 0) return undefined;
  const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
  if (type !== "application/json") throw new HttpRuleError("the request body must be application/json", 415);
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8")) as JsonValue;
  } catch {
    throw new HttpRuleError("the request body is not valid JSON");
  }
}

function sendStatus(res: NodeResponse, req: NodeRequest, status: number, code: Code, message: string, extra: Record<string, string> = {}): void {
  // A body left unread (refused before or while reading): the stream is reset / the connection
  // closed once the answer is out, rather than reading whatever else the client sends.
  const unread = !req.complete && hasBody(req);
  if (unread && !("stream" in req)) extra = { ...extra, connection: "close" };
  sendJson(res, status, { code, message, details: [] }, extra);
  if (unread) {
    res.once("finish", () => {
      if ("stream" in req && !req.stream.closed) req.stream.close(http2.constants.NGHTTP2_CANCEL);
      else if (!("stream" in req)) (req as unknown as { socket: { destroySoon?: () => void } }).socket.destroySoon?.();
    });
  }
}

/** Whether the request announced a body (a bodiless one needs no draining or reset). */
function hasBody(req: NodeRequest): boolean {
  // HTTP/1.1 requests arrive typed as HTTP/2 (node's allowHTTP1 overload) but have no stream.
  if ("stream" in req) return !req.stream.endAfterHeaders;
  const headers: Readonly<Record<string, unknown>> = (req as { headers: Record<string, unknown> }).headers;
  return Number(headers["content-length"] ?? 0) > 0 || headers["transfer-encoding"] !== undefined;
}

function sendJson(res: NodeResponse, status: number, json: JsonValue, extra: Record<string, string> = {}): void {
  const text = JSON.stringify(json);
  res.writeHead(status, { "content-type": "application/json", "content-length": String(Buffer.byteLength(text)), ...extra });
  res.end(text);
}

/** Every message type of the services' files and their imports, plus google.rpc's details. */
function registryOf(services: readonly DescService[]): Registry {
  const files = new Set<DescFile>();
  const add = (file: DescFile) => {
    if (files.has(file)) return;
    files.add(file);
    for (const dep of file.dependencies) add(dep);
  };
  for (const s of services) add(s.file);
  add(file_google_rpc_error_details);
  return createRegistry(...files);
}
