import { create, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { controlPlaneServices } from "@lcp/proto";
import { ServerReflectionRequestSchema } from "@lcp/proto/grpc/reflection/v1/reflection_pb";
import { answerReflection, createReflectionIndex } from "@lcp/rpc";

const index = createReflectionIndex(controlPlaneServices);
const ask = (messageRequest: Parameters<typeof create<typeof ServerReflectionRequestSchema>>[1] extends infer T ? T extends { messageRequest?: infer M } ? M : never : never) =>
  answerReflection(index, create(ServerReflectionRequestSchema, { messageRequest })).messageResponse;
const fileNames = (r: ReturnType<typeof ask>) =>
  r.case === "fileDescriptorResponse" ? r.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b).name) : [];

describe("server reflection", () => {
  it("resolves services, methods, messages, nested types and enum values to their file, with its imports", () => {
    for (const symbol of [
      "licensing.v1.LicensingService",
      "licensing.v1.LicensingService.IssueLicense",
      "signing.v1.SignRequest",
      "signing.v1.KeyState",
      "signing.v1.KEY_STATE_ACTIVE",
    ]) {
      const names = fileNames(ask({ case: "fileContainingSymbol", value: symbol }));
      expect(names.length, symbol).toBeGreaterThan(0);
    }
    const sign = fileNames(ask({ case: "fileContainingSymbol", value: "signing.v1.SignRequest" }));
    expect(sign[0]).toBe("signing/v1/signing_key_service.proto");
    expect(sign).toEqual(expect.arrayContaining(["google/protobuf/struct.proto", "google/protobuf/timestamp.proto"]));
  });

  it("serves files by name, including well-known types", () => {
    expect(fileNames(ask({ case: "fileByFilename", value: "google/protobuf/duration.proto" }))).toEqual([
      "google/protobuf/duration.proto",
    ]);
  });

  it("answers unknown symbols, files and extensions with NOT_FOUND in-band", () => {
    for (const r of [
      ask({ case: "fileContainingSymbol", value: "no.such.Thing" }),
      ask({ case: "fileByFilename", value: "nope.proto" }),
      ask({ case: "fileContainingExtension", value: { containingType: "signing.v1.SignRequest", extensionNumber: 100 } }),
    ]) {
      expect(r).toMatchObject({ case: "errorResponse", value: { errorCode: 5 } });
    }
    expect(ask({ case: "allExtensionNumbersOfType", value: "signing.v1.SignRequest" })).toMatchObject({
      case: "allExtensionNumbersResponse",
      value: { baseTypeName: "signing.v1.SignRequest", extensionNumber: [] },
    });
  });

  it("lists every indexed service", () => {
    const r = ask({ case: "listServices", value: "" });
    expect(r.case === "listServicesResponse" && r.value.service.map((s) => s.name)).toEqual(
      controlPlaneServices.map((s) => s.typeName),
    );
  });
});
