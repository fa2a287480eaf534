import { Worker } from "node:worker_threads";
import type { Logger } from "@pangea/kit";
import type { Examples } from "../model/scorer.js";
import type { Servable, ServableView } from "../model/servable.js";

/** A version's state is sent under a key of its Servable object (a version unloaded and loaded again is another object, another key). */
export type ToForwardThread =
  | { type: "model"; key: number; view: ServableView; same: boolean }
  | { type: "drop"; keys: number[] }
  | { type: "pass"; id: number; key: number; x: Examples };

/**
 * The thread's script: beside this module once built; from the TypeScript
 * sources (tests), the build's copy, as a worker cannot load .ts itself.
 */
const WORKER_SCRIPT = import.meta.url.endsWith(".ts") ? new URL("../../dist/batching/forward-worker.js", import.meta.url) : new URL("./forward-worker.js", import.meta.url);

type FromForwardThread = { id: number; out: Float32Array; error?: undefined } | { id: number; error: string };

interface Thread {
  worker: Worker;
  /** Its script loaded and said so: one that dies before is not started again (a missing or broken script would loop). */
  online: boolean;
  busy: boolean;
  passes: number;
  /** The generations of each version this thread was sent. */
  seen: Map<Servable, { generation: number; dense: number }>;
  pending: Map<number, { resolve(out: Float32Array): void; reject(err: Error): void }>;
}

/**
 * Forward threads (worker_threads) that run the passes off the event loop,
 * one pass per thread at a time, over the versions' tables in shared memory:
 * the event loop keeps decoding, answering and batching while passes run.
 * Before a thread's pass, it is sent what changed in that version since its
 * last pass (new table arrays after a parameter sync update, new dense
 * weights), so every pass sees every update applied before it was started.
 */
export class ForwardPool {
  private readonly threads: Thread[] = [];
  private nextId = 1;
  private readonly keys = new WeakMap<Servable, number>();
  private nextKey = 1;
  private closing = false;

  constructor(
    count: number,
    private readonly log?: Logger,
    /** The threads' script (tests give a broken one). */
    private readonly script: URL = WORKER_SCRIPT,
  ) {
    for (let i = 0; i < count; i++) this.threads.push(this.spawn());
  }

  get size(): number {
    return this.threads.length;
  }

  /** Passes each thread has run (tests check work went to every thread). */
  get passesPerThread(): number[] {
    return this.threads.map((t) => t.passes);
  }

  /** Threads without a pass. */
  get idle(): number {
    let n = 0;
    for (const t of this.threads) if (!t.busy) n++;
    return n;
  }

  /** Runs a pass on an idle thread (the caller checks `idle` first). */
  run(servable: Servable, x: Examples): Promise<Float32Array> {
    const t = this.threads.find((th) => !th.busy);
    if (!t) return Promise.reject(new Error("ForwardPool.run without an idle thread"));
    let key = this.keys.get(servable);
    if (key === undefined) this.keys.set(servable, (key = this.nextKey++));
    const seen = t.seen.get(servable);
    if (!seen || seen.generation !== servable.generation || seen.dense !== servable.denseGeneration) {
      t.worker.postMessage({ type: "model", key, same: seen !== undefined, view: servable.view(seen?.dense !== servable.denseGeneration) } satisfies ToForwardThread);
      t.seen.set(servable, { generation: servable.generation, dense: servable.denseGeneration });
    }
    const id = this.nextId++;
    t.busy = true;
    t.passes++;
    return new Promise((resolve, reject) => {
      t.pending.set(id, { resolve, reject });
      // Moved, not copied: nothing reads a request's input arrays once its pass is started (answers need only counts).
      const sent = whole(x);
      const moved = [sent.dense.buffer, sent.idWords.buffer, ...(sent.cellOffsets ? [sent.cellOffsets.buffer] : [])] as ArrayBuffer[];
      try {
        t.worker.postMessage({ type: "pass", id, key, x: sent } satisfies ToForwardThread, moved);
      } catch (err) {
        // Not sent (e.g. an input that cannot be moved): the thread is free again, this pass fails alone.
        t.pending.delete(id);
        t.busy = false;
        reject(err as Error);
      }
    });
  }

  /** Lets the threads free the versions not among `loaded` (sent again if a request still queued for one runs). */
  retain(loaded: readonly Servable[]): void {
    for (const t of this.threads) {
      const gone = [...t.seen.keys()].filter((s) => !loaded.includes(s));
      if (gone.length === 0) continue;
      for (const s of gone) t.seen.delete(s);
      t.worker.postMessage({ type: "drop", keys: gone.map((s) => this.keys.get(s)!) } satisfies ToForwardThread);
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    const closed = new Error("serving is shutting down");
    for (const t of this.threads) {
      for (const p of t.pending.values()) p.reject(closed);
      t.pending.clear();
    }
    await Promise.all(this.threads.map((t) => t.worker.terminate()));
  }

  private spawn(): Thread {
    const worker = new Worker(this.script);
    const t: Thread = { worker, online: false, busy: false, passes: 0, seen: new Map(), pending: new Map() };
    worker.on("message", (m: FromForwardThread | { ready: true }) => {
      if ("ready" in m) {
        t.online = true;
        return;
      }
      const p = t.pending.get(m.id);
      if (!p) return;
      t.pending.delete(m.id);
      t.busy = false;
      if (m.error !== undefined) p.reject(new Error(m.error));
      else p.resolve(m.out);
    });
    // A thread that dies (an uncaught error, or ended from outside) fails its pass and is replaced; the new one is
    // sent each version before its first pass of it.
    let failure: Error | null = null;
    worker.on("error", (err) => {
      failure = err;
      this.log?.error({ err: err.message }, "forward thread failed; starting another");
    });
    worker.on("exit", (code) => {
      if (this.closing) return;
      const err = failure ?? new Error(`forward thread exited with code ${code}`);
      for (const p of t.pending.values()) p.reject(err);
      t.pending.clear();
      const i = this.threads.indexOf(t);
      if (i < 0) return;
      if (t.online) {
        this.threads[i] = this.spawn();
        return;
      }
      // It never ran: another would fail the same way. Without threads the passes run in the event loop (MicroBatcher).
      this.threads.splice(i, 1);
      this.log?.error({ err: err.message, threadsLeft: this.threads.length }, "a forward thread could not start; not starting another");
    });
    worker.unref();
    return t;
  }
}

/**
 * The examples with each array on a buffer of its own, to be moved to the
 * thread: a request's inputs can be views into a larger buffer (Buffer's
 * 8 KB pool, shared with other data) or on shared memory, which cannot be moved.
 */
function whole(x: Examples): Examples {
  const own = <T extends Float32Array | Uint32Array>(a: T): T => (a.buffer instanceof ArrayBuffer && a.byteOffset === 0 && a.byteLength === a.buffer.byteLength ? a : (a.slice() as T));
  return { count: x.count, dense: own(x.dense), idWords: own(x.idWords), ...(x.cellOffsets ? { cellOffsets: own(x.cellOffsets) } : {}) };
}
