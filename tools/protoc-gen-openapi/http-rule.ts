import { getOption, hasOption, type DescMethod, type Registry } from "@bufbuild/protobuf";

/** One HTTP binding of an RPC, read from its `google.api.http` option (google/api/http.proto). */
export interface HttpBinding {
  /** Lower-case OpenAPI method: get, put, post, delete, patch (or a custom one OpenAPI knows). */
  readonly method: string;
  /** The template as written, e.g. `/v1/{name=licenses/*}:revoke`. */
  readonly template: string;
  /** `""` (no body), `"*"` (the whole request), or a top-level request field name. */
  readonly body: string;
  /** `""` (the whole response) or a top-level response field name. */
  readonly responseBody: string;
}

/** A variable of a path template: the request field path it binds and its segment pattern. */
export interface PathVariable {
  readonly fieldPath: string;
  /** The pattern after `=` (`*` when absent); `**` or a slash means the value spans segments. */
  readonly pattern: string;
}

/** The shape of google.api.HttpRule as protobuf-es exposes it (the message is read dynamically). */
interface HttpRuleShape {
  pattern: { case: string | undefined; value?: unknown };
  body: string;
  responseBody: string;
  additionalBindings: HttpRuleShape[];
}

// Methods an OpenAPI 3.1 path item can hold; a custom verb outside them has no OpenAPI form.
const OPENAPI_METHODS = new Set(["get", "put", "post", "delete", "options", "head", "patch", "trace"]);
const MAX_TEMPLATE_LENGTH = 1024;
const FIELD_PATH = /^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*$/i;

/** An HTTP rule the generator refuses, naming the RPC so `buf generate` says where to look. */
export class HttpRuleError extends Error {
  override name = "HttpRuleError";
}

/**
 * The HTTP bindings of `method` (its rule, then its additional bindings), or none when the RPC
 * has no `google.api.http` option or the request does not contain google/api/annotations.proto.
 * The extension is looked up in the request's own descriptors, so the plugin needs no generated
 * code for google/api.
 */
export function readHttpBindings(method: DescMethod, registry: Registry): HttpBinding[] {
  const extension = registry.getExtension("google.api.http");
  if (extension === undefined || !hasOption(method, extension)) return [];
  const rule = getOption(method, extension) as unknown as HttpRuleShape;
  const bindings = [toBinding(method, rule)];
  for (const extra of rule.additionalBindings) {
    if (extra.additionalBindings.length > 0) {
      throw new HttpRuleError(`${method.parent.typeName}.${method.name}: additional_bindings may not nest`);
    }
    bindings.push(toBinding(method, extra));
  }
  return bindings;
}

function toBinding(method: DescMethod, rule: HttpRuleShape): HttpBinding {
  const where = `${method.parent.typeName}.${method.name}`;
  let verb: string;
  let template: unknown;
  if (rule.pattern.case === "custom") {
    const custom = rule.pattern.value as { kind: string; path: string };
    verb = custom.kind.toLowerCase();
    template = custom.path;
  } else if (rule.pattern.case !== undefined) {
    verb = rule.pattern.case;
    template = rule.pattern.value;
  } else {
    throw new HttpRuleError(`${where}: google.api.http has no method (get, post, …)`);
  }
  if (!OPENAPI_METHODS.has(verb)) {
    throw new HttpRuleError(`${where}: HTTP method ${JSON.stringify(verb.slice(0, 32))} has no OpenAPI form`);
  }
  if (typeof template !== "string" || !template.startsWith("/") || template.length > MAX_TEMPLATE_LENGTH) {
    throw new HttpRuleError(`${where}: path must start with "/" and be at most ${MAX_TEMPLATE_LENGTH} characters`);
  }
  if ((verb === "get" || verb === "delete") && rule.body !== "") {
    throw new HttpRuleError(`${where}: ${verb.toUpperCase()} may not have a body`);
  }
  if (method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming") {
    throw new HttpRuleError(`${where}: a ${method.methodKind.replace("_", "-")} RPC cannot be bound to HTTP`);
  }
  return { method: verb, template, body: rule.body, responseBody: rule.responseBody };
}

/**
 * Parses a path template into its OpenAPI path (each `{a.b=pattern}` becomes `{a.b}`) and its
 * variables, refusing unbalanced braces, nested variables and malformed field paths.
 */
export function parsePathTemplate(template: string): { path: string; variables: PathVariable[] } {
  const variables: PathVariable[] = [];
  let path = "";
  let i = 0;
  while (i < template.length) {
    const ch = template[i]!;
    if (ch === "}") throw new HttpRuleError(`path template ${JSON.stringify(template)}: "}" without "{"`);
    if (ch !== "{") {
      path += ch;
      i++;
      continue;
    }
    const end = template.indexOf("}", i);
    const inner = end < 0 ? "" : template.slice(i + 1, end);
    if (end < 0 || inner.includes("{")) {
      throw new HttpRuleError(`path template ${JSON.stringify(template)}: unbalanced "{"`);
    }
    const eq = inner.indexOf("=");
    const fieldPath = eq < 0 ? inner : inner.slice(0, eq);
    const pattern = eq < 0 ? "*" : inner.slice(eq + 1);
    if (!FIELD_PATH.test(fieldPath) || pattern === "") {
      throw new HttpRuleError(`path template ${JSON.stringify(template)}: bad variable {${inner}}`);
    }
    if (variables.some((v) => v.fieldPath === fieldPath)) {
      throw new HttpRuleError(`path template ${JSON.stringify(template)}: {${fieldPath}} bound twice`);
    }
    variables.push({ fieldPath, pattern });
    path += `{${fieldPath}}`;
    i = end + 1;
  }
  return { path, variables };
}
