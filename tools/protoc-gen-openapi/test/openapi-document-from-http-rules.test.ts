import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { FileDescriptorSet } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseOptions, protocGenOpenApi } from "../plugin.js";
import { BAD_RULES, BUF, ROOT, buildDescriptorSet, createFixtureModule, requestFor } from "./build-fixtures.js";

type Json = Record<string, any>;

const SHOP = "shop/v1/shop_service.proto";
const OPTIONS = "title=Shop,version=v9,mtls_service=shop.v1.DeviceService";

let fixture: ReturnType<typeof createFixtureModule>;
let set: FileDescriptorSet;

function generate(files: string[], parameter = OPTIONS): { name: string; content: string } {
  const response = protocGenOpenApi.run(requestFor(set, files, parameter));
  expect(response.file).toHaveLength(1);
  return { name: response.file[0]!.name, content: response.file[0]!.content };
}

function shopDocument(): Json {
  return JSON.parse(generate([SHOP]).content) as Json;
}

function param(op: Json, name: string): Json | undefined {
  return (op["parameters"] as Json[] | undefined)?.find((p) => p["name"] === name);
}

/**
 * The OpenAPI 3.1 rules a structural check can prove without a validator package: the version,
 * unique operationIds, every `$ref` resolving inside the document, and the path parameters of each
 * operation matching the `{names}` in its path exactly. Returns the problems found.
 */
function structuralProblems(doc: Json): string[] {
  const problems: string[] = [];
  if (doc["openapi"] !== "3.1.0") problems.push(`openapi is ${doc["openapi"]}`);
  if (typeof doc["info"]?.title !== "string" || typeof doc["info"]?.version !== "string") problems.push("info");
  const ids = new Set<string>();
  const methods = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
  for (const [path, item] of Object.entries(doc["paths"] as Json)) {
    if (!path.startsWith("/")) problems.push(`path ${path} does not start with /`);
    const names = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]).sort();
    for (const [method, op] of Object.entries(item as Json)) {
      if (!methods.includes(method)) problems.push(`${path}: ${method} is no HTTP method`);
      if (ids.has(op.operationId)) problems.push(`operationId ${op.operationId} twice`);
      ids.add(op.operationId);
      const declared = ((op.parameters ?? []) as Json[]).filter((p) => p["in"] === "path");
      if (declared.some((p) => p["required"] !== true)) problems.push(`${op.operationId}: optional path param`);
      const got = declared.map((p) => p["name"]).sort();
      if (JSON.stringify(got) !== JSON.stringify(names)) problems.push(`${op.operationId}: path params ${got} vs ${names}`);
      const keys = ((op.parameters ?? []) as Json[]).map((p) => `${p["in"]}:${p["name"]}`);
      if (new Set(keys).size !== keys.length) problems.push(`${op.operationId}: duplicate parameters`);
      if (op.responses?.["200"] === undefined) problems.push(`${op.operationId}: no 200 response`);
      for (const req of (op.security ?? doc["security"]) as Json[]) {
        for (const scheme of Object.keys(req)) {
          if (doc["components"]?.securitySchemes?.[scheme] === undefined) problems.push(`unknown scheme ${scheme}`);
        }
      }
    }
  }
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(walk);
    if (node === null || typeof node !== "object") return;
    for (const [key, value] of Object.entries(node)) {
      if (key === "$ref") {
        const target = String(value)
          .replace(/^#\//, "")
          .split("/")
          .reduce<unknown>((at, part) => (at as Json | undefined)?.[part], doc);
        if (target === undefined) problems.push(`$ref ${value} does not resolve`);
      } else walk(value);
    }
  };
  walk(doc);
  return problems;
}

beforeAll(() => {
  fixture = createFixtureModule();
  set = buildDescriptorSet(fixture.dir);
});
afterAll(() => fixture?.dispose());

describe("protoc-gen-openapi on the shop fixture", () => {
  it("writes one OpenAPI 3.1 document that passes the structural checks", () => {
    const { name } = generate([SHOP]);
    const doc = shopDocument();
    expect(name).toBe("openapi.json");
    expect(doc["info"]).toEqual({ title: "Shop", version: "v9" });
    expect(structuralProblems(doc)).toEqual([]);
  });

  it("makes one operation per binding, named <Service>_<Method>, and leaves out RPCs without a rule", () => {
    const doc = shopDocument();
    const ops = Object.entries(doc["paths"] as Json).flatMap(([path, item]) =>
      Object.entries(item as Json).map(([method, op]) => `${method.toUpperCase()} ${path} ${op.operationId}`),
    );
    expect(ops.sort()).toEqual([
      "DELETE /v1/items/{id} ShopService_DeleteItem",
      "GET /v1/items ShopService_ListItems_1",
      "GET /v1/items:watch ShopService_WatchItems",
      "GET /v1/shops/{shop_id}/items/{item.id} ShopService_GetItem",
      "GET /v1/shops/{shop_id}/items/{item.id}/color ShopService_GetItemColor",
      "GET /v1/{parent}/items ShopService_ListItems",
      "PATCH /v1/items/{id} ShopService_UpdateItem",
      "POST /v1/devices:report DeviceService_Report",
      "POST /v1/shops/{shop_id}/items ShopService_CreateItem",
    ]);
    expect(doc["tags"].map((t: Json) => t["name"])).toEqual(["shop.v1.DeviceService", "shop.v1.ShopService"]);
    expect(doc["tags"][1].description).toBe("ShopService sells items.");
    expect(JSON.stringify(doc)).not.toContain("Reindex");
  });

  it("declares path variables, nested ones with dots, and notes a multi-segment pattern", () => {
    const doc = shopDocument();
    const get = doc["paths"]["/v1/shops/{shop_id}/items/{item.id}"].get;
    expect(param(get, "shop_id")).toMatchObject({ in: "path", required: true, schema: { type: "string" } });
    expect(param(get, "item.id")).toMatchObject({ in: "path", required: true, schema: { type: "string" } });
    // The rest of the nested message is a query parameter, 64-bit as a string.
    expect(param(get, "item.revision")).toMatchObject({ in: "query", schema: { type: "string", format: "int64" } });
    expect(get.summary).toBe("Reads one item.");
    const list = doc["paths"]["/v1/{parent}/items"].get;
    expect(param(list, "parent")).toMatchObject({ in: "path", description: "Matches `shops/*`." });
  });

  it("turns the remaining scalar, enum, repeated and nested fields of a GET into query parameters", () => {
    const doc = shopDocument();
    const list = doc["paths"]["/v1/items"].get;
    const query = (list.parameters as Json[]).filter((p) => p["in"] === "query");
    expect(query.map((p) => p["name"]).sort()).toEqual(
      ["color", "colors", "minPrice", "page.size", "page.token", "parent", "since", "tags"].sort(),
    );
    expect(param(list, "color")!.schema).toEqual({ $ref: "#/components/schemas/shop.v1.Color" });
    expect(param(list, "colors")).toMatchObject({ schema: { type: "array", items: { $ref: "#/components/schemas/shop.v1.Color" } }, explode: true });
    expect(param(list, "tags")!.schema).toEqual({ type: "array", items: { type: "string" } });
    expect(param(list, "minPrice")!.schema).toMatchObject({ type: "string", format: "int64" });
    expect(param(list, "page.size")!.schema).toEqual({ type: "integer", format: "int32" });
    expect(param(list, "since")!.schema).toMatchObject({ type: "string", format: "date-time" });
    expect(list.requestBody).toBeUndefined();
    const del = doc["paths"]["/v1/items/{id}"].delete;
    expect(param(del, "force")).toMatchObject({ in: "query", schema: { type: "boolean" } });
  });

  it("takes a field body as that field's schema and the other fields as query; body * as the request", () => {
    const doc = shopDocument();
    const create = doc["paths"]["/v1/shops/{shop_id}/items"].post;
    expect(create.requestBody).toMatchObject({ required: true, content: { "application/json": { schema: { $ref: "#/components/schemas/shop.v1.Item" } } } });
    expect(param(create, "requestId")).toMatchObject({ in: "query", description: "Makes the call idempotent." });
    expect(param(create, "item.id")).toBeUndefined();
    const update = doc["paths"]["/v1/items/{id}"].patch;
    expect(update.requestBody.content["application/json"].schema).toEqual({ $ref: "#/components/schemas/shop.v1.UpdateItemRequest" });
    expect((update.parameters as Json[]).map((p) => p["in"])).toEqual(["path"]);
    expect(update.responses["200"].content["application/json"].schema).toEqual({ $ref: "#/components/schemas/shop.v1.Item" });
    expect(update.responses.default.content["application/json"].schema).toEqual({ $ref: "#/components/schemas/google.rpc.Status" });
  });

  it("answers with the response_body field, and says when the response is a stream", () => {
    const doc = shopDocument();
    const color = doc["paths"]["/v1/shops/{shop_id}/items/{item.id}/color"].get;
    expect(color.responses["200"].content["application/json"].schema).toEqual({ $ref: "#/components/schemas/shop.v1.Color" });
    expect(doc["paths"]["/v1/items:watch"].get.description).toContain("Server-streaming");
  });

  it("gives messages and enums their proto3 JSON form", () => {
    const schemas = shopDocument()["components"]["schemas"];
    const item = schemas["shop.v1.Item"].properties;
    expect(item.id.description).toBe("Unique per shop; wrapped comments keep\ntheir line breaks.");
    expect(item.priceCents).toMatchObject({ type: "string", format: "int64", description: "Price in cents." });
    expect(item.sold).toMatchObject({ type: "string", format: "uint64" });
    expect(item.count).toMatchObject({ type: "integer", minimum: 0 });
    expect(item.createdAt).toMatchObject({ type: "string", format: "date-time" });
    expect(item.ttl).toMatchObject({ type: "string", pattern: expect.stringContaining("s$") });
    expect(item.stock).toMatchObject({ type: "string", format: "int64" });
    expect(item.attributes).toMatchObject({ type: "object", additionalProperties: true });
    expect(item.extra).toEqual({ description: "Any JSON value." });
    expect(item.blob).toEqual({ type: "string", contentEncoding: "base64" });
    expect(item.weight).toEqual({ type: "number", format: "double" });
    expect(item.parent.$ref).toBe("#/components/schemas/shop.v1.Item");
    expect(item.parts).toEqual({ type: "array", items: { $ref: "#/components/schemas/shop.v1.Part" } });
    expect(item.partsByName).toEqual({ type: "object", additionalProperties: { $ref: "#/components/schemas/shop.v1.Part" } });
    expect(item.user.description).toContain("Member of oneof `owner`: at most one of user, team is set.");
    expect(item.kind).toEqual({ $ref: "#/components/schemas/shop.v1.Item.Kind" });
    expect(schemas["shop.v1.Item.Kind"]).toEqual({ type: "string", enum: ["KIND_UNSPECIFIED", "KIND_BOOK"], description: "The item's kind." });
    expect(schemas["shop.v1.Color"].enum).toEqual(["COLOR_UNSPECIFIED", "COLOR_RED"]);
    // Well-known types are inlined; types reached only from RPCs without a rule are left out.
    expect(Object.keys(schemas).filter((k) => k.startsWith("google.protobuf"))).toEqual([]);
    expect(schemas["shop.v1.ReindexOnly"]).toBeUndefined();
  });

  it("describes errors as google.rpc.Status with an ErrorInfo detail", () => {
    const schemas = shopDocument()["components"]["schemas"];
    expect(schemas["google.rpc.Status"].properties.code).toEqual({ type: "integer", format: "int32" });
    const detail = schemas["google.rpc.Status"].properties.details.items.anyOf[0];
    expect(detail.allOf).toEqual([{ $ref: "#/components/schemas/google.rpc.ErrorInfo" }]);
    expect(Object.keys(schemas["google.rpc.ErrorInfo"].properties).sort()).toEqual(["domain", "metadata", "reason"]);
    expect(schemas["google.rpc.ErrorInfo"].properties.metadata).toMatchObject({ type: "object", additionalProperties: { type: "string" } });
  });

  it("asks for a bearer JWT by default and a client certificate for mtls_service services", () => {
    const doc = shopDocument();
    expect(doc["security"]).toEqual([{ bearerAuth: [] }]);
    expect(doc["components"].securitySchemes.bearerAuth).toMatchObject({ type: "http", scheme: "bearer", bearerFormat: "JWT" });
    expect(doc["paths"]["/v1/devices:report"].post.security).toEqual([{ mutualTLS: [] }]);
    expect(doc["paths"]["/v1/items"].get.security).toBeUndefined();
  });

  it("writes the same bytes every time, whatever the order of the files, with keys sorted", () => {
    const files = [SHOP, "google/rpc/error_details.proto", "google/api/annotations.proto"];
    const first = generate(files).content;
    expect(generate(files).content).toBe(first);
    expect(generate([...files].reverse()).content).toBe(first);
    const isSorted = (node: unknown): boolean =>
      Array.isArray(node)
        ? node.every(isSorted)
        : node === null || typeof node !== "object"
          ? true
          : Object.keys(node).join("\n") === Object.keys(node).sort().join("\n") && Object.values(node).every(isSorted);
    expect(isSorted(JSON.parse(first))).toBe(true);
    expect(first.endsWith("}\n")).toBe(true);
  });

  it("writes a document with no paths when nothing has a rule", () => {
    const doc = JSON.parse(generate(["google/rpc/error_details.proto"]).content) as Json;
    expect(doc["paths"]).toEqual({});
    expect(structuralProblems(doc)).toEqual([]);
  });
});

describe("protoc-gen-openapi refuses bad rules and options", () => {
  const cases: [keyof typeof BAD_RULES, RegExp][] = [
    ["unknown_field", /path variable \{nope\} names no field of bad\.v1\.unknown_field\.CallRequest/],
    ["get_body", /GET may not have a body/],
    ["unbalanced", /unbalanced "\{"/],
    ["message_var", /path variable \{ref\} must be a scalar or enum field/],
    ["bad_body_field", /body field "nope" is not in/],
    ["duplicate", /GET \/v1\/same is bound by two RPCs/],
    ["bound_twice", /\{id\} bound twice/],
    ["custom_kind", /HTTP method "fetch" has no OpenAPI form/],
    ["long_path", /at most 1024 characters/],
    ["relative_path", /must start with "\/"/],
  ];
  it("has a case for every refused rule", () => {
    expect(cases.map(([name]) => name).sort()).toEqual(Object.keys(BAD_RULES).sort());
  });
  for (const [name, error] of cases) {
    it(`refuses ${name.replaceAll("_", " ")}: ${BAD_RULES[name]!.slice(0, 60)}`, () => {
      expect(() => protocGenOpenApi.run(requestFor(set, [`bad/v1/${name}.proto`]))).toThrow(error);
    });
  }

  it("refuses unknown options, empty values and file names that leave the out directory", () => {
    expect(() => parseOptions("titel=x")).toThrow(/unknown option "titel"/);
    expect(() => parseOptions("title=")).toThrow(/needs a value/);
    expect(() => parseOptions(`title=${"x".repeat(201)}`)).toThrow(/needs a value/);
    expect(() => parseOptions("file=../openapi.json")).toThrow(/plain \*\.json name/);
    expect(() => parseOptions("file=openapi.yaml")).toThrow(/plain \*\.json name/);
    expect(parseOptions("file=api.json,mtls_service=a.v1.S").mtlsServices).toEqual(new Set(["a.v1.S"]));
  });
});

describe("protoc-gen-openapi through buf generate", () => {
  it("runs as a local plugin the way buf.gen.yaml runs it and writes the same document", () => {
    const template = join(fixture.dir, "buf.gen.yaml");
    const config = readFileSync(join(ROOT, "buf.gen.yaml"), "utf8");
    // The repository's own plugin line, so a broken `local:` in buf.gen.yaml fails here too.
    const local = /- local: (\[node,[^\]]*protoc-gen-openapi[^\]]*\])/.exec(config)?.[1];
    expect(local).toBeDefined();
    writeFileSync(
      template,
      `version: v2\nplugins:\n  - local: ${local}\n    out: ${join(fixture.dir, "out")}\n    strategy: all\n    opt: [title=Shop, version=v9, mtls_service=shop.v1.DeviceService]\n`,
    );
    execFileSync(BUF, ["generate", join(fixture.dir, "module"), "--template", template, "--path", join(fixture.dir, "module/shop"), "--path", join(fixture.dir, "module/google")], {
      cwd: ROOT,
      stdio: "pipe",
    });
    // google/ is in the run so google.rpc.ErrorInfo is known, as it is for proto/.
    const files = set.file.map((f) => f.name).filter((n) => n === SHOP || n.startsWith("google/"));
    expect(readFileSync(join(fixture.dir, "out/openapi.json"), "utf8")).toBe(generate(files).content);
  });
});
