import type { EmbeddingStore } from "../embeddings/embedding-store.js";
import { rowRanges, tombstoneParts, type SyncRound } from "./sync-backlog.js";

/**
 * Everything a replica that lost its synced rows needs, as updates of at most `maxValues` row values or tombstones
 * each, in the order one round would apply: every id evicted since the parameter server started (a version from
 * disk may hold any of them) first, then every row, the dense weights with the last. Only the ids are listed up
 * front (8 bytes a row); each part's rows are read when the part is taken, so the table is never copied whole, and
 * what a part sends is the row as it is then. An id made after the listing, or changed after its part was read, is
 * among the changes tracked for the next round; one removed after it is left out here and its tombstone goes then.
 * At least one part, so an empty table still gets the dense weights (and the replica's ack).
 */
export function* wholeTableParts(store: EmbeddingStore, dense: () => Float32Array[] | null, maxValues: number): Generator<SyncRound> {
  const { parts, rest: tombstones } = tombstoneParts(store.allEvictions(), maxValues, null);
  yield* parts;
  const ids = store.allIds();
  const n = ids.length / 2;
  if (n === 0) {
    yield { ...store.rowsOf(ids), tombstones, dense: dense() };
    return;
  }
  for (const { first, last } of rowRanges(n, (i) => store.widthOf(ids[2 * i + 1]!), maxValues)) {
    const rows = store.rowsOf(ids.subarray(2 * first, 2 * last));
    yield { ...rows, tombstones: first === 0 ? tombstones : new Uint32Array(0), dense: last === n ? dense() : null };
  }
}
