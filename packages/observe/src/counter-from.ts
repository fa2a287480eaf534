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
    const prev = this.last.get(key) ?? 0;
    if (total > prev) this.counter.inc(labels, total - prev);
    this.last.set(key, Math.max(prev, total));
  }
}
