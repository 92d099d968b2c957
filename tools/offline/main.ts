/**
 * `npm run -s offline -- respond <request-file> > response.jwt`
 *
 * Answers an air-gapped box's request file (activation or renewal, told apart by its `typ`) through
 * licensing's HTTP paths (`POST /offline/activations`, `POST /offline/renewals`) with the caller's
 * admin token, and prints the response file — only the file goes to stdout, so it can be
 * redirected; what the answer says goes to stderr. The token is read from `LCP_TOKEN` or
 * `--token-file`, never from the command line, where other users of the machine could read it.
 * Exit codes: 0 answered, 1 refused by licensing (its error on stderr), 2 a usage or local error.
 */
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { createTrustingFetch, MAX_OFFLINE_FILE_BYTES, OFFLINE_FILE_TYPES } from "@lcp/tokens";
import { decodeProtectedHeader } from "jose";

const HELP = `Usage: npm run -s offline -- respond <request-file|-> [options] > response.jwt

Answers the request file an air-gapped box wrote (an activation or a renewal request) and prints
the response file to carry back to the box. "-" reads the request from stdin.

Options:
  --licensing <url>     licensing's address (default $LICENSING_URL or https://localhost:7443)
  --ca-file <path>      the CA licensing's certificate chains to (default $CA_FILE or $DATA_DIR/pki/ca.crt)
  --token-file <path>   a file holding the admin bearer token (default: $LCP_TOKEN)
  -h, --help            show this help

The token needs the license.issue permission (onboarding, support, super_admin). In development:
  LCP_TOKEN=$(npm run -s token -- --role onboarding) npm run -s offline -- respond request.jwt > response.jwt
`;

class UsageError extends Error {
  override name = "UsageError";
}

/** Licensing refused the request: its message is printed, exit 1. */
class RefusedError extends Error {
  override name = "RefusedError";
}

async function readBounded(path: string): Promise<string> {
  const text = path === "-" ? await readStdin() : await readFile(path, "utf8").catch((error: unknown) => {
    throw new UsageError(`cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? "error"})`);
  });
  if (Buffer.byteLength(text) > MAX_OFFLINE_FILE_BYTES) throw new UsageError(`${path} is larger than ${MAX_OFFLINE_FILE_BYTES} bytes: not a request file`);
  return text.trim();
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_OFFLINE_FILE_BYTES) throw new UsageError(`stdin holds more than ${MAX_OFFLINE_FILE_BYTES} bytes: not a request file`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** Which request a file is, by its header's `typ` (read unverified: licensing verifies). */
function kindOf(file: string): "activations" | "renewals" {
  let typ: unknown;
  try {
    typ = decodeProtectedHeader(file).typ;
  } catch {
    typ = undefined;
  }
  if (typ === OFFLINE_FILE_TYPES.activationRequest) return "activations";
  if (typ === OFFLINE_FILE_TYPES.renewalRequest) return "renewals";
  throw new UsageError("the file is not a request an appliance wrote (neither an activation nor a renewal request)");
}

async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        licensing: { type: "string" },
        "ca-file": { type: "string" },
        "token-file": { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: true,
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  const [command, path, ...rest] = positionals;
  if (command !== "respond") throw new UsageError(command === undefined ? "a command is required: respond" : `unknown command ${JSON.stringify(command.slice(0, 32))}; the command is respond`);
  if (path === undefined || rest.length > 0) throw new UsageError("respond takes exactly one request file (or - for stdin)");

  const get = (name: string) => env[name]?.trim() || undefined;
  const licensing = (values.licensing ?? get("LICENSING_URL") ?? "https://localhost:7443").replace(/\/+$/, "");
  const caFile = values["ca-file"] ?? get("CA_FILE") ?? join(resolve(get("DATA_DIR") ?? "./data"), "pki", "ca.crt");
  const token = values["token-file"] !== undefined ? (await readBounded(values["token-file"])).trim() : get("LCP_TOKEN");
  if (!token) throw new UsageError("no admin token: set LCP_TOKEN or pass --token-file");

  const file = await readBounded(path);
  const kind = kindOf(file);
  const caPem = await readFile(caFile, "utf8").catch((error: unknown) => {
    throw new UsageError(`cannot read the CA ${caFile} (${(error as NodeJS.ErrnoException).code ?? "error"}); pass --ca-file`);
  });
  const fetch = createTrustingFetch({ caPem, timeoutMs: 30_000 });
  const response = await fetch(`${licensing}/offline/${kind}`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ requestFile: file }),
  });
  const body = (await response.json().catch(() => ({}))) as {
    responseFile?: string;
    answer?: Record<string, unknown>;
    message?: string;
    details?: { reason?: string }[];
  };
  if (!response.ok || typeof body.responseFile !== "string") {
    // google.rpc.Status: the ErrorInfo detail's reason is the code to look up (LICENSE_REVOKED …).
    const reason = body.details?.find((d) => typeof d.reason === "string")?.reason;
    throw new RefusedError(`licensing refused the request (HTTP ${response.status}${reason ? `, ${reason}` : ""}): ${body.message ?? "no message"}`);
  }
  process.stdout.write(`${body.responseFile}\n`);
  const a = body.answer ?? {};
  const lease = a["leaseSeq"] ? `, lease ${String(a["leaseSeq"])} valid until ${String(a["leaseExpireTime"])}, renew from ${String(a["renewTime"])}` : "";
  process.stderr.write(`offline: ${kind === "activations" ? "activation" : "renewal"} answered for licence ${String(a["licenseId"])}: ${String(a["state"])}${a["lockReason"] ? ` (${String(a["lockReason"])})` : ""}${lease}; import before ${String(a["responseExpireTime"])}\n`);
}

main(process.argv.slice(2), process.env).catch((error: unknown) => {
  const message = error instanceof UsageError ? `${error.message}\nRun with --help for usage.` : String((error as Error)?.message ?? error);
  process.stderr.write(`offline: ${message}\n`);
  process.exitCode = error instanceof RefusedError ? 1 : 2;
});
