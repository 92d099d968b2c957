import type { DescField, DescFile, DescMessage, DescMethod, Registry } from "@bufbuild/protobuf";
import { HttpRuleError, parsePathTemplate, readHttpBindings, type HttpBinding } from "./http-rule.js";
import {
  componentRef,
  createSchemaCollector,
  describe,
  isWellKnown,
  withDescription,
  type JsonSchema,
  type SchemaCollector,
} from "./schemas.js";

/** What the document says about itself and who may call what. */
export interface DocumentOptions {
  readonly title: string;
  readonly version: string;
  /** Services (full names) whose callers authenticate with a client certificate, not a bearer JWT. */
  readonly mtlsServices: ReadonlySet<string>;
}

type Operation = { [key: string]: unknown };

const STATUS = "google.rpc.Status";
const ERROR_INFO = "google.rpc.ErrorInfo";
// Query parameters stop at this depth: deeper request messages belong in a body.
const MAX_QUERY_DEPTH = 4;

/**
 * Builds the OpenAPI 3.1 document for the RPCs of `files` that carry a `google.api.http` rule;
 * RPCs without one are left out. Keys are sorted, so the same descriptors always give the same
 * bytes (`npm run gen:check` compares them).
 */
export function buildOpenApiDocument(files: readonly DescFile[], registry: Registry, options: DocumentOptions): JsonSchema {
  const schemas = createSchemaCollector();
  const paths: Record<string, Record<string, Operation>> = {};
  const tags: JsonSchema[] = [];
  const operationIds = new Set<string>();
  const services = files.flatMap((f) => f.services).sort((a, b) => compare(a.typeName, b.typeName));
  for (const service of services) {
    let used = false;
    for (const method of service.methods) {
      const bindings = readHttpBindings(method, registry);
      bindings.forEach((binding, index) => {
        const operationId = `${service.name}_${method.name}${index === 0 ? "" : `_${index}`}`;
        if (operationIds.has(operationId)) {
          throw new HttpRuleError(`operationId ${operationId} is used by two services of the same name`);
        }
        operationIds.add(operationId);
        const { path, operation } = buildOperation(method, binding, operationId, schemas, options);
        const item = (paths[path] ??= {});
        if (item[binding.method] !== undefined) {
          throw new HttpRuleError(`${binding.method.toUpperCase()} ${path} is bound by two RPCs`);
        }
        item[binding.method] = operation;
        used = true;
      });
    }
    if (used) tags.push(withDescription({ name: service.typeName }, describe(service)));
  }
  const errorInfo = registry.getMessage(ERROR_INFO);
  const components: JsonSchema = {
    schemas: {},
    securitySchemes: {
      bearerAuth: {
        type: "http",
        scheme: "bearer",
        bearerFormat: "JWT",
        description: "An admin access token from the identity provider; its roles grant the RPC's permission.",
      },
      mutualTLS: {
        type: "mutualTLS",
        description: "A client certificate from the control plane's CA (an appliance or a control-plane service).",
      },
    },
  };
  const statusSchema = statusComponent(errorInfo === undefined ? undefined : schemas.message(errorInfo));
  const collected = Object.fromEntries(schemas.components);
  collected[STATUS] = statusSchema;
  components["schemas"] = collected;
  return sortKeys({
    openapi: "3.1.0",
    info: { title: options.title, version: options.version },
    jsonSchemaDialect: "https://spec.openapis.org/oas/3.1/dialect/base",
    security: [{ bearerAuth: [] }],
    tags,
    paths,
    components,
  }) as JsonSchema;
}

function buildOperation(
  method: DescMethod,
  binding: HttpBinding,
  operationId: string,
  schemas: SchemaCollector,
  options: DocumentOptions,
): { path: string; operation: Operation } {
  const where = `${method.parent.typeName}.${method.name}`;
  const { path, variables } = parsePathTemplate(binding.template);
  const parameters: JsonSchema[] = [];
  const bound = new Set<string>();
  for (const variable of variables) {
    const field = resolveFieldPath(method.input, variable.fieldPath, where);
    if (field.fieldKind !== "scalar" && field.fieldKind !== "enum") {
      throw new HttpRuleError(`${where}: path variable {${variable.fieldPath}} must be a scalar or enum field`);
    }
    bound.add(variable.fieldPath);
    const spans = variable.pattern !== "*";
    parameters.push({
      name: variable.fieldPath,
      in: "path",
      required: true,
      schema: schemas.element(field),
      ...withDescription({}, joinText(describe(field), spans ? `Matches \`${variable.pattern}\`.` : undefined)),
    });
  }
  let requestBody: JsonSchema | undefined;
  if (binding.body === "*") {
    requestBody = jsonContent(schemas.message(method.input), variables.length === 0 ? undefined : "Fields bound in the path come from the path.");
  } else if (binding.body !== "") {
    const field = method.input.fields.find((f) => f.name === binding.body);
    if (field === undefined) throw new HttpRuleError(`${where}: body field ${JSON.stringify(binding.body.slice(0, 64))} is not in ${method.input.typeName}`);
    bound.add(field.name);
    requestBody = jsonContent(schemas.field(field), describe(field));
  }
  // Every field not in the path or the body is a query parameter, whatever the method
  // (google/api/http.proto); with body "*" there are none.
  if (binding.body !== "*") {
    for (const query of queryParameters(method.input, "", "", bound, schemas, 0)) parameters.push(query);
  }
  let responseSchema = schemas.message(method.output);
  if (binding.responseBody !== "") {
    const field = method.output.fields.find((f) => f.name === binding.responseBody);
    if (field === undefined) throw new HttpRuleError(`${where}: response_body field ${JSON.stringify(binding.responseBody.slice(0, 64))} is not in ${method.output.typeName}`);
    responseSchema = schemas.field(field);
  }
  const operation: Operation = {
    operationId,
    tags: [method.parent.typeName],
    responses: {
      "200": jsonContent(responseSchema, "OK"),
      default: jsonContent(componentRef(STATUS), "An error: the gRPC status code, a message, and an ErrorInfo whose reason is the domain code."),
    },
  };
  const text = joinText(
    describe(method),
    method.methodKind === "server_streaming" ? "Server-streaming: the response is a sequence of messages." : undefined,
  );
  if (text !== undefined) operation["description"] = text;
  const summary = describe(method)?.split(/(?<=\.)\s/)[0];
  if (summary !== undefined) operation["summary"] = summary;
  if (parameters.length > 0) operation["parameters"] = parameters;
  if (requestBody !== undefined) operation["requestBody"] = { ...requestBody, required: true };
  if (options.mtlsServices.has(method.parent.typeName)) operation["security"] = [{ mutualTLS: [] }];
  return { path, operation };
}

/**
 * The query parameters of `message`'s fields not in `bound`: scalars, enums and repeated ones,
 * and the fields of nested messages named with dots (`page.size`), as grpc-gateway spells them.
 */
function queryParameters(
  message: DescMessage,
  protoPrefix: string,
  jsonPrefix: string,
  bound: ReadonlySet<string>,
  schemas: SchemaCollector,
  depth: number,
): JsonSchema[] {
  const out: JsonSchema[] = [];
  for (const field of message.fields) {
    const protoPath = protoPrefix + field.name;
    if (bound.has(protoPath)) continue;
    const name = jsonPrefix + field.jsonName;
    const description = describe(field);
    const scalarLike =
      field.fieldKind === "scalar" ||
      field.fieldKind === "enum" ||
      (field.fieldKind === "message" && isWellKnown(field.message) && queryable(field.message)) ||
      (field.fieldKind === "list" && (field.listKind !== "message" || (isWellKnown(field.message) && queryable(field.message))));
    if (scalarLike) {
      const schema = field.fieldKind === "list" ? { type: "array", items: schemas.element(field) } : schemas.element(field);
      out.push({
        name,
        in: "query",
        schema,
        ...(field.fieldKind === "list" ? { style: "form", explode: true } : {}),
        ...withDescription({}, description),
      });
    } else if (field.fieldKind === "message" && !isWellKnown(field.message) && depth < MAX_QUERY_DEPTH) {
      out.push(...queryParameters(field.message, `${protoPath}.`, `${name}.`, bound, schemas, depth + 1));
    }
    // Maps, repeated messages and Struct-like values have no query form; they need a body.
  }
  return out;
}

/** Well-known types whose JSON form is one string, number or boolean, so fit in a query string. */
function queryable(message: DescMessage): boolean {
  return !["google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue", "google.protobuf.Any", "google.protobuf.Empty"].includes(message.typeName);
}

function resolveFieldPath(message: DescMessage, fieldPath: string, where: string): DescField {
  let current: DescMessage | undefined = message;
  let field: DescField | undefined;
  for (const part of fieldPath.split(".")) {
    field = current?.fields.find((f) => f.name === part);
    if (field === undefined) {
      throw new HttpRuleError(`${where}: path variable {${fieldPath}} names no field of ${message.typeName}`);
    }
    current = field.fieldKind === "message" ? field.message : undefined;
  }
  return field!;
}

function jsonContent(schema: JsonSchema, description: string | undefined): JsonSchema {
  return {
    ...withDescription({}, description),
    content: { "application/json": { schema } },
  };
}

/** google.rpc.Status in JSON, its details carrying an ErrorInfo (or any other Any). */
function statusComponent(errorInfo: JsonSchema | undefined): JsonSchema {
  const anyDetail: JsonSchema = {
    type: "object",
    required: ["@type"],
    properties: { "@type": { type: "string" } },
    additionalProperties: true,
  };
  const details: JsonSchema =
    errorInfo === undefined
      ? anyDetail
      : {
          anyOf: [
            {
              allOf: [errorInfo],
              properties: { "@type": { const: "type.googleapis.com/google.rpc.ErrorInfo" } },
              required: ["@type"],
            },
            anyDetail,
          ],
        };
  return {
    type: "object",
    description: "The error of a failed call (google/rpc/status.proto). `code` is the gRPC status code.",
    properties: {
      code: { type: "integer", format: "int32" },
      message: { type: "string" },
      details: { type: "array", items: details },
    },
  };
}

function joinText(...parts: (string | undefined)[]): string | undefined {
  const text = parts.filter((p) => p !== undefined).join("\n\n");
  return text === "" ? undefined : text;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A deep copy of `value` with every object's keys in code-point order (arrays keep theirs). */
export function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== "object") return value;
  const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => compare(a, b));
  return Object.fromEntries(entries.map(([k, v]) => [k, sortKeys(v)]));
}
