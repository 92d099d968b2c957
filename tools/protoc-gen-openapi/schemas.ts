import { ScalarType, type AnyDesc, type DescFile, type DescEnum, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { getComments } from "@bufbuild/protoplugin";

/** A JSON Schema (2020-12, the OpenAPI 3.1 dialect) as plain data. */
export type JsonSchema = { [key: string]: unknown };

/**
 * Collects `components.schemas` for the messages and enums an operation reaches, in their proto3
 * JSON form (https://protobuf.dev/programming-guides/json/): 64-bit integers are strings, enums
 * are their names, well-known types take their JSON shape and are inlined, not referenced.
 */
export interface SchemaCollector {
  /** A schema for a value of `message` type: a `$ref` to its component, or the WKT's inline form. */
  message(message: DescMessage): JsonSchema;
  /** A schema for one field as it appears in a JSON object (lists and maps included). */
  field(field: DescField): JsonSchema;
  /** A schema for a single element of the field (what a path or query parameter holds). */
  element(field: DescField): JsonSchema;
  /** Every component collected so far, by full proto name. */
  readonly components: Map<string, JsonSchema>;
}

/** `#/components/schemas/<name>`: the key is the proto full name, which OpenAPI allows as-is. */
export function componentRef(typeName: string): JsonSchema {
  return { $ref: `#/components/schemas/${typeName}` };
}

const INT64_PATTERN = "^-?[0-9]+$";

/** Well-known types whose proto3 JSON form is not an object of their fields. */
const WKT_SCHEMAS: Readonly<Record<string, JsonSchema>> = {
  "google.protobuf.Timestamp": { type: "string", format: "date-time", description: "RFC 3339, UTC (`Z`)." },
  "google.protobuf.Duration": {
    type: "string",
    pattern: "^-?[0-9]+(\\.[0-9]{1,9})?s$",
    description: "Seconds with an `s` suffix, e.g. `3600s` or `1.5s`.",
  },
  "google.protobuf.FieldMask": { type: "string", description: "Comma-separated lowerCamel field paths." },
  "google.protobuf.Empty": { type: "object", additionalProperties: false },
  "google.protobuf.Struct": { type: "object", additionalProperties: true },
  "google.protobuf.Value": { description: "Any JSON value." },
  "google.protobuf.ListValue": { type: "array", items: {} },
  "google.protobuf.Any": {
    type: "object",
    required: ["@type"],
    properties: { "@type": { type: "string" } },
    additionalProperties: true,
  },
  "google.protobuf.DoubleValue": { type: "number" },
  "google.protobuf.FloatValue": { type: "number" },
  "google.protobuf.Int64Value": { type: "string", format: "int64", pattern: INT64_PATTERN },
  "google.protobuf.UInt64Value": { type: "string", format: "uint64", pattern: "^[0-9]+$" },
  "google.protobuf.Int32Value": { type: "integer", format: "int32" },
  "google.protobuf.UInt32Value": { type: "integer", format: "uint32", minimum: 0 },
  "google.protobuf.BoolValue": { type: "boolean" },
  "google.protobuf.StringValue": { type: "string" },
  "google.protobuf.BytesValue": { type: "string", contentEncoding: "base64" },
};

/** The proto3 JSON schema of one scalar type. */
export function scalarSchema(scalar: ScalarType): JsonSchema {
  switch (scalar) {
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return { type: "string", format: "int64", pattern: INT64_PATTERN };
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return { type: "string", format: "uint64", pattern: "^[0-9]+$" };
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return { type: "integer", format: "int32" };
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return { type: "integer", format: "uint32", minimum: 0 };
    case ScalarType.DOUBLE:
      return { type: "number", format: "double" };
    case ScalarType.FLOAT:
      return { type: "number", format: "float" };
    case ScalarType.BOOL:
      return { type: "boolean" };
    case ScalarType.STRING:
      return { type: "string" };
    case ScalarType.BYTES:
      return { type: "string", contentEncoding: "base64" };
  }
}

/** True when `message` is a well-known type with its own JSON form (inlined, never a component). */
export function isWellKnown(message: DescMessage): boolean {
  return message.typeName in WKT_SCHEMAS;
}

/** The leading comment of a descriptor, trimmed, or undefined when it has none. */
export function describe(desc: Exclude<AnyDesc, DescFile>): string | undefined {
  // protoc keeps the space after `//` on every line; drop it so wrapped lines read as written.
  const text = getComments(desc)
    .leading?.split("\n")
    .map((line) => line.replace(/^ /, "").trimEnd())
    .join("\n")
    .trim();
  return text === undefined || text === "" ? undefined : text;
}

/** Creates an empty collector; every component it adds pulls in the types it references. */
export function createSchemaCollector(): SchemaCollector {
  const components = new Map<string, JsonSchema>();

  function enumRef(desc: DescEnum): JsonSchema {
    if (!components.has(desc.typeName)) {
      components.set(desc.typeName, withDescription({ type: "string", enum: desc.values.map((v) => v.name) }, describe(desc)));
    }
    return componentRef(desc.typeName);
  }

  function message(desc: DescMessage): JsonSchema {
    const wkt = WKT_SCHEMAS[desc.typeName];
    if (wkt !== undefined) return structuredClone(wkt);
    if (!components.has(desc.typeName)) {
      // Reserve the name first: a message that refers to itself must not recurse forever.
      components.set(desc.typeName, {});
      components.set(desc.typeName, messageObject(desc));
    }
    return componentRef(desc.typeName);
  }

  function messageObject(desc: DescMessage): JsonSchema {
    const properties: Record<string, JsonSchema> = {};
    for (const f of desc.fields) {
      let schema = field(f);
      const notes = [describe(f)];
      // proto3 JSON has no oneof wrapper: members are ordinary optional properties.
      if (f.oneof !== undefined) {
        const members = f.oneof.fields.map((m) => m.jsonName).join(", ");
        notes.push(`Member of oneof \`${f.oneof.name}\`: at most one of ${members} is set.`);
      }
      const text = notes.filter((n) => n !== undefined).join("\n\n");
      if (text !== "") schema = withDescription(schema, text);
      properties[f.jsonName] = schema;
    }
    return withDescription({ type: "object", properties }, describe(desc));
  }

  // The type of a singular field, of a list's items, or of a map's values: protobuf-es sets
  // exactly one of message, enum and scalar for each of them.
  function valueOf(f: { message?: DescMessage | undefined; enum?: DescEnum | undefined; scalar?: ScalarType | undefined }): JsonSchema {
    if (f.message !== undefined) return message(f.message);
    if (f.enum !== undefined) return enumRef(f.enum);
    return scalarSchema(f.scalar!);
  }

  // A map has no single element: its element schema is the whole object.
  function element(f: DescField): JsonSchema {
    return f.fieldKind === "map" ? field(f) : valueOf(f);
  }

  function field(f: DescField): JsonSchema {
    if (f.fieldKind === "list") return { type: "array", items: valueOf(f) };
    if (f.fieldKind === "map") return { type: "object", additionalProperties: valueOf(f) };
    return valueOf(f);
  }

  return { message, field, element, components };
}

/** `schema` with a description; a `$ref` keeps its siblings in OpenAPI 3.1, so this is safe. */
export function withDescription(schema: JsonSchema, description: string | undefined): JsonSchema {
  return description === undefined ? schema : { ...schema, description };
}
