import { readFileSync } from "node:fs";

/**
 * Whether a process of this pid exists on this machine (in this pid
 * namespace): signal 0 delivers nothing, and EPERM means it exists as
 * another user's.
 */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * When a process started (Linux: /proc/PID/stat's start time, in clock ticks
 * since boot), or null where that cannot be read. A pid is reused once its
 * process is gone; the pid with the same start time is the same process.
 */
export function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces and parentheses): state is the 3rd field, start time the 22nd.
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}
