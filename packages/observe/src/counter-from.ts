import { Counter, type Registry } from "prom-client";

/**
 * A Prometheus counter fed from a running total the service already keeps
 * (samples trained, rows evicted): each scrape adds what the total grew by,
 * so the counter stays monotonic even if the source is read late.
 */
export class CounterFrom {
  private readonly counter: Counter<string>;
  private readonly last = new Map<string, number>();

  constructor(registry: Registry, name: string, help: string, labelNames: string[] = []) {
    this.counter = new Counter({ name, help, labelNames, registers: [registry] });
  }

  /** Brings the counter (for these labels) up to `total`. */
  update(total: number, labels: Record<string, string> = {}): void {
    const key = JSON.stringify(labels);
    const prev = this.last.get(key);
    // A label set seen for the first time is exported at once, at 0 if nothing has happened yet: a series that appears
    // only with its first event hides the zero from rate() and from alerts on its absence.
    if (prev === undefined) this.counter.inc(labels, 0);
    if (total > (prev ?? 0)) this.counter.inc(labels, total - (prev ?? 0));
    this.last.set(key, Math.max(prev ?? 0, total));
  }
}
