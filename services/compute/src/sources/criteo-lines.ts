// Modules, not the packages' indexes: a Criteo parse worker starts without loading zod and pino (about 0.3 s of CPU each).
import { printableBytes } from "@pangea/kit/printable";
import { CRITEO_NUM_DENSE, CRITEO_NUM_SLOTS, criteoDenseName, criteoSlotName, parseCount } from "@pangea/features/criteo";
import { hashedIdV2 } from "@pangea/features/value-id";
import { normalizeCount } from "@pangea/features/normalize";

/**
 * Criteo TSV lines parsed and hashed into the record cache's column layout.
 * A piece is a run of whole lines (the last one may lack its line feed: a
 * file's final line); the parse pass cuts the stream into pieces and parses
 * them here, on its own thread or on a parse worker (parse-worker.ts).
 */

/** A line that does not parse; the caller adds where it is. */
class LineError extends Error {}

export const FIELDS = 1 + CRITEO_NUM_DENSE + CRITEO_NUM_SLOTS;
const TAB = 9;
const LF = 10;
const CR = 13;

/** A piece's records and the lines that did not parse (`line`: 1-based in the piece, `byte`: the line's offset in it). */
export interface CriteoParsed {
  records: number;
  /** Lines in the piece, empty ones included (they count for line numbers). */
  lines: number;
  labels: Float32Array;
  dense: Float32Array;
  ids: Uint32Array;
  errors: { line: number; byte: number; message: string }[];
}

function fieldName(f: number): string {
  if (f === 0) return "label";
  return f <= CRITEO_NUM_DENSE ? criteoDenseName(f - 1) : criteoSlotName(f - 1 - CRITEO_NUM_DENSE);
}

/** Parses the lines of `b` (every one ends with a line feed but perhaps the last). */
export function parseCriteoPiece(b: Buffer, slotBase: number): CriteoParsed {
  let lines = 0;
  for (let at = b.indexOf(LF); at >= 0; at = b.indexOf(LF, at + 1)) lines++;
  if (b.length > 0 && b[b.length - 1] !== LF) lines++;
  const labels = new Float32Array(lines);
  const dense = new Float32Array(lines * CRITEO_NUM_DENSE);
  const ids = new Uint32Array(lines * CRITEO_NUM_SLOTS * 2);
  const errors: CriteoParsed["errors"] = [];
  let records = 0;
  let pos = 0;
  for (let line = 1; line <= lines; line++) {
    let end = b.indexOf(LF, pos);
    if (end < 0) end = b.length;
    let lineEnd = end;
    if (lineEnd > pos && b[lineEnd - 1] === CR) lineEnd--;
    if (lineEnd > pos) {
      try {
        parseLine(b, pos, lineEnd, records, labels, dense, ids, slotBase);
        records++;
      } catch (err) {
        if (!(err instanceof LineError)) throw err;
        errors.push({ line, byte: pos, message: err.message });
      }
    }
    pos = end + 1;
  }
  return { records, lines, labels, dense, ids, errors };
}

function parseLine(b: Buffer, start: number, end: number, r: number, labels: Float32Array, dense: Float32Array, ids: Uint32Array, slotBase: number): void {
  let f = 0;
  let fs = start;
  for (let i = start; i <= end; i++) {
    if (i < end && b[i] !== TAB) continue;
    if (f >= FIELDS) throw new LineError(`more than ${FIELDS} tab-separated fields`);
    if (f === 0) {
      if (i - fs !== 1 || (b[fs] !== 48 && b[fs] !== 49)) {
        // A line without a tab is not a bad label but another format (a comma-separated file, most often): said as such.
        if (i === end) throw new LineError(`expected ${FIELDS} tab-separated fields (label, I1-I13, C1-C26), got 1 (the line holds no tab${b.subarray(fs, i).includes(44) ? "; is the file comma-separated?" : ""})`);
        throw new LineError(`label '${printableBytes(b.subarray(fs, i))}' must be 0 or 1`);
      }
      labels[r] = b[fs]! - 48;
    } else if (f <= CRITEO_NUM_DENSE) {
      const count = parseCount(b, fs, i);
      if (Number.isNaN(count)) throw new LineError(`field ${fieldName(f)} '${printableBytes(b.subarray(fs, i))}' is not an integer`);
      // 309 digits and more read as Infinity: a batch would carry it, and every trainer's step fail far from this line.
      if (!Number.isFinite(count)) throw new LineError(`field ${fieldName(f)} '${printableBytes(b.subarray(fs, i))}' is too large a count (it reads as Infinity)`);
      dense[r * CRITEO_NUM_DENSE + f - 1] = normalizeCount(count);
    } else {
      hashedIdV2(b, fs, i, slotBase + f - 1 - CRITEO_NUM_DENSE, ids, 2 * (r * CRITEO_NUM_SLOTS + f - 1 - CRITEO_NUM_DENSE));
    }
    f++;
    fs = i + 1;
  }
  if (f !== FIELDS) throw new LineError(`expected ${FIELDS} tab-separated fields (label, I1-I13, C1-C26), got ${f}`);
}
