import { quantile } from "./quantile.js";

/**
 * How late this machine wakes a sleeping process: timers of `sleepMs` one
 * after another for `seconds`, each one's lateness past its due time. A server that
 * sleeps between requests is woken the same way, so this is a floor under
 * the open loop's tail on this machine whatever the server does (on the
 * 2-core development VM, a C program sleeping 1 ms at a time on the idle
 * machine woke more than 5 ms late about once every 5 s, and once more than
 * 10 ms late in 10-30 s). Read on the idle machine, before the servers start.
 */
export async function wakeLateness(seconds: number, sleepMs = 1): Promise<{ timers: number; p50Ms: number; p99Ms: number; p999Ms: number; maxMs: number; over5Ms: number; over10Ms: number }> {
  const late: number[] = [];
  const until = performance.now() + seconds * 1000;
  while (performance.now() < until) {
    const due = performance.now() + sleepMs;
    await new Promise((r) => setTimeout(r, sleepMs));
    late.push(Math.max(0, performance.now() - due));
  }
  late.sort((a, b) => a - b);
  const q = (p: number) => quantile(late, p)!;
  return { timers: late.length, p50Ms: q(0.5), p99Ms: q(0.99), p999Ms: q(0.999), maxMs: late.at(-1)!, over5Ms: late.filter((x) => x > 5).length, over10Ms: late.filter((x) => x > 10).length };
}
