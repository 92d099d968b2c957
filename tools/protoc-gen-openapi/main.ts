// protoc-gen-openapi, run by `npm run gen` (buf.gen.yaml) through node + tsx: reads a
// CodeGeneratorRequest on stdin, writes the OpenAPI document in a CodeGeneratorResponse on stdout.
import { runNodeJs } from "@bufbuild/protoplugin";
import { protocGenOpenApi } from "./plugin.js";

runNodeJs(protocGenOpenApi);
