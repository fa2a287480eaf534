import { readFileSync, readdirSync } from "node:fs";

/**
 * A process's CPU time so far over all its threads, and the time its
 * threads were runnable but waited for a core (Linux /proc/PID/task/TID/
 * schedstat: run and run-queue nanoseconds). The wait is the CPU other
 * processes held: on a shared machine, what a latency tail can be made of
 * that neither the server nor the load generator caused. Zeros where
 * /proc is not there.
 */
export function cpuOf(pid: number): { runMs: number; waitMs: number } {
  let run = 0;
  let wait = 0;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        const [r, w] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ").map(Number);
        run += r!;
        wait += w!;
      } catch {
        // a thread that ended meanwhile
      }
    }
  } catch {
    // no /proc
  }
  return { runMs: run / 1e6, waitMs: wait / 1e6 };
}
