/** One parameter sync round: rows changed and ids evicted since the round before, and the dense weights if due. */
export interface SyncRound {
  /** Word pairs (lo, hi). */
  ids: Uint32Array;
  /** Side by side in id order, each its slot's width; width is the one they share, or null. */
  rows: Float32Array;
  width: number | null;
  /** Evicted ids (word pairs). */
  tombstones: Uint32Array;
  dense: Float32Array[] | null;
}

/**
 * What a replica that missed `rounds` (oldest first) needs, as one round:
 * each id's newest row, unless it was evicted after it (then a tombstone),
 * and the newest dense weights. A replica that stays away then costs at most
 * one row per id and one tombstone per evicted id, however long it is away,
 * instead of a copy of every round. A round's rows are the table as it was
 * after its evictions, so within a round a row is newer than a tombstone of
 * the same id (serving applies tombstones first, then rows).
 */
export function compactRounds(rounds: readonly SyncRound[], widthOf: (hi: number) => number): SyncRound {
  const rows = new Map<string, { lo: number; hi: number; row: Float32Array }>();
  const evicted = new Map<string, { lo: number; hi: number }>();
  let dense: Float32Array[] | null = null;
  for (const r of rounds) {
    for (let i = 0; i < r.tombstones.length; i += 2) {
      const lo = r.tombstones[i]!;
      const hi = r.tombstones[i + 1]!;
      const key = `${lo}:${hi}`;
      rows.delete(key);
      evicted.set(key, { lo, hi });
    }
    let at = 0;
    for (let i = 0; i < r.ids.length; i += 2) {
      const lo = r.ids[i]!;
      const hi = r.ids[i + 1]!;
      const w = r.width ?? widthOf(hi);
      const key = `${lo}:${hi}`;
      rows.set(key, { lo, hi, row: r.rows.slice(at, at + w) });
      evicted.delete(key);
      at += w;
    }
    if (r.dense) dense = r.dense;
  }
  const live = [...rows.values()];
  const ids = new Uint32Array(live.length * 2);
  const values = new Float32Array(live.reduce((n, e) => n + e.row.length, 0));
  const widths = new Set<number>();
  let at = 0;
  live.forEach((e, i) => {
    ids[2 * i] = e.lo;
    ids[2 * i + 1] = e.hi;
    values.set(e.row, at);
    at += e.row.length;
    widths.add(e.row.length);
  });
  const gone = [...evicted.values()];
  const tombstones = new Uint32Array(gone.length * 2);
  gone.forEach((e, i) => {
    tombstones[2 * i] = e.lo;
    tombstones[2 * i + 1] = e.hi;
  });
  // One width keeps the [n, width] layout; none (no rows) takes the rounds' own.
  const width = widths.size === 1 ? [...widths][0]! : widths.size === 0 ? (rounds.find((r) => r.width !== null)?.width ?? null) : null;
  return { ids, rows: values, width, tombstones, dense };
}

/**
 * A round cut into rounds of at most `maxValues` row values or tombstones each (at least one row each), in order:
 * the tombstones first (applied before any row, as in one round), the dense weights with the last. A whole table
 * resent to a replica is one round, which would pass the gRPC message limit (256 MiB) from about four million rows
 * of 16 values.
 */
export function splitRound(round: SyncRound, widthOf: (hi: number) => number, maxValues: number): SyncRound[] {
  if (round.rows.length <= maxValues && round.tombstones.length / 2 <= maxValues) return [round];
  const none = { ids: new Uint32Array(0), rows: new Float32Array(0), width: round.width };
  const { parts, rest: tombstones } = tombstoneParts(round.tombstones, maxValues, round.width);
  const n = round.ids.length / 2;
  if (n === 0) return [...parts, { ...none, tombstones, dense: round.dense }];
  let valuesAt = 0;
  for (const { first, last, values } of rowRanges(n, (i) => round.width ?? widthOf(round.ids[2 * i + 1]!), maxValues)) {
    parts.push({
      ids: round.ids.subarray(2 * first, 2 * last),
      rows: round.rows.subarray(valuesAt, valuesAt + values),
      width: round.width,
      tombstones: first === 0 ? tombstones : new Uint32Array(0),
      dense: last === n ? round.dense : null,
    });
    valuesAt += values;
  }
  return parts;
}

/**
 * Rows 0..n-1 cut into consecutive ranges [first, last) of at most `maxValues` values each (`widthAt(i)` a row's),
 * at least one row each: a row wider than the bound goes alone.
 */
export function* rowRanges(n: number, widthAt: (i: number) => number, maxValues: number): Generator<{ first: number; last: number; values: number }> {
  let first = 0;
  while (first < n) {
    let last = first;
    let values = 0;
    do {
      values += widthAt(last);
      last++;
    } while (last < n && values + widthAt(last) <= maxValues);
    yield { first, last, values };
    first = last;
  }
}

/**
 * Tombstones (word pairs) past `maxValues` as rounds of their own, to go before any row; `rest` (at most maxValues)
 * goes with the first row.
 */
export function tombstoneParts(tombstones: Uint32Array, maxValues: number, width: number | null): { parts: SyncRound[]; rest: Uint32Array } {
  const parts: SyncRound[] = [];
  let rest = tombstones;
  while (rest.length / 2 > maxValues) {
    parts.push({ ids: new Uint32Array(0), rows: new Float32Array(0), width, tombstones: rest.subarray(0, 2 * maxValues), dense: null });
    rest = rest.subarray(2 * maxValues);
  }
  return { parts, rest };
}

/** Rounds of disjoint ids (the parts splitRound made) as one, for a replica that missed them. */
export function joinRounds(parts: readonly SyncRound[]): SyncRound {
  const cat = <T extends Uint32Array | Float32Array>(arrays: T[], make: (n: number) => T): T => {
    const out = make(arrays.reduce((a, x) => a + x.length, 0));
    let at = 0;
    for (const x of arrays) {
      out.set(x, at);
      at += x.length;
    }
    return out;
  };
  return {
    ids: cat(parts.map((p) => p.ids), (k) => new Uint32Array(k)),
    rows: cat(parts.map((p) => p.rows), (k) => new Float32Array(k)),
    width: parts[0]!.width,
    tombstones: cat(parts.map((p) => p.tombstones), (k) => new Uint32Array(k)),
    dense: parts.at(-1)!.dense,
  };
}
