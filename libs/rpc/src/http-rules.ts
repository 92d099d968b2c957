/**
 * `google.api.http` rules, read from the service descriptors: template parsing, path matching and
 * turning an HTTP request (path variables, query, JSON body) into the method's request message.
 * Pure (no sockets); the HTTP side is in http-gateway.ts (docs/design.md §3).
 */
import { fromJson, getOption, hasOption, ScalarType, type DescField, type DescMessage, type DescMethod, type DescService, type JsonObject, type JsonValue, type Message, type Registry } from "@bufbuild/protobuf";
import { http } from "@lcp/proto/google/api/annotations_pb";
import type { HttpRule } from "@lcp/proto/google/api/http_pb";

/** The longest query string accepted (bytes as sent, still percent-encoded). */
export const MAX_HTTP_QUERY_BYTES = 4_096;
/** The most query parameters accepted on one request. */
export const MAX_HTTP_QUERY_PARAMS = 64;
/** The longest path accepted (bytes as sent). */
export const MAX_HTTP_PATH_BYTES = 2_048;

/** A request the rules refuse: answered as google.rpc.Status with this HTTP status (400 unless said). */
export class HttpRuleError extends Error {
  override name = "HttpRuleError";
  constructor(
    message: string,
    /** The HTTP status to answer with. */
    readonly status = 400,
  ) {
    super(message);
  }
}

/** One segment of a template: a literal, `*` (one segment) or `**` (the rest of the path). */
type Segment = { readonly kind: "literal"; readonly value: string } | { readonly kind: "one" } | { readonly kind: "rest" };

/** A variable of a template: the field it fills and the segments it spans. */
interface Variable {
  readonly fieldPath: readonly DescField[];
  readonly start: number;
  /** Exclusive; -1 when the variable ends with `**` (it takes the rest of the path). */
  readonly end: number;
}

/** One compiled binding: an HTTP method and template for one RPC. */
export interface HttpRoute {
  readonly httpMethod: string;
  /** The template as written, for logs and errors. */
  readonly template: string;
  readonly method: DescMethod;
  readonly segments: readonly Segment[];
  readonly verb?: string;
  readonly variables: readonly Variable[];
  /** `"*"`, a top-level field, or undefined when the request has no body. */
  readonly body?: "*" | DescField;
  /** Per segment: 2 for a literal, 1 for `*`, 0 for `**`; the higher wins on ties (literal over variable). */
  readonly rank: readonly number[];
}

/** A route that matched a request path, with the raw (still percent-encoded) path segments. */
export interface HttpMatch {
  readonly route: HttpRoute;
  readonly segments: readonly string[];
}

/** The HTTP rules of a set of services, in one table per listener. */
export interface HttpRoutes {
  readonly routes: readonly HttpRoute[];
  /**
   * The best route for a method and path: of those whose template matches, the one whose segments
   * are most literal from the left (`/licenses/health/sweep` beats `/licenses/{license_id}/sweep`).
   * `{ allow }` when some template matches the path but only for other HTTP methods (answered 405).
   */
  match(httpMethod: string, path: string): HttpMatch | { readonly allow: readonly string[] } | undefined;
}

const HTTP_METHODS = ["get", "put", "post", "delete", "patch"] as const;

/**
 * Compiles the `google.api.http` rules (with additional bindings) of every method of these
 * services. Throws on a malformed template, an unknown field, a rule on a streaming method, or two
 * rules for the same method and template: the contracts are wrong, and the service must not start.
 */
export function compileHttpRoutes(services: readonly DescService[]): HttpRoutes {
  const routes: HttpRoute[] = [];
  const seen = new Set<string>();
  for (const service of services) {
    for (const method of service.methods) {
      if (!hasOption(method, http)) continue;
      const rule = getOption(method, http);
      for (const binding of [rule, ...rule.additionalBindings]) {
        const route = compileRule(method, binding);
        const key = `${route.httpMethod} ${route.segments.map((s) => (s.kind === "literal" ? s.value : "*")).join("/")}:${route.verb ?? ""}`;
        if (seen.has(key)) throw new TypeError(`two HTTP rules for ${route.httpMethod} ${route.template} (${method.parent.typeName}/${method.name})`);
        seen.add(key);
        routes.push(route);
      }
    }
  }
  return createRouteTable(routes);
}

/** A table of compiled routes (compileHttpRoutes builds one per listener; tests build their own). */
export function createRouteTable(routes: readonly HttpRoute[]): HttpRoutes {
  return { routes, match: (httpMethod, path) => matchRoute(routes, httpMethod, path) };
}

/** Compiles one binding of a method. */
export function compileRule(method: DescMethod, rule: HttpRule): HttpRoute {
  const where = `${method.parent.typeName}/${method.name}`;
  let httpMethod: string;
  let template: string;
  if (rule.pattern.case === "custom") {
    httpMethod = rule.pattern.value.kind.toUpperCase();
    template = rule.pattern.value.path;
  } else if (rule.pattern.case !== undefined && (HTTP_METHODS as readonly string[]).includes(rule.pattern.case)) {
    httpMethod = rule.pattern.case.toUpperCase();
    template = rule.pattern.value;
  } else {
    throw new TypeError(`${where}: HTTP rule without a method and path`);
  }
  if (method.methodKind !== "unary") throw new TypeError(`${where}: an HTTP rule needs a unary method, this one is ${method.methodKind}`);
  const parsed = parseTemplate(template, method.input, where);
  let body: HttpRoute["body"];
  if (rule.body === "*") body = "*";
  else if (rule.body !== "") {
    const field = method.input.fields.find((f) => f.name === rule.body);
    if (!field) throw new TypeError(`${where}: HTTP rule body names no field of ${method.input.typeName}: ${rule.body}`);
    body = field;
  }
  if (body !== undefined && (httpMethod === "GET" || httpMethod === "DELETE")) throw new TypeError(`${where}: ${httpMethod} ${template} cannot take a body`);
  return { httpMethod, template, method, body, ...parsed, rank: parsed.segments.map((s) => (s.kind === "literal" ? 2 : s.kind === "one" ? 1 : 0)) };
}

/**
 * Parses `/a/{b}/{c.d=e/*}/**:verb` (the google.api.http template grammar) against a message: a
 * variable names a field path of singular scalar fields and spans `*` when it has no pattern.
 */
function parseTemplate(template: string, input: DescMessage, where: string): Pick<HttpRoute, "segments" | "verb" | "variables"> {
  const bad = (why: string) => new TypeError(`${where}: bad HTTP template ${JSON.stringify(template)}: ${why}`);
  if (!template.startsWith("/")) throw bad("it must start with /");
  let rest = template.slice(1);
  let verb: string | undefined;
  // The verb is a ':' after the last '/' outside braces.
  const lastClose = rest.lastIndexOf("}");
  const colon = rest.indexOf(":", Math.max(rest.lastIndexOf("/"), lastClose) + 1);
  if (colon !== -1) {
    verb = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!/^[A-Za-z0-9._~-]+$/.test(verb)) throw bad("bad verb");
  }
  const segments: Segment[] = [];
  const variables: Variable[] = [];
  const pieces = splitOutsideBraces(rest, bad);
  for (const piece of pieces) {
    if (piece.startsWith("{")) {
      const m = /^\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)(?:=([^{}]+))?\}$/.exec(piece);
      if (!m) throw bad(`bad variable ${piece}`);
      const fieldPath = resolveFieldPath(input, m[1]!.split("."));
      const leaf = fieldPath.at(-1);
      if (!fieldPath.length || leaf?.fieldKind !== "scalar" && leaf?.fieldKind !== "enum") throw bad(`${m[1]} is not a singular scalar field of ${input.typeName}`);
      const start = segments.length;
      for (const part of (m[2] ?? "*").split("/")) segments.push(segmentOf(part, bad));
      const deep = segments.slice(start).some((s) => s.kind === "rest");
      variables.push({ fieldPath, start, end: deep ? -1 : segments.length });
    } else {
      segments.push(segmentOf(piece, bad));
    }
  }
  const restAt = segments.findIndex((s) => s.kind === "rest");
  if (restAt !== -1 && restAt !== segments.length - 1) throw bad("** must be the last segment");
  return { segments, verb, variables };
}

function splitOutsideBraces(text: string, bad: (why: string) => Error): string[] {
  const out: string[] = [];
  let depth = 0;
  let current = "";
  for (const ch of text) {
    if (ch === "{") depth++;
    if (ch === "}") depth--;
    if (depth < 0 || depth > 1) throw bad("unbalanced braces");
    if (ch === "/" && depth === 0) {
      out.push(current);
      current = "";
    } else current += ch;
  }
  if (depth !== 0) throw bad("unbalanced braces");
  out.push(current);
  return out;
}

function segmentOf(part: string, bad: (why: string) => Error): Segment {
  if (part === "*") return { kind: "one" };
  if (part === "**") return { kind: "rest" };
  if (!/^[A-Za-z0-9._~-]+$/.test(part)) throw bad(`bad literal segment ${JSON.stringify(part)}`);
  return { kind: "literal", value: part };
}

/** The fields a dotted path names (proto or JSON names), or [] when one is missing or not a message on the way. */
function resolveFieldPath(message: DescMessage, names: readonly string[]): DescField[] {
  const out: DescField[] = [];
  let current: DescMessage | undefined = message;
  for (const name of names) {
    const field: DescField | undefined = current?.fields.find((f) => f.name === name || f.jsonName === name);
    if (!field) return [];
    out.push(field);
    // Well-known types have their own JSON (a FieldMask is a string): never entered field by field.
    current = field.fieldKind === "message" && !field.message.typeName.startsWith("google.protobuf.") ? field.message : undefined;
  }
  return out;
}

function matchRoute(routes: readonly HttpRoute[], httpMethod: string, path: string): ReturnType<HttpRoutes["match"]> {
  if (path.length > MAX_HTTP_PATH_BYTES) return undefined;
  const all = path.slice(1).split("/");
  let best: HttpMatch | undefined;
  const allow = new Set<string>();
  for (const route of routes) {
    let segments = all;
    if (route.verb !== undefined) {
      const last = all.at(-1)!;
      if (!last.endsWith(`:${route.verb}`)) continue;
      segments = [...all.slice(0, -1), last.slice(0, -route.verb.length - 1)];
    }
    if (!segmentsMatch(route.segments, segments)) continue;
    if (route.httpMethod !== httpMethod) {
      allow.add(route.httpMethod);
      continue;
    }
    if (!best || outranks(route.rank, best.route.rank)) best = { route, segments };
  }
  if (best) return best;
  return allow.size > 0 ? { allow: [...allow].sort() } : undefined;
}

function segmentsMatch(template: readonly Segment[], segments: readonly string[]): boolean {
  const deep = template.at(-1)?.kind === "rest";
  if (deep ? segments.length < template.length - 1 : segments.length !== template.length) return false;
  for (let i = 0; i < template.length; i++) {
    const t = template[i]!;
    if (t.kind === "rest") break;
    const s = segments[i]!;
    if (t.kind === "literal" ? s !== t.value : s === "") return false;
  }
  return true;
}

function outranks(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! > b[i]!;
  return a.length > b.length;
}

/** What an HTTP request brings, already bounded and read: the body parsed as JSON (undefined when empty). */
export interface HttpRequestParts {
  readonly query: string;
  readonly body: JsonValue | undefined;
}

/**
 * The request message for a matched route: the body (all of it, or one field), then the path
 * variables, then query parameters for the fields neither binds. Refuses (HttpRuleError) an
 * unknown or repeated-for-singular query parameter, a body where the rule has none, and a JSON
 * shape the message does not have (the error names the field).
 */
export function requestFor(match: HttpMatch, parts: HttpRequestParts, registry: Registry): Message {
  const { route } = match;
  const input = route.method.input;
  const json: JsonObject = {};
  // Field paths (proto names, dotted) the path or the body sets: no query parameter may set them.
  const bound: string[] = [];
  if (route.body === undefined) {
    if (parts.body !== undefined) throw new HttpRuleError(`${route.httpMethod} ${route.template} takes no request body`);
  } else if (route.body === "*") {
    if (parts.body !== undefined) {
      if (typeof parts.body !== "object" || parts.body === null || Array.isArray(parts.body)) throw new HttpRuleError(`the request body must be a JSON object (${input.typeName})`);
      Object.assign(json, parts.body);
    }
  } else {
    if (parts.body !== undefined) json[route.body.name] = parts.body;
    bound.push(route.body.name);
  }
  for (const variable of route.variables) {
    const raw = variable.end === -1 ? match.segments.slice(variable.start) : match.segments.slice(variable.start, variable.end);
    const value = raw.map((s) => decodeSegment(s)).join("/");
    setJson(json, variable.fieldPath, scalarJson(variable.fieldPath.at(-1)!, value), "path", true);
    bound.push(variable.fieldPath.map((f) => f.name).join("."));
  }
  if (parts.query !== "") {
    if (parts.query.length > MAX_HTTP_QUERY_BYTES) throw new HttpRuleError(`the query string is longer than ${MAX_HTTP_QUERY_BYTES} bytes`, 414);
    const params = [...new URLSearchParams(parts.query)];
    if (params.length > MAX_HTTP_QUERY_PARAMS) throw new HttpRuleError(`more than ${MAX_HTTP_QUERY_PARAMS} query parameters`);
    for (const [name, value] of params) {
      const fieldPath = route.body === "*" ? [] : resolveFieldPath(input, name.split("."));
      const leaf = fieldPath.at(-1);
      const dotted = fieldPath.map((f) => f.name).join(".");
      if (!leaf || bound.some((b) => b === dotted || dotted.startsWith(`${b}.`) || b.startsWith(`${dotted}.`))) throw new HttpRuleError(`unknown query parameter ${JSON.stringify(clip(name))} for ${input.typeName}`);
      setJson(json, fieldPath, queryJson(leaf, value, name), name, false);
    }
  }
  try {
    return fromJson(input, json, { registry });
  } catch (err) {
    throw new HttpRuleError(clip(`${fieldAtFault(input, json, registry)}${err instanceof Error ? err.message : String(err)}`, 300));
  }
}

/**
 * `"<field>: "` for the top-level field whose JSON does not decode: protobuf-es names the field for
 * scalars, only the type for a nested message (`google.protobuf.Duration from JSON: 12`).
 */
function fieldAtFault(input: DescMessage, json: JsonObject, registry: Registry): string {
  for (const [key, value] of Object.entries(json)) {
    try {
      fromJson(input, { [key]: value }, { registry });
    } catch {
      return `${clip(key)}: `;
    }
  }
  return "";
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpRuleError(`bad percent-encoding in the path: ${JSON.stringify(clip(segment))}`);
  }
}

/** Sets a value at a field path of a JSON object; lists collect, a singular field set twice is refused unless `overwrite`. */
function setJson(json: JsonObject, fieldPath: readonly DescField[], value: JsonValue, name: string, overwrite: boolean): void {
  let target = json;
  for (const field of fieldPath.slice(0, -1)) {
    adoptJsonName(target, field);
    const next = target[field.name];
    if (next === undefined || next === null || typeof next !== "object" || Array.isArray(next)) target[field.name] = {};
    target = target[field.name] as JsonObject;
  }
  const leaf = fieldPath.at(-1)!;
  adoptJsonName(target, leaf);
  if (leaf.fieldKind === "list") {
    const list = target[leaf.name];
    target[leaf.name] = Array.isArray(list) ? [...list, value] : [value];
  } else {
    if (!overwrite && target[leaf.name] !== undefined) throw new HttpRuleError(`query parameter ${JSON.stringify(clip(name))} given more than once`);
    target[leaf.name] = value;
  }
}

/** A body may name a field by its JSON name: moved to the proto name, so the path's value replaces it rather than doubling it. */
function adoptJsonName(target: JsonObject, field: DescField): void {
  if (field.jsonName === field.name || !(field.jsonName in target)) return;
  target[field.name] ??= target[field.jsonName]!;
  delete target[field.jsonName];
}

// Well-known types whose proto3 JSON is a string: a query parameter carries them as written.
const STRING_JSON_MESSAGES = new Set(["google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask", "google.protobuf.StringValue", "google.protobuf.BytesValue", "google.protobuf.Int64Value", "google.protobuf.UInt64Value"]);

function queryJson(field: DescField, value: string, name: string): JsonValue {
  const message = field.fieldKind === "message" ? field.message : field.fieldKind === "list" && field.listKind === "message" ? field.message : undefined;
  if (field.fieldKind === "map" || (message && !STRING_JSON_MESSAGES.has(message.typeName))) {
    throw new HttpRuleError(`query parameter ${JSON.stringify(clip(name))} names a message field; set its fields (${clip(name)}.<field>) or use the body`);
  }
  return message ? value : scalarJson(field, value);
}

/** The proto3 JSON for a scalar or enum field given as text (path variables, query values). */
function scalarJson(field: DescField, value: string): JsonValue {
  const enumDesc = field.fieldKind === "enum" || (field.fieldKind === "list" && field.listKind === "enum") ? field.enum : undefined;
  if (enumDesc) {
    if (/^-?\d{1,10}$/.test(value)) return Number(value);
    if (enumDesc.values.some((v) => v.name === value)) return value;
    throw new HttpRuleError(`${field.name}: ${enumDesc.typeName} has no value ${JSON.stringify(clip(value))}`);
  }
  const scalar = field.fieldKind === "scalar" || (field.fieldKind === "list" && field.listKind === "scalar") ? field.scalar : undefined;
  switch (scalar) {
    case ScalarType.BOOL:
      if (value === "true" || value === "false") return value === "true";
      throw new HttpRuleError(`${field.name}: expected true or false, got ${JSON.stringify(clip(value))}`);
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      if (/^-?\d{1,10}$/.test(value)) return Number(value);
      throw new HttpRuleError(`${field.name}: expected an integer, got ${JSON.stringify(clip(value))}`);
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return value === "NaN" || value === "Infinity" || value === "-Infinity" ? value : Number.isFinite(Number(value)) && value.trim() !== "" ? Number(value) : value;
    default:
      // Strings, bytes (base64) and 64-bit integers: proto3 JSON carries them as strings.
      return value;
  }
}

function clip(text: string, max = 100): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
