import type { ChildProcess } from "node:child_process";
import { fstatSync } from "node:fs";
import type { Socket } from "node:net";

/**
 * A service started by a launcher that is not meant to outlive it (`pangea run`'s services, `pangea serve`, the
 * tests' clusters) gets the write end of a pipe kept open by the launcher on its stdin: when the launcher dies in any
 * way (SIGKILL, SIGPIPE from `pangea run ... | head`), the pipe reads end-of-file and the service stops as on SIGTERM,
 * instead of running on holding its ports with nobody to stop it. Both ends live here.
 */
const LAUNCHER_PIPE_ENV = "PANGEA_EXIT_WITH_LAUNCHER";

/** The launcher's side: spawn with `stdio: ["pipe", ...]` and this environment. */
export function launcherPipeEnv(): Readonly<Record<string, string>> {
  return { [LAUNCHER_PIPE_ENV]: "1" };
}

/**
 * The launcher's side, once spawned: the pipe is held but does not keep the launcher alive, and a write error (the
 * child gone) is nobody's concern, since nothing is written.
 */
export function holdLauncherPipe(child: ChildProcess): void {
  if (!child.stdin) return;
  child.stdin.on("error", () => {});
  (child.stdin as unknown as Socket).unref();
}

/**
 * The service's side (runMain). Only when stdin really is a pipe (or a socket pair, as Node's child_process makes
 * one): the variable copied into another environment (a terminal, /dev/null) changes nothing.
 */
export function exitWithLauncher(): void {
  if (process.env[LAUNCHER_PIPE_ENV] !== "1") return;
  let pipe = false;
  try {
    const s = fstatSync(0);
    pipe = s.isFIFO() || s.isSocket();
  } catch {
    return;
  }
  if (!pipe) return;
  const stdin = process.stdin as unknown as Socket;
  stdin.on("end", () => process.kill(process.pid, "SIGTERM"));
  stdin.on("error", () => process.kill(process.pid, "SIGTERM"));
  stdin.resume();
  // Watching must not keep a service alive that has finished.
  stdin.unref?.();
}
