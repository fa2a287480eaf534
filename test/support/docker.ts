import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./processes.js";

/**
 * The Docker engine for the tests of `make docker-build` and `make docker-up`.
 * No container registry is reachable on the development and CI machines, so
 * the base images are local stand-ins built under the public names by
 * ../shared/docker/stand-in-images.sh (which also starts the engine); the
 * product itself names only the public images. The tests fail, never skip,
 * when no engine can be had; PANGEA_SKIP_DOCKER=1 leaves them out on purpose.
 */
export const STAND_IN = join(ROOT, "..", "shared/docker/stand-in-images.sh");
export const skipDocker = process.env.PANGEA_SKIP_DOCKER === "1";

export interface Ran {
  code: number | null;
  out: string;
}

/** Runs a command to its end, its output (both streams) collected; its whole process group is killed after timeoutMs. */
export function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number, cwd = ROOT): Promise<Ran> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"], detached: true });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d));
    child.stderr.on("data", (d: Buffer) => (out += d));
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        // already gone
      }
    }, timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

export const docker = (...args: string[]) => spawnSync("docker", args, { encoding: "utf8" });

/**
 * Runs the stand-in script, once more if it fails: on a fresh machine it
 * installs packages, starts dockerd and builds images from Debian's mirrors,
 * any of which can fail once and work the next time (a mirror's hiccup, an
 * engine slow to come up the first time). Each failure is printed.
 */
function standIns(): void {
  const failed: string[] = [];
  for (let attempt = 1; attempt <= 2; attempt++) {
    const r = spawnSync("bash", [STAND_IN], { encoding: "utf8", timeout: 900_000 });
    if (r.status === 0) return;
    const why = `${STAND_IN} failed (${r.status ?? r.signal}): ${(r.stderr || r.stdout || String(r.error ?? "")).trim().split("\n").at(-1)}`;
    process.stdout.write(`docker tests: attempt ${attempt}: ${why}\n`);
    failed.push(why);
  }
  throw new Error(failed.join("; then "));
}

/** An engine that answers, with the stand-in base images; started (as root) when none answers. */
export function ensureEngine(): void {
  if (docker("info").status === 0) {
    // The engine answers; the stand-ins are built once and kept.
    if (process.getuid?.() === 0 && existsSync(STAND_IN)) standIns();
    return;
  }
  if (!existsSync(STAND_IN)) throw new Error(`no Docker engine answers and ${STAND_IN} is missing`);
  if (process.getuid?.() !== 0) throw new Error(`no Docker engine answers, and starting one (${STAND_IN}) needs root; PANGEA_SKIP_DOCKER=1 leaves these tests out`);
  standIns();
}
