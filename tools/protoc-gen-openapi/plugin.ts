import { create, createFileRegistry, maximumEdition, minimumEdition, protoInt64 } from "@bufbuild/protobuf";
import {
  CodeGeneratorResponse_Feature,
  CodeGeneratorResponseSchema,
  FileDescriptorSetSchema,
  type CodeGeneratorRequest,
  type CodeGeneratorResponse,
} from "@bufbuild/protobuf/wkt";
import type { Plugin } from "@bufbuild/protoplugin";
import { buildOpenApiDocument, type DocumentOptions } from "./document.js";
import { HttpRuleError } from "./http-rule.js";

/** The plugin's options (buf.gen.yaml `opt:`), after parsing. */
export interface OpenApiPluginOptions extends DocumentOptions {
  /** The one file written, relative to the plugin's `out` directory. */
  readonly file: string;
}

const MAX_OPTION_LENGTH = 200;

/**
 * Parses `key=value` options: `title`, `version`, `file` (default `openapi.json`) and
 * `mtls_service=<pkg.Service>` (repeatable). An unknown key or an unsafe file name is refused.
 */
export function parseOptions(parameter: string): OpenApiPluginOptions {
  let title = "API";
  let version = "0.0.0";
  let file = "openapi.json";
  const mtlsServices = new Set<string>();
  for (const raw of parameter.split(",")) {
    if (raw.trim() === "") continue;
    const eq = raw.indexOf("=");
    const key = (eq < 0 ? raw : raw.slice(0, eq)).trim();
    const value = eq < 0 ? "" : raw.slice(eq + 1).trim();
    if (value === "" || value.length > MAX_OPTION_LENGTH) {
      throw new HttpRuleError(`option ${JSON.stringify(key.slice(0, 40))} needs a value of 1–${MAX_OPTION_LENGTH} characters`);
    }
    switch (key) {
      case "title":
        title = value;
        break;
      case "version":
        version = value;
        break;
      case "file":
        if (!/^[A-Za-z0-9_.-]+\.json$/.test(value) || value.startsWith(".")) {
          throw new HttpRuleError(`option file must be a plain *.json name, got ${JSON.stringify(value)}`);
        }
        file = value;
        break;
      case "mtls_service":
        mtlsServices.add(value);
        break;
      default:
        throw new HttpRuleError(`unknown option ${JSON.stringify(key.slice(0, 40))} (title, version, file, mtls_service)`);
    }
  }
  return { title, version, file, mtlsServices };
}

/**
 * protoc-gen-openapi: one OpenAPI 3.1 document (JSON) for every RPC with a `google.api.http`
 * rule in the files to generate. Run it with buf's `strategy: all`, so it sees every file at once
 * and writes one document.
 */
export const protocGenOpenApi: Plugin = {
  name: "protoc-gen-openapi",
  version: "1.0.0",
  run(request: CodeGeneratorRequest): CodeGeneratorResponse {
    const options = parseOptions(request.parameter);
    const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: request.protoFile }));
    const files = request.fileToGenerate.map((name) => {
      const file = registry.getFile(name);
      if (file === undefined) throw new HttpRuleError(`file to generate ${name} is not in the request`);
      return file;
    });
    const document = buildOpenApiDocument(files, registry, options);
    return create(CodeGeneratorResponseSchema, {
      supportedFeatures: protoInt64.parse(
        CodeGeneratorResponse_Feature.PROTO3_OPTIONAL | CodeGeneratorResponse_Feature.SUPPORTS_EDITIONS,
      ),
      minimumEdition,
      maximumEdition,
      file: [{ name: options.file, content: `${JSON.stringify(document, null, 2)}\n` }],
    });
  },
};
