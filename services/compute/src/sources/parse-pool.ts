import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { makeDecoder, type DecoderInit, type PieceDecoder, type PieceTask } from "./piece-decoders.js";

/** Decodes pieces of a file, on the pass's own thread or on parse workers. */
export interface PieceParser {
  readonly threads: number;
  /** The piece's decoded records; `transfer`: the task's buffers, handed over (not copied) to a worker. */
  parse(task: PieceTask, transfer: ArrayBuffer[]): Promise<unknown>;
  /** Ends the workers; the pass calls it on every path. */
  close(): Promise<void>;
}

/** `threads` 1: on the calling thread; more: that many worker threads. */
export function openParser(init: DecoderInit, threads: number): PieceParser {
  return threads <= 1 ? new InlineParser(init) : new WorkerParsers(init, threads);
}

class InlineParser implements PieceParser {
  readonly threads = 1;

  private readonly decoder: Promise<PieceDecoder>;

  constructor(init: DecoderInit) {
    this.decoder = makeDecoder(init);
    // Awaited by parse; a pass that parses nothing never awaits it.
    this.decoder.catch(() => {});
  }

  async parse(task: PieceTask): Promise<unknown> {
    return (await this.decoder)(task).result;
  }

  async close(): Promise<void> {}
}

interface Pending {
  resolve: (r: unknown) => void;
  reject: (err: Error) => void;
}

/**
 * Worker threads running parse-worker.js. A piece goes to the worker with
 * the fewest pieces waiting. A worker that dies (an uncaught error, out of
 * memory, an exit) fails every piece still waiting, and every later one,
 * so the pass stops with that error instead of waiting forever.
 */
class WorkerParsers implements PieceParser {
  private readonly workers: { worker: Worker; pending: Map<number, Pending> }[] = [];
  private nextId = 0;
  private failure: Error | null = null;
  private closing = false;

  constructor(
    init: DecoderInit,
    readonly threads: number,
  ) {
    for (let i = 0; i < threads; i++) {
      // Small heaps of their own, not the services' V8 flags (a 64 MB semi-space each): what a worker
      // keeps between pieces is little (the pieces and records are buffers outside the heap), and
      // the workers' memory counts against --max-memory-mb. A worker out of heap fails the pass.
      const worker = new Worker(workerFile(), { workerData: init, execArgv: [], resourceLimits: { maxYoungGenerationSizeMb: 8, maxOldGenerationSizeMb: 96 } });
      const slot = { worker, pending: new Map<number, Pending>() };
      worker.on("message", (m: { id: number; result?: unknown; error?: string }) => {
        const p = slot.pending.get(m.id);
        if (!p) return;
        slot.pending.delete(m.id);
        if (m.error !== undefined) p.reject(new Error(m.error));
        else p.resolve(m.result);
      });
      worker.on("error", (err) => this.fail(new Error(`a parse worker failed: ${err.message}`)));
      worker.on("messageerror", (err) => this.fail(new Error(`a parse worker's message could not be read: ${err.message}`)));
      worker.on("exit", (code) => {
        if (!this.closing) this.fail(new Error(`a parse worker exited (code ${code})`));
      });
      this.workers.push(slot);
    }
  }

  parse(task: PieceTask, transfer: ArrayBuffer[]): Promise<unknown> {
    if (this.failure) return Promise.reject(this.failure);
    let slot = this.workers[0]!;
    for (const w of this.workers) if (w.pending.size < slot.pending.size) slot = w;
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      slot.worker.postMessage({ id, task }, transfer);
    });
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    for (const w of this.workers) {
      for (const p of w.pending.values()) p.reject(err);
      w.pending.clear();
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    this.fail(new Error("the pass has ended"));
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
  }
}

/** The worker's script: built beside this module; under vitest (TypeScript sources) the built one in dist/ (pnpm run build). */
function workerFile(): URL {
  const here = new URL("./parse-worker.js", import.meta.url);
  if (existsSync(fileURLToPath(here))) return here;
  return new URL("../../dist/sources/parse-worker.js", import.meta.url);
}
