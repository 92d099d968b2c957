/**
 * `node --conditions=source --import tsx tools/appliance-sim/main.ts (--licensing https://localhost:7443 |
 *   --offline <dir>) --ca data/pki/ca.crt (--license-id <id> --license-token <token|@file> | --licenses-file <jsonl> |
 *   --deployment-file <json>) [--count N] [--state-dir data/sim] [--fingerprint-prefix sim-]`
 *
 * Plays N appliances with @lcp/appliance-sdk (activate with a CSR, hold the heartbeat stream) and
 * prints live state counts every second as plain lines (no terminal tricks, so tests and logs can
 * read them). Commands on stdin: `offline`, `online`, `status`, `quit`. Exits 0 on quit, end of
 * stdin is ignored (so it can run detached), SIGINT/SIGTERM stop it cleanly; usage errors exit 2.
 * With `--offline <dir>` the boxes are air-gapped: they write request files there and import the
 * response files an operator puts beside them (commands `import`, `renew`).
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { createSimulator, type SimLicense } from "./sim.js";

const DEFAULT_ISSUER = "https://lcp.local/licensing";

const HELP = `Usage: node --conditions=source --import tsx tools/appliance-sim/main.ts [options]

  --licensing <url>            licensing's URL, e.g. https://localhost:7443
  --offline <dir>              instead of --licensing: air-gapped boxes; box i writes
                               <dir>/<fingerprint>.request and imports <dir>/<fingerprint>.response
  --ca <file>                  the control plane CA, e.g. data/pki/ca.crt (required)
  --license-id <id>            licence id (with --license-token)
  --license-token <tok|@file>  the licence token, or @path to read it from
  --licenses-file <file>       JSON lines of {"licenseId","licenseToken"}: box i uses line i mod n
  --deployment-file <file>     JSON with {licenseId, licenseToken} or a License {id, token}
                               (e.g. saved from ProvisionDeployment / IssueLicense)
  --count <n>                  boxes to play (default: 1, or the number of licences in the file)
  --state-dir <dir>            where each box keeps its state file (default data/sim)
  --fingerprint-prefix <p>     box i has fingerprint <p><i> (default sim-)
  --issuer <iss>               token issuer to pin (default ${DEFAULT_ISSUER})
  --trust-domain <td>          SPIFFE trust domain (default lcp.local)
  --http1                      Connect over HTTP/1.1 with the unary SendHeartbeat
  --verbose / --quiet          per-box events (default: verbose when count <= 10)
  -h, --help

Commands on stdin: offline (drop all streams, stop reconnecting), online, status, quit;
air-gapped: import (import the responses present), renew (write renewal requests).
`;

class UsageError extends Error {
  override name = "UsageError";
}

function readArg(value: string): string {
  return value.startsWith("@") ? readFileSync(value.slice(1), "utf8").trim() : value;
}

function licensesFromJsonLines(path: string): SimLicense[] {
  return readFileSync(path, "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "")
    .map((line, i) => {
      const v = JSON.parse(line) as Partial<SimLicense>;
      if (typeof v.licenseId !== "string" || typeof v.licenseToken !== "string") throw new UsageError(`${path} line ${i + 1}: needs licenseId and licenseToken`);
      return { licenseId: v.licenseId, licenseToken: v.licenseToken };
    });
}

function licenseFromDeploymentFile(path: string): SimLicense {
  const v = JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
  // Accept our own shape, a License message, or a response that wraps one.
  const candidates = [v, v["license"]].filter((c): c is Record<string, unknown> => typeof c === "object" && c !== null);
  for (const c of candidates) {
    const id = c["licenseId"] ?? c["id"];
    const token = c["licenseToken"] ?? c["token"];
    if (typeof id === "string" && typeof token === "string") return { licenseId: id, licenseToken: token };
  }
  throw new UsageError(`${path}: no licenseId/licenseToken (or license.id/license.token) found`);
}

async function main(argv: string[]): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        licensing: { type: "string" },
        offline: { type: "string" },
        ca: { type: "string" },
        "license-id": { type: "string" },
        "license-token": { type: "string" },
        "licenses-file": { type: "string" },
        "deployment-file": { type: "string" },
        count: { type: "string" },
        "state-dir": { type: "string", default: "data/sim" },
        "fingerprint-prefix": { type: "string", default: "sim-" },
        issuer: { type: "string", default: DEFAULT_ISSUER },
        "trust-domain": { type: "string" },
        http1: { type: "boolean", default: false },
        verbose: { type: "boolean" },
        quiet: { type: "boolean" },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  if (!values.licensing === !values.offline) throw new UsageError("give --licensing or --offline (one of them)");
  if (!values.ca) throw new UsageError("--ca is required");
  let licenses: SimLicense[];
  if (values["licenses-file"]) licenses = licensesFromJsonLines(values["licenses-file"]);
  else if (values["deployment-file"]) licenses = [licenseFromDeploymentFile(values["deployment-file"])];
  else if (values["license-id"] && values["license-token"]) licenses = [{ licenseId: values["license-id"], licenseToken: readArg(values["license-token"]) }];
  else throw new UsageError("give --license-id with --license-token, or --licenses-file, or --deployment-file");
  if (licenses.length === 0) throw new UsageError("no licences given");
  const count = values.count === undefined ? licenses.length : Number(values.count);
  if (!Number.isSafeInteger(count) || count < 1) throw new UsageError("--count must be a positive integer");

  const print = (line: string) => process.stdout.write(`${line}\n`);
  const sim = createSimulator({
    ...(values.licensing ? { licensingUrl: values.licensing } : { filesDir: resolve(values.offline!) }),
    caPem: readFileSync(values.ca, "utf8"),
    issuer: values.issuer,
    ...(values["trust-domain"] ? { trustDomain: values["trust-domain"] } : {}),
    licenses,
    count,
    stateDir: resolve(values["state-dir"]),
    fingerprintPrefix: values["fingerprint-prefix"],
    http1: values.http1,
    ...(values.verbose ? { verbose: true } : values.quiet ? { verbose: false } : {}),
    print,
  });

  const started = Date.now();
  const ticker = setInterval(() => print(`t=${Math.round((Date.now() - started) / 1000)}s ${sim.countsLine()}`), 1_000);
  let stopping: Promise<void> | null = null;
  const shutdown = (why: string) => {
    stopping ??= (async () => {
      print(`sim: stopping (${why})`);
      clearInterval(ticker);
      rl.close();
      await sim.stop();
      print(`sim: stopped ${sim.countsLine()}`);
      process.exit(0);
    })();
    return stopping;
  };

  const rl = createInterface({ input: process.stdin, terminal: false });
  rl.on("line", (raw) => {
    const command = raw.trim().toLowerCase();
    void (async () => {
      switch (command) {
        case "":
          return;
        case "offline":
          await sim.offline();
          print(`sim: offline (streams dropped, not reconnecting) ${sim.countsLine()}`);
          return;
        case "online":
          sim.online();
          print("sim: online (reconnecting)");
          return;
        case "status":
          for (const line of sim.statusLines()) print(line);
          print(`status ${sim.countsLine()}`);
          return;
        case "import":
          await sim.importResponses();
          print(`status ${sim.countsLine()}`);
          return;
        case "renew":
          await sim.writeRenewalRequests();
          return;
        case "quit":
        case "exit":
          await shutdown("quit");
          return;
        default:
          print(`sim: unknown command ${JSON.stringify(command)} (offline, online, status, import, renew, quit)`);
      }
    })().catch((error: unknown) => print(`sim: command failed: ${(error as Error).message}`));
  });
  process.once("SIGINT", () => void shutdown("SIGINT"));
  process.once("SIGTERM", () => void shutdown("SIGTERM"));

  await sim.run();
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof UsageError) {
    process.stderr.write(`appliance-sim: ${error.message}\n\n${HELP}`);
    process.exit(2);
  }
  process.stderr.write(`appliance-sim: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
