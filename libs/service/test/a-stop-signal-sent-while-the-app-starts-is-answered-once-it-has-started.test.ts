import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";

const FIXTURE = fileURLToPath(new URL("./fixtures/slow-start.ts", import.meta.url));

it("a SIGTERM sent while the app starts closes it once started, and the process exits 0", async () => {
  const child = spawn(process.execPath, ["--conditions=source", "--import", "tsx", FIXTURE], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  await new Promise<void>((resolve) =>
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes("starting\n")) resolve();
    }),
  );
  child.kill("SIGTERM");
  expect(await exited).toEqual({ code: 0, signal: null });
  expect(out).toBe("starting\nstarted\nclosed\n");
}, 30_000);
