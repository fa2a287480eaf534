import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { ROOT } from "./processes.js";

/** One service process started on its own, with the address from its ready line. */
export interface RunningService {
  child: ChildProcess;
  address: string;
  metrics?: string;
  rest?: string;
  /** Everything it printed so far (stdout and stderr). */
  output(): string;
  /** Resolves with the exit code once it has exited. */
  exited: Promise<number>;
  stop(): Promise<void>;
}

/** Starts `node entry args` and waits for its `{"ready": ...}` line (or its exit, which rejects). */
export function startService(entry: string, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<RunningService> {
  const child = spawn(process.execPath, [entry, ...args], { cwd: ROOT, env: { ...process.env, ...opts.env }, stdio: ["ignore", "pipe", "pipe"] });
  let text = "";
  child.stderr!.on("data", (d: Buffer) => (text += d));
  const exited = new Promise<number>((resolve) => child.on("exit", (code, signal) => resolve(code ?? (signal ? 128 : 1))));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${entry} printed no ready line in time:\n${text}`));
    }, opts.timeoutMs ?? 30_000);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${entry} exited ${code} before it was ready:\n${text}`));
    });
    createInterface({ input: child.stdout! }).on("line", (line) => {
      text += `${line}\n`;
      if (!line.startsWith('{"ready"')) return;
      clearTimeout(timer);
      const r = JSON.parse(line) as { address: string; metrics?: string; rest?: string };
      resolve({
        child,
        address: r.address,
        metrics: r.metrics,
        rest: r.rest,
        output: () => text,
        exited,
        stop: async () => {
          if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
          await exited;
        },
      });
    });
  });
}
