import { ComputeErrors } from "../errors.js";
import type { PieceParser } from "./parse-pool.js";
import type { PieceTask } from "./piece-decoders.js";

type Step = { kind: "piece"; result: Promise<unknown>; where: string; merge: (r: never) => void } | { kind: "event"; run: () => void };

/**
 * A pass's pieces and events, applied strictly in input order whatever
 * order the parse threads finish in: a piece's records are merged into the
 * cache, an event (a bad frame, a damaged stream, the end of a skipped
 * line) applied, only when everything before it has been. At most
 * `maxQueued` steps wait, so the pieces (and their decoded records) in
 * flight stay a bounded part of the memory budget; the pass waits for the
 * oldest when there are more.
 */
export class OrderedSteps {
  private readonly queue: Step[] = [];

  constructor(
    private readonly parser: PieceParser,
    private readonly maxQueued: number,
  ) {}

  /** Sends a piece to be decoded; `merge` gets its records in turn. `where` names it in an error. */
  async piece<R>(task: PieceTask, transfer: ArrayBuffer[], where: string, merge: (r: R) => void): Promise<void> {
    const result = this.parser.parse(task, transfer);
    // Awaited in turn below; a pass that stops early never awaits it, and its failure is then no news.
    result.catch(() => {});
    this.queue.push({ kind: "piece", result, where, merge: merge as (r: never) => void });
    await this.bound();
  }

  /** Runs `run` in turn (it may throw: the --on-bad-record fail policy). */
  async event(run: () => void): Promise<void> {
    this.queue.push({ kind: "event", run });
    await this.bound();
  }

  /** Applies every step still waiting. */
  async drain(): Promise<void> {
    while (this.queue.length) await this.applyOldest();
  }

  private async bound(): Promise<void> {
    while (this.queue.length > this.maxQueued) await this.applyOldest();
  }

  private async applyOldest(): Promise<void> {
    const step = this.queue.shift()!;
    if (step.kind === "event") return step.run();
    let r: unknown;
    try {
      r = await step.result;
    } catch (err) {
      if (ComputeErrors.is(err)) throw err;
      throw ComputeErrors.create("COMPUTE_ERR_SOURCE", `${step.where}: cannot be decoded: ${(err as Error).message}`);
    }
    step.merge(r as never);
  }
}
