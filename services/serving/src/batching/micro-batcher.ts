import { ServingErrors } from "../errors.js";
import type { Examples, Servable } from "../model/servable.js";
import type { ForwardPool } from "./forward-pool.js";
import { misplacedIds } from "../model/misplaced-ids.js";
import { InflightBytes } from "./inflight-bytes.js";

interface Pending {
  servable: Servable;
  x: Examples;
  /** Whether the caller has given up (deadline, cancel, closed connection): its pass would be computed for no one. */
  abandoned: () => boolean;
  resolve(p: Float32Array): void;
  reject(e: unknown): void;
}

export interface BatcherOptions {
  /** Forward threads to run passes on; without, passes run in the event loop. */
  pool?: ForwardPool | null;
  /** Requests allowed to wait for a pass, and 64 examples each; past either a request is refused at once (SERVING_ERR_OVERLOADED). 0 = no bound. */
  maxQueued?: number;
  /** Bytes of Predict requests allowed in flight at once, from receipt to answer (see InflightBytes). 0 = no bound. */
  maxInflightBytes?: number;
}

/**
 * Runs concurrent requests for the same model version as one forward pass:
 * requests queue until the window closes (0 = those already waiting when the
 * event loop comes round), then each version's requests are concatenated,
 * predicted together and split back. Fewer, larger passes amortise the
 * per-pass overhead under load; a lone request waits at most the window.
 * With forward threads, a pass is started only on an idle thread: requests
 * arriving meanwhile wait and go together in the next pass, so a burst is
 * drained in a few large passes. The queue is bounded: past `maxQueued`
 * waiting requests, new ones are refused at once (load shedding, counted
 * in `shed`) rather than waiting ever longer.
 */
export class MicroBatcher {
  private queue: Pending[] = [];
  private scheduled = false;
  private readonly pool: ForwardPool | null;
  private readonly maxQueued: number;
  /** Parameter sync updates waiting for the passes in flight to end (see exclusive). */
  private paused = 0;
  private inFlight = 0;
  private drained: Array<() => void> = [];
  batches = 0;
  examples = 0;
  /** Predict calls and their model-input bytes (dense values and ids), for the agent's load report. */
  requests = 0;
  inputBytes = 0;
  /** Requests refused because the queue was full. */
  shed = 0;
  /** Requests dropped before their pass because their caller had given up. */
  abandoned = 0;
  /** Ids no row of their column can match (another slot's, or the reserved top bit): each reads as missing. */
  misplacedIds = 0;
  /** Examples of the requests waiting for a pass. */
  private queuedExamples = 0;
  /** The budget gRPC and REST Predict requests take their bytes from before they are decoded. */
  readonly inflight: InflightBytes;

  constructor(private readonly windowUs: number, private readonly maxExamples: number, options: BatcherOptions = {}) {
    this.pool = options.pool ?? null;
    this.maxQueued = options.maxQueued ?? 0;
    this.inflight = new InflightBytes(options.maxInflightBytes ?? 0);
  }

  /** Requests waiting for a pass. */
  get queued(): number {
    return this.queue.length;
  }

  /** The examples' predictions as Servable.predict gives them, [count, T]. */
  predict(servable: Servable, x: Examples, abandoned: () => boolean = () => false): Promise<Float32Array> {
    this.requests++;
    // Counted now: a forward thread is handed the ids' buffer, which is empty here once the pass has run.
    this.misplacedIds += misplacedIds(x, servable.slotIds);
    this.inputBytes += x.dense.byteLength + x.idWords.byteLength;
    if (this.maxQueued > 0 && this.queue.length >= this.maxQueued) {
      this.shed++;
      return Promise.reject(ServingErrors.create("SERVING_ERR_OVERLOADED", `${this.queue.length} requests are waiting for a forward pass (--max-queued-requests ${this.maxQueued}); retry later`));
    }
    // Large requests are bounded by their examples too: a thousand of --max-batch each would hold gigabytes while they wait.
    const examplesBound = this.maxQueued * EXAMPLES_PER_QUEUED_REQUEST;
    if (this.maxQueued > 0 && this.queue.length > 0 && this.queuedExamples + x.count > examplesBound) {
      this.shed++;
      return Promise.reject(ServingErrors.create("SERVING_ERR_OVERLOADED", `${this.queuedExamples} examples are waiting for a forward pass (at most ${examplesBound}: ${EXAMPLES_PER_QUEUED_REQUEST} for each of --max-queued-requests ${this.maxQueued}); retry later`));
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ servable, x, abandoned, resolve, reject });
      this.queuedExamples += x.count;
      this.schedule();
    });
  }

  /** Takes requests off the queue: those whose caller gave up are answered so, the rest returned. */
  private take(list: Pending[]): Pending[] {
    const live: Pending[] = [];
    for (const p of list) {
      this.queuedExamples -= p.x.count;
      if (p.abandoned()) {
        this.abandoned++;
        p.reject(ServingErrors.create("SERVING_ERR_ABANDONED", "the caller gave up while the request waited for a forward pass; it was not computed"));
      } else live.push(p);
    }
    return live;
  }

  /**
   * Runs `apply` while no forward pass runs (parameter sync changes tables
   * in place, which forward threads read): passes in flight end first, new
   * ones wait until it returns. In the event loop (no threads) that is any
   * moment between two tasks, so it runs at once.
   */
  async exclusive<T>(apply: () => T): Promise<T> {
    if (!this.pool) return apply();
    this.paused++;
    try {
      if (this.inFlight > 0) await new Promise<void>((r) => this.drained.push(r));
      return apply();
    } finally {
      this.paused--;
      this.schedule();
    }
  }

  private schedule(): void {
    if (this.scheduled || this.queue.length === 0) return;
    this.scheduled = true;
    if (this.windowUs > 0) setTimeout(() => this.flush(), this.windowUs / 1000);
    else setImmediate(() => this.flush());
  }

  private flush(): void {
    this.scheduled = false;
    if (this.paused > 0) return; // exclusive() schedules again when done
    // No pool, or none of its threads could start: the passes run here.
    if (!this.pool || this.pool.size === 0) {
      const queue = this.take(this.queue);
      this.queue = [];
      for (const [servable, group, n] of this.groups(queue, this.maxExamples)) this.runHere(servable, group, n);
      return;
    }
    const idle = this.pool.idle;
    if (idle === 0) return; // a pass ending flushes again
    const live = this.take(this.queue);
    // Spread what waits over the idle threads, each pass up to maxExamples.
    const waiting = live.reduce((n, p) => n + p.x.count, 0);
    const per = Math.min(this.maxExamples, Math.ceil(waiting / idle));
    const groups = this.groups(live, per);
    const now = groups.slice(0, idle);
    this.queue = groups.slice(idle).flatMap(([, g]) => g);
    this.queuedExamples += this.queue.reduce((n, p) => n + p.x.count, 0);
    for (const [servable, group, n] of now) this.runOnPool(servable, group, n);
  }

  /** The queue by version, in runs of up to `limit` examples (a larger request is a run of its own). */
  private groups(queue: Pending[], limit: number): Array<[Servable, Pending[], number]> {
    const byVersion = new Map<Servable, Pending[]>();
    for (const p of queue) {
      const list = byVersion.get(p.servable) ?? [];
      list.push(p);
      byVersion.set(p.servable, list);
    }
    const out: Array<[Servable, Pending[], number]> = [];
    for (const [servable, all] of byVersion) {
      for (let i = 0; i < all.length; ) {
        const group: Pending[] = [];
        let n = 0;
        while (i < all.length && (group.length === 0 || n + all[i]!.x.count <= limit)) {
          n += all[i]!.x.count;
          group.push(all[i++]!);
        }
        out.push([servable, group, n]);
      }
    }
    return out;
  }

  private runHere(servable: Servable, group: Pending[], n: number): void {
    try {
      this.answer(servable, group, n, servable.predict(combine(servable, group, n)));
    } catch (err) {
      for (const p of group) p.reject(err);
    }
  }

  private runOnPool(servable: Servable, group: Pending[], n: number): void {
    this.inFlight++;
    let x: Examples;
    try {
      x = combine(servable, group, n);
    } catch (err) {
      this.inFlight--;
      for (const p of group) p.reject(err);
      return;
    }
    this.pool!.run(servable, x).then(
      (out) => this.answer(servable, group, n, out),
      (err) => {
        for (const p of group) p.reject(err);
      },
    ).finally(() => {
      if (--this.inFlight === 0) for (const r of this.drained.splice(0)) r();
      if (this.paused === 0 && this.queue.length > 0) this.flush();
    });
  }

  private answer(servable: Servable, group: Pending[], n: number, out: Float32Array): void {
    this.batches++;
    this.examples += n;
    // Each example's T predictions sit together: a request's rows are one contiguous run.
    const T = servable.tasks.length;
    let at = 0;
    for (const p of group) {
      p.resolve(group.length === 1 ? out : out.slice(at * T, (at + p.x.count) * T));
      at += p.x.count;
    }
  }
}

/** Examples allowed to wait for each request --max-queued-requests allows (the queue holds at most that many times this). */
const EXAMPLES_PER_QUEUED_REQUEST = 64;

/** A group's examples as one pass's input. */
function combine(servable: Servable, group: Pending[], n: number): Examples {
  const { numDense, numSlots } = servable.spec;
  if (group.length === 1) return group[0]!.x;
  if (group.some((p) => p.x.cellOffsets)) return concatCsr(group.map((p) => p.x), numDense, numSlots);
  const dense = new Float32Array(n * numDense);
  const idWords = new Uint32Array(n * numSlots * 2);
  let at = 0;
  for (const p of group) {
    dense.set(p.x.dense, at * numDense);
    idWords.set(p.x.idWords, at * numSlots * 2);
    at += p.x.count;
  }
  return { count: n, dense, idWords };
}

/** Several requests' examples as one, in the ragged (cell offsets) form. */
function concatCsr(parts: Examples[], numDense: number, numSlots: number): Examples {
  const count = parts.reduce((n, x) => n + x.count, 0);
  const nnz = parts.reduce((n, x) => n + x.idWords.length / 2, 0);
  const dense = new Float32Array(count * numDense);
  const idWords = new Uint32Array(nnz * 2);
  const cellOffsets = new Uint32Array(count * numSlots + 1);
  let e = 0;
  let v = 0;
  for (const x of parts) {
    dense.set(x.dense, e * numDense);
    idWords.set(x.idWords, v * 2);
    for (let c = 0; c < x.count * numSlots; c++) cellOffsets[e * numSlots + c + 1] = v + (x.cellOffsets ? x.cellOffsets[c + 1]! : c + 1);
    e += x.count;
    v += x.idWords.length / 2;
  }
  return { count, dense, idWords, cellOffsets };
}
