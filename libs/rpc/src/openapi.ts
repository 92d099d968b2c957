/**
 * The OpenAPI document of the HTTP paths (generated into @lcp/proto by `npm run gen`), as every
 * service's TLS listener and the console serve it. Public, like reflection: it describes, it
 * grants nothing.
 */
import { openApiDocument } from "@lcp/proto";
import type { MetricsResponse } from "./metrics.js";

/** Where the document is served. */
export const OPENAPI_PATH = "/openapi.json";
let openApiText: string | undefined;

/** Answers with the document (headers only for HEAD); serialised once per process. */
export function sendOpenApi(res: MetricsResponse, head: boolean): void {
  openApiText ??= JSON.stringify(openApiDocument);
  res.writeHead(200, { "content-type": "application/json; charset=utf-8", "cache-control": "no-cache" });
  if (head) res.end();
  else res.end(openApiText);
}
