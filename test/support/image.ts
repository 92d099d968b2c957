/**
 * The container image, reproduced without a container runtime: the repository's `Dockerfile` is
 * read, and its runtime stage is assembled in a scratch folder from what the other stages would
 * have produced — the build stage's `npm run build` is this checkout's own build, and the deps
 * stage's `npm ci --omit=dev` is this checkout's node_modules pruned the same way (same lock
 * file, same omitted set). Only the instructions the Dockerfile uses are understood; anything
 * else fails loudly, so the Dockerfile cannot grow a step this reproduction silently skips.
 */
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join, posix } from "node:path";
import { REPO_ROOT } from "./cluster.js";

/** One instruction of a stage: `COPY --from=build /app/x x` → { op: "COPY", flags: { from: "build" }, args: ["/app/x", "x"] }. */
export interface Instruction {
  readonly op: string;
  readonly flags: Readonly<Record<string, string>>;
  readonly args: readonly string[];
  /** The JSON array form (`ENTRYPOINT ["node"]`), when used. */
  readonly json?: readonly string[];
  readonly line: number;
}

/** One `FROM … AS name` stage. */
export interface Stage {
  readonly name: string;
  readonly from: string;
  readonly instructions: readonly Instruction[];
}

/** The Dockerfile, by stage. */
export interface Dockerfile {
  readonly stages: readonly Stage[];
  /** The last stage: what the image runs. */
  readonly runtime: Stage;
}

/** Reads and parses a Dockerfile (line continuations, comments, `ARG` defaults in `FROM`). */
export function readDockerfile(path = join(REPO_ROOT, "Dockerfile")): Dockerfile {
  const lines = readFileSync(path, "utf8").split("\n");
  const logical: Array<{ text: string; line: number }> = [];
  let pending: { text: string; line: number } | undefined;
  lines.forEach((raw, i) => {
    const trimmed = raw.trim();
    if (pending === undefined && (trimmed === "" || trimmed.startsWith("#"))) return;
    if (pending !== undefined && trimmed.startsWith("#")) return;
    const continued = trimmed.endsWith("\\");
    const piece = continued ? trimmed.slice(0, -1).trim() : trimmed;
    pending = pending ? { text: `${pending.text} ${piece}`, line: pending.line } : { text: piece, line: i + 1 };
    if (!continued) {
      logical.push(pending);
      pending = undefined;
    }
  });

  const args = new Map<string, string>();
  const stages: Array<{ name: string; from: string; instructions: Instruction[] }> = [];
  for (const { text, line } of logical) {
    const m = /^(\S+)\s*(.*)$/.exec(text)!;
    const op = m[1]!.toUpperCase();
    const rest = m[2]!;
    if (op === "ARG" && stages.length === 0) {
      const [name, value] = rest.split("=", 2);
      args.set(name!, value ?? "");
      continue;
    }
    if (op === "FROM") {
      const fm = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest);
      if (!fm) throw new Error(`Dockerfile:${line}: cannot read FROM ${rest}`);
      const from = fm[1]!.replace(/\$\{(\w+)\}/g, (_, name: string) => args.get(name) ?? "");
      stages.push({ name: fm[2] ?? String(stages.length), from, instructions: [] });
      continue;
    }
    const stage = stages.at(-1);
    if (!stage) throw new Error(`Dockerfile:${line}: ${op} before FROM`);
    if (rest.startsWith("[")) {
      stage.instructions.push({ op, flags: {}, args: [], json: JSON.parse(rest) as string[], line });
      continue;
    }
    const words = rest.split(/\s+/).filter(Boolean);
    const flags: Record<string, string> = {};
    while (words[0]?.startsWith("--")) {
      const [k, v] = words.shift()!.slice(2).split("=", 2);
      flags[k!] = v ?? "";
    }
    stage.instructions.push({ op, flags, args: words, line });
  }
  const runtime = stages.at(-1);
  if (!runtime) throw new Error("Dockerfile has no stage");
  return { stages, runtime };
}

/** What the runtime stage says about how the image runs. */
export interface ImageRuntime {
  /** `ENV` lines, in order. */
  readonly env: Readonly<Record<string, string>>;
  readonly workdir: string;
  /** `USER`, as written (`1000:1000`). */
  readonly user: string | undefined;
  readonly entrypoint: readonly string[];
  readonly cmd: readonly string[];
}

/** The runtime stage's environment, working directory, user and command. */
export function imageRuntime(dockerfile: Dockerfile): ImageRuntime {
  const env: Record<string, string> = {};
  let workdir = "/";
  let user: string | undefined;
  let entrypoint: readonly string[] = [];
  let cmd: readonly string[] = [];
  for (const ins of dockerfile.runtime.instructions) {
    if (ins.op === "ENV") {
      const [k, v] = ins.args.join(" ").split("=", 2);
      env[k!] = v ?? "";
    } else if (ins.op === "WORKDIR") workdir = ins.args[0]!;
    else if (ins.op === "USER") user = ins.args[0];
    else if (ins.op === "ENTRYPOINT") entrypoint = ins.json ?? ins.args;
    else if (ins.op === "CMD") cmd = ins.json ?? ins.args;
  }
  return { env, workdir, user, entrypoint, cmd };
}

/** How each RUN of a builder stage is reproduced here; a RUN not listed cannot be. */
const REPRODUCIBLE_RUNS: ReadonlyArray<{ readonly pattern: RegExp; readonly means: "toolchain" | "deps" | "build" }> = [
  { pattern: /^apt-get update && apt-get install -y --no-install-recommends [\w+ -]+&& rm -rf \/var\/lib\/apt\/lists\/\*$/, means: "toolchain" },
  { pattern: /^npm ci --omit=dev( --no-audit| --no-fund)*$/, means: "deps" },
  { pattern: /^npm ci( --no-audit| --no-fund)*$/, means: "toolchain" },
  { pattern: /^npm run build$/, means: "build" },
];

/**
 * Assembles the runtime stage in `dir` (emptied first) and returns how the image runs. The build
 * stage must already have run here (`npm run build`). node_modules of the deps stage is made by
 * hard-linking this checkout's and pruning dev dependencies with npm itself, offline.
 */
export function assembleImage(dir: string, dockerfile = readDockerfile()): ImageRuntime {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const byName = new Map(dockerfile.stages.map((s) => [s.name, s]));
  const built = new Map<string, string>();

  // A builder stage becomes a folder holding what its COPY lines took from the build context;
  // `build` is the checkout itself (COPY . . and npm run build), `deps` a pruned copy.
  const stageRoot = (name: string): string => {
    const done = built.get(name);
    if (done) return done;
    const stage = byName.get(name);
    if (!stage) throw new Error(`COPY --from=${name}: no such stage`);
    const parent = byName.has(stage.from) ? stageRoot(stage.from) : undefined;
    let root: string;
    const runs = stage.instructions.filter((i) => i.op === "RUN").map((i) => i.args.join(" "));
    const means = runs.map((run) => {
      const known = REPRODUCIBLE_RUNS.find((r) => r.pattern.test(run));
      if (!known) throw new Error(`stage ${name}: cannot reproduce RUN ${run}`);
      return known.means;
    });
    if (means.includes("build") || stage.instructions.some((i) => i.op === "COPY" && i.args[0] === "." && i.flags.from === undefined)) {
      root = REPO_ROOT;
    } else {
      root = join(dir, "..", `${posix.basename(dir)}-stage-${name}`);
      rmSync(root, { recursive: true, force: true });
      if (parent) cpSync(parent, root, { recursive: true });
      else mkdirSync(root, { recursive: true });
      for (const ins of stage.instructions) {
        if (ins.op !== "COPY") continue;
        if (ins.flags.from !== undefined) throw new Error(`stage ${name}: COPY --from in a builder stage is not reproduced`);
        const dest = ins.args.at(-1)!;
        const sources = ins.args.slice(0, -1);
        if (sources.length > 1 && !dest.endsWith("/")) throw new Error(`Dockerfile:${ins.line}: COPY of several sources needs a folder (ending in /)`);
        for (const src of sources) {
          const target = dest.endsWith("/") ? join(root, dest, posix.basename(src)) : join(root, dest);
          mkdirSync(dirname(target), { recursive: true });
          cpSync(join(REPO_ROOT, src), target);
        }
      }
      if (means.includes("deps")) {
        execFileSync("cp", ["-al", join(REPO_ROOT, "node_modules"), join(root, "node_modules")]);
        // npm rewrites its hidden lock file; unlink it first so the checkout's copy is untouched.
        rmSync(join(root, "node_modules", ".package-lock.json"), { force: true });
        execFileSync("npm", ["prune", "--omit=dev", "--offline", "--no-audit", "--no-fund"], { cwd: root, stdio: "pipe" });
        // Caches tools keep in node_modules (vite's, vitest's) are no part of what npm installs.
        for (const cache of [".vite", ".vite-temp", ".cache"]) rmSync(join(root, "node_modules", cache), { recursive: true, force: true });
      }
    }
    built.set(name, root);
    return root;
  };

  const runtime = imageRuntime(dockerfile);
  for (const ins of dockerfile.runtime.instructions) {
    if (["ENV", "WORKDIR", "USER", "ENTRYPOINT", "CMD"].includes(ins.op)) continue;
    if (ins.op !== "COPY" || ins.flags.from === undefined || ins.args.length !== 2) {
      throw new Error(`Dockerfile:${ins.line}: the runtime stage may only COPY --from=<stage> <one path> <dest>, ENV, WORKDIR, USER, ENTRYPOINT and CMD`);
    }
    const [src, dest] = ins.args as [string, string];
    const root = stageRoot(ins.flags.from);
    const relative = posix.relative("/app", src);
    if (relative.startsWith("..")) throw new Error(`Dockerfile:${ins.line}: ${src} is outside /app`);
    const from = join(root, relative);
    if (!existsSync(from)) throw new Error(`Dockerfile:${ins.line}: ${src} does not exist in stage ${ins.flags.from} (was everything built?)`);
    const target = join(dir, posix.relative(runtime.workdir, posix.resolve(runtime.workdir, dest)));
    mkdirSync(dirname(target), { recursive: true });
    // node_modules (the deps stage's, already a tree of its own) is hard-linked, being large and
    // hashed by size only; the checkout's files are copied, so editing or rebuilding the checkout
    // while the image runs changes nothing in it.
    execFileSync("cp", [root === REPO_ROOT ? "-r" : "-al", from, target]);
  }
  for (const name of built.keys()) {
    const root = built.get(name)!;
    if (root !== REPO_ROOT) rmSync(root, { recursive: true, force: true });
  }
  return runtime;
}
