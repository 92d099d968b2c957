import { create, fromBinary, toBinary, type DescFile, type DescService } from "@bufbuild/protobuf";
import { nestedTypes } from "@bufbuild/protobuf/reflect";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter } from "@connectrpc/connect";
import { createPublicStreamBudget, withinBudget, type PublicStreamBudget } from "./public-streams.js";
import {
  ServerReflection as ServerReflectionV1,
  ServerReflectionRequestSchema as RequestV1,
  ServerReflectionResponseSchema as ResponseV1,
  type ServerReflectionRequest,
  type ServerReflectionResponse,
} from "@lcp/proto/grpc/reflection/v1/reflection_pb";
import {
  ServerReflection as ServerReflectionV1alpha,
  ServerReflectionRequestSchema as RequestV1alpha,
  ServerReflectionResponseSchema as ResponseV1alpha,
} from "@lcp/proto/grpc/reflection/v1alpha/reflection_pb";

/** The two reflection services `registerReflection` serves (grpcurl still speaks v1alpha). */
export const REFLECTION_SERVICES: readonly DescService[] = [ServerReflectionV1, ServerReflectionV1alpha];

// gRPC status codes inside ErrorResponse (the reflection protocol reports per-request errors
// in-band, keeping the stream open).
const NOT_FOUND = 5;
const INVALID_ARGUMENT = 3;

/** The descriptor index reflection answers from. */
export interface ReflectionIndex {
  /** Fully-qualified service names, as `list_services` reports them. */
  readonly services: readonly string[];
  /** The file with this name (`licensing/v1/types.proto`), and every file it imports. */
  fileByName(name: string): DescFile | undefined;
  /** The file declaring a fully-qualified symbol (service, method, message, enum, field …). */
  fileBySymbol(symbol: string): DescFile | undefined;
  /** Whether a message type is known (for `all_extension_numbers_of_type`). */
  hasMessage(typeName: string): boolean;
}

/**
 * Indexes the files of the given services and their transitive imports (well-known types
 * included: their DescFiles come from `@bufbuild/protobuf/wkt` through the generated imports).
 */
export function createReflectionIndex(services: readonly DescService[]): ReflectionIndex {
  const files = new Map<string, DescFile>();
  const symbols = new Map<string, DescFile>();
  const messages = new Set<string>();
  const visit = (file: DescFile) => {
    if (files.has(file.proto.name)) return;
    files.set(file.proto.name, file);
    for (const type of nestedTypes(file)) {
      symbols.set(type.typeName, file);
      switch (type.kind) {
        case "service":
          for (const m of type.methods) symbols.set(`${type.typeName}.${m.name}`, file);
          break;
        case "message":
          messages.add(type.typeName);
          for (const f of type.fields) symbols.set(`${type.typeName}.${f.name}`, file);
          for (const o of type.oneofs) symbols.set(`${type.typeName}.${o.name}`, file);
          break;
        case "enum":
          // Enum values are scoped to the enum's parent, as in protobuf's name resolution.
          for (const v of type.values) {
            const scope = type.parent?.typeName ?? file.proto.package;
            symbols.set(scope ? `${scope}.${v.name}` : v.name, file);
          }
          break;
        default:
          break;
      }
    }
    for (const dep of file.dependencies) visit(dep);
  };
  const seen = new Set<string>();
  const names: string[] = [];
  for (const service of services) {
    if (seen.has(service.typeName)) continue;
    seen.add(service.typeName);
    names.push(service.typeName);
    visit(service.file);
  }
  return {
    services: names,
    fileByName: (name) => files.get(name),
    fileBySymbol: (symbol) => symbols.get(symbol.replace(/^\./, "")),
    hasMessage: (typeName) => messages.has(typeName.replace(/^\./, "")),
  };
}

/** A file first, then its transitive imports, each once (the order clients resolve in). */
function withDependencies(file: DescFile): DescFile[] {
  const out: DescFile[] = [];
  const seen = new Set<string>();
  const walk = (f: DescFile) => {
    if (seen.has(f.proto.name)) return;
    seen.add(f.proto.name);
    out.push(f);
    for (const dep of f.dependencies) walk(dep);
  };
  walk(file);
  return out;
}

/** Answers one reflection request from the index (protocol v1; v1alpha is wire-identical). */
export function answerReflection(index: ReflectionIndex, req: ServerReflectionRequest): ServerReflectionResponse {
  const base = { validHost: req.host, originalRequest: req };
  const files = (file: DescFile | undefined, what: string): ServerReflectionResponse => {
    if (!file) return create(ResponseV1, { ...base, messageResponse: error(NOT_FOUND, `${what} not found`) });
    return create(ResponseV1, {
      ...base,
      messageResponse: {
        case: "fileDescriptorResponse",
        value: { fileDescriptorProto: withDependencies(file).map((f) => toBinary(FileDescriptorProtoSchema, f.proto)) },
      },
    });
  };
  const m = req.messageRequest;
  switch (m.case) {
    case "listServices":
      return create(ResponseV1, {
        ...base,
        messageResponse: { case: "listServicesResponse", value: { service: index.services.map((name) => ({ name })) } },
      });
    case "fileByFilename":
      return files(index.fileByName(m.value), `file ${m.value}`);
    case "fileContainingSymbol":
      return files(index.fileBySymbol(m.value), `symbol ${m.value}`);
    case "fileContainingExtension":
      // None of our contracts declares extensions.
      return create(ResponseV1, {
        ...base,
        messageResponse: error(NOT_FOUND, `extension ${m.value.extensionNumber} of ${m.value.containingType} not found`),
      });
    case "allExtensionNumbersOfType":
      if (!index.hasMessage(m.value)) {
        return create(ResponseV1, { ...base, messageResponse: error(NOT_FOUND, `type ${m.value} not found`) });
      }
      return create(ResponseV1, {
        ...base,
        messageResponse: {
          case: "allExtensionNumbersResponse",
          value: { baseTypeName: m.value.replace(/^\./, ""), extensionNumber: [] },
        },
      });
    default:
      return create(ResponseV1, { ...base, messageResponse: error(INVALID_ARGUMENT, "empty reflection request") });
  }
}

function error(code: number, message: string) {
  return { case: "errorResponse" as const, value: { errorCode: code, errorMessage: message } };
}

/**
 * Registers gRPC server reflection v1 and v1alpha (`ServerReflectionInfo`) for `services`, so
 * `grpcurl` and `buf curl --reflect` work with no proto files. The two versions share one
 * implementation: their messages are identical field for field, so v1alpha is translated
 * through the binary encoding. Each open stream holds a slot of `publicStreams` (a client may keep
 * one open without sending, and no credential is asked).
 */
export function registerReflection(
  router: ConnectRouter,
  services: readonly DescService[],
  publicStreams: PublicStreamBudget = createPublicStreamBudget(),
): ReflectionIndex {
  const index = createReflectionIndex([...services, ...REFLECTION_SERVICES]);
  router.service(ServerReflectionV1, {
    serverReflectionInfo: (requests) =>
      withinBudget(publicStreams, "grpc.reflection.v1.ServerReflection/ServerReflectionInfo", async function* () {
        for await (const req of requests) yield answerReflection(index, req);
      }),
  });
  router.service(ServerReflectionV1alpha, {
    serverReflectionInfo: (requests) =>
      withinBudget(publicStreams, "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", async function* () {
        for await (const req of requests) {
          const v1 = fromBinary(RequestV1, toBinary(RequestV1alpha, req));
          yield fromBinary(ResponseV1alpha, toBinary(ResponseV1, answerReflection(index, v1)));
        }
      }),
  });
  return index;
}
