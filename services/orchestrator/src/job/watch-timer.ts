/**
 * Calls `tick(now, blockedMs)` every `tickMs` (the timer unref'd): `blockedMs` is how long this process could not run
 * beyond a tick (its event loop blocked by a long checkpoint write, or the machine stalled), 0 for a tick on time or
 * nearly. Watchdogs credit that time to what they watch: it was not the watched worker's.
 */
export function watchTimer(tickMs: number, tick: (now: number, blockedMs: number) => void): NodeJS.Timeout {
  let last = Date.now();
  const timer = setInterval(() => {
    const now = Date.now();
    const late = now - last - tickMs;
    last = now;
    tick(now, late > tickMs ? late : 0);
  }, tickMs);
  timer.unref();
  return timer;
}
