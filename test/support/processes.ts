import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const ENTRY = {
  orchestrator: join(ROOT, "services/orchestrator/dist/main.js"),
  compute: join(ROOT, "services/compute/dist/main.js"),
  trainer: join(ROOT, "services/trainer/dist/main.js"),
  genData: join(ROOT, "services/compute/dist/gen-data.js"),
  serving: join(ROOT, "services/serving/dist/main.js"),
  exportModel: join(ROOT, "services/orchestrator/dist/export.js"),
  cli: join(ROOT, "packages/cli/dist/main.js"),
};

export interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * Runs a node script to completion (killing it after timeoutMs, which fails the caller's assertions on code).
 * `stopSignal: "SIGTERM"` lets a launcher (`pangea run`) stop the processes it started before it is killed.
 */
export function runNode(entry: string, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; cwd?: string; stopSignal?: NodeJS.Signals } = {}): Promise<Finished> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [entry, ...args], { env: { ...process.env, ...opts.env }, cwd: opts.cwd ?? ROOT });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d));
    child.stderr.on("data", (d: Buffer) => (stderr += d));
    let hard: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      child.kill(opts.stopSignal ?? "SIGKILL");
      if (opts.stopSignal && opts.stopSignal !== "SIGKILL") hard = setTimeout(() => child.kill("SIGKILL"), 10_000);
    }, opts.timeoutMs ?? 60_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      clearTimeout(hard);
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    });
  });
}

/** The lowest port the kernel hands out for port 0 and outgoing connections. */
export { closedPort } from "@pangea/test-utils";

export async function waitFor<T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs: number, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The one-line error a process printed last, without log noise. */
export function lastLine(text: string): string {
  return text.trimEnd().split("\n").at(-1) ?? "";
}
