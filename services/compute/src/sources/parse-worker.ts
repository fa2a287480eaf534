import { parentPort, workerData } from "node:worker_threads";
import { makeDecoder, type DecoderInit, type PieceTask } from "./piece-decoders.js";

/**
 * A parse worker: decodes the pieces the pass sends (parse-pool.ts) and
 * sends back their records, transferring the buffers. A piece that throws
 * is answered with the error's text; the pass turns it into its error.
 */
const decode = await makeDecoder(workerData as DecoderInit);
parentPort!.on("message", ({ id, task }: { id: number; task: PieceTask }) => {
  let reply: { result: unknown; transfer: ArrayBuffer[] };
  try {
    reply = decode(task);
  } catch (err) {
    parentPort!.postMessage({ id, error: err instanceof Error ? err.message : String(err) });
    return;
  }
  parentPort!.postMessage({ id, result: reply.result }, reply.transfer);
});
