import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { create, fromBinary } from "@bufbuild/protobuf";
import {
  CodeGeneratorRequestSchema,
  FileDescriptorSetSchema,
  type CodeGeneratorRequest,
  type FileDescriptorSet,
} from "@bufbuild/protobuf/wkt";

/** The repository root (tests run buf and node from there, as `npm run gen` does). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
/** The fixture protos beside this file. */
export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), "fixtures");
/** The buf CLI from node_modules. */
export const BUF = join(ROOT, "node_modules/.bin/buf");

/**
 * Rules the plugin must refuse, one file each (`bad/v1/<name>.proto`, service `Call` on
 * `CallRequest { string id; Ref ref }`), so a test can hand the plugin one of them at a time.
 */
export const BAD_RULES: Readonly<Record<string, string>> = {
  unknown_field: 'get: "/v1/x/{nope}"',
  get_body: 'get: "/v1/x" body: "*"',
  unbalanced: 'get: "/v1/x/{id"',
  message_var: 'get: "/v1/x/{ref}"',
  bad_body_field: 'post: "/v1/x" body: "nope"',
  duplicate: 'get: "/v1/same" additional_bindings {get: "/v1/same"}',
  bound_twice: 'get: "/v1/{id}/{id}"',
  custom_kind: 'custom: {kind: "FETCH" path: "/v1/x"}',
  long_path: `get: "/v1/${"a".repeat(1100)}"`,
  relative_path: 'get: "v1/x"',
};

function badProto(name: string, rule: string): string {
  return [
    'syntax = "proto3";',
    `package bad.v1.${name};`,
    'import "google/api/annotations.proto";',
    "service CallService {",
    `  rpc Call(CallRequest) returns (CallResponse) { option (google.api.http) = {${rule}}; }`,
    "}",
    "message Ref { string id = 1; }",
    "message CallRequest { string id = 1; Ref ref = 2; }",
    "message CallResponse {}",
    "",
  ].join("\n");
}

/**
 * A temporary buf module: the fixtures, the refused rules of BAD_RULES, and the vendored
 * proto/google protos they import. `dispose()` removes it.
 */
export function createFixtureModule(): { dir: string; dispose(): void } {
  const dir = mkdtempSync(join(tmpdir(), "protoc-gen-openapi-"));
  const module = join(dir, "module");
  cpSync(FIXTURES, module, { recursive: true });
  cpSync(join(ROOT, "proto/google"), join(module, "google"), { recursive: true });
  mkdirSync(join(module, "bad/v1"), { recursive: true });
  for (const [name, rule] of Object.entries(BAD_RULES)) {
    writeFileSync(join(module, `bad/v1/${name}.proto`), badProto(name, rule));
  }
  return { dir, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Compiles the module with `buf build` (source info kept, so comments reach the plugin). */
export function buildDescriptorSet(dir: string): FileDescriptorSet {
  const out = join(dir, "image.binpb");
  execFileSync(BUF, ["build", join(dir, "module"), "-o", out], { cwd: ROOT, stdio: "pipe" });
  return fromBinary(FileDescriptorSetSchema, readFileSync(out));
}

/** The request buf would send for `files` of `set`, with plugin options `parameter`. */
export function requestFor(set: FileDescriptorSet, files: string[], parameter = ""): CodeGeneratorRequest {
  return create(CodeGeneratorRequestSchema, { fileToGenerate: files, protoFile: set.file, parameter });
}
