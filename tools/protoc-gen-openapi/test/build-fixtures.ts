import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
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
 * A temporary buf module: the fixtures plus the vendored proto/google protos they import.
 * `dispose()` removes it.
 */
export function createFixtureModule(): { dir: string; dispose(): void } {
  const dir = mkdtempSync(join(tmpdir(), "protoc-gen-openapi-"));
  const module = join(dir, "module");
  cpSync(FIXTURES, module, { recursive: true });
  cpSync(join(ROOT, "proto/google"), join(module, "google"), { recursive: true });
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
