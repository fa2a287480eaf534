/**
 * The one line a service prints on stdout once it serves, so launchers and
 * tests can start it with --port 0 and learn the real address.
 */
export function announceReady(service: string, address: string, extra: Record<string, string> = {}): void {
  process.stdout.write(`${JSON.stringify({ ready: service, address, ...extra })}\n`);
}

/** Runs `stop` once on SIGINT/SIGTERM, then exits with `code`. */
export function onShutdownSignal(stop: () => Promise<void>, code = 0): void {
  let stopping = false;
  const handler = () => {
    if (stopping) process.exit(code);
    stopping = true;
    stop().finally(() => process.exit(code));
  };
  process.once("SIGINT", handler);
  process.once("SIGTERM", handler);
}
