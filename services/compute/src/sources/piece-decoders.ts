import type { MonolithDecodeInit } from "./monolith-records.js";

/**
 * What a parse thread does with a piece of a file: the same function on the
 * pass's own thread (one thread) and on every parse worker, so the records
 * do not depend on where they were decoded.
 */

/** Which decoder, as plain data (it is a worker's workerData). */
export type DecoderInit = { kind: "criteo"; slotBase: number } | { kind: "monolith"; init: MonolithDecodeInit };

/** A piece: whole lines (Criteo), or records end to end, record i ending at ends[i] (Monolith). */
export interface PieceTask {
  bytes: Uint8Array;
  ends?: Uint32Array;
}

/** A decoded piece, and the buffers a worker hands back without copying them. */
export type PieceDecoder = (task: PieceTask) => { result: unknown; transfer: ArrayBuffer[] };

/** The decoder, its module loaded on demand: a Criteo worker does not load the Monolith decoders (nor their zod), and the reverse. */
export async function makeDecoder(init: DecoderInit): Promise<PieceDecoder> {
  if (init.kind === "criteo") {
    const { parseCriteoPiece } = await import("./criteo-lines.js");
    return ({ bytes }) => {
      const r = parseCriteoPiece(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), init.slotBase);
      return { result: r, transfer: [r.labels.buffer, r.dense.buffer, r.ids.buffer] as ArrayBuffer[] };
    };
  }
  const { MonolithDecoder } = await import("./monolith-records.js");
  const decoder = new MonolithDecoder(init.init);
  return ({ bytes, ends }) => {
    const r = decoder.decode(bytes, ends!);
    const p = r.part;
    return { result: r, transfer: [p.labels.buffer, p.weights.buffer, p.dense.buffer, p.cellStarts.buffer, p.ids.buffer, r.samplesPerRecord.buffer] as ArrayBuffer[] };
  };
}
