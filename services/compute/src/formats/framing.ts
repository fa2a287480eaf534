/** One record found in a file: its bytes (a view into the file) and where it starts. */
export interface FramedRecord {
  bytes: Uint8Array;
  /** Byte offset of the record's frame (its header) in the decompressed stream. */
  offset: number;
  /** The frame's sort id, in a framing that carries one. */
  sortId?: Uint8Array;
}

/**
 * A framing problem that loses the reader's place (a length it cannot trust,
 * a truncated tail). The framing then scans forward for the next offset where
 * a record plausibly starts and resumes there (`resumeAt`); the bytes in
 * between are lost. With no such offset, everything to the end is lost.
 */
export interface FrameFailure {
  offset: number;
  message: string;
  /** Bytes from `offset` that could not be read (to `resumeAt`, or to the end). */
  lostBytes: number;
  /** Where reading resumed, or null when nothing after `offset` could be read. */
  resumeAt: number | null;
  /** Set when the bytes are not damage but a file the framing options do not fit: what to give instead. */
  wrongOptions?: string;
  /** With wrongOptions: the file's first records (up to two) as the options it fits frame them, to check their kind. */
  recordsAsFitted?: Uint8Array[];
  /** What to check when the failure is the framing's, not damage's (the options may not fit the file); a caller that knows the damage adds none. */
  hint?: string;
}

/**
 * A framing problem confined to one record (its payload checksum fails),
 * after which the reader can go on with the next record.
 */
export interface RecordFailure {
  offset: number;
  message: string;
}

export type FrameEvent =
  | { kind: "record"; record: FramedRecord }
  | { kind: "bad-record"; failure: RecordFailure }
  | { kind: "lost"; failure: FrameFailure }
  /** Only in a window that is not the file's end: the frame at `offset` runs past the window; frame again from there with at least `needs` bytes (never more than the window's maxFrame). The framing stops after it. */
  | { kind: "short"; offset: number; needs: number };

/** What the bytes given to a framing are: the file to its end, or a window of it that more bytes follow. */
export interface FrameWindow {
  /** Whether the bytes run to their end (the file's, or where damage stops the stream): a frame past them is then damage. */
  readonly final: boolean;
  /** The most bytes of one frame a reader holds: a frame said to be longer is damage, not a reason to read more. */
  readonly maxFrame: number;
  /** What the final bytes end at, in words, when not the file's end (a damaged stream stops before it). */
  readonly end?: string;
}

/** A whole file in memory. */
export const WHOLE_FILE: FrameWindow = { final: true, maxFrame: Number.POSITIVE_INFINITY };

/**
 * A frame that runs past the bytes given: `frameBytes` long from its start, of which `left` remain after `what` (e.g.
 * "record size 123"). One longer than maxFrame is damage wherever it is read: more than a reader holds of one record. Else
 * it runs past the end of the file (or the window's `end`), or, in a window that more bytes follow, needs more of the file.
 */
export function pastWindow(what: string, frameBytes: number, left: number, window: FrameWindow): { needs: number } | { message: string } {
  if (frameBytes > window.maxFrame) return { message: `${what} is more than the ${window.maxFrame} bytes compute holds of one record (taken for damage)` };
  if (window.final) return { message: `${what} runs past ${window.end ?? "the end of the file"} (${left} bytes left)` };
  return { needs: frameBytes };
}

/** A file format's framing: how records follow one another. */
export interface RecordFraming {
  readonly name: string;
  /** What to suggest when a file's very first record does not decode (a framing option that may be wrong), or absent. */
  readonly firstRecordHint?: string;
  /** The events of the frames in `data`, a whole file unless `window` says it is a window that more bytes follow. */
  frames(data: Uint8Array, window?: FrameWindow): Generator<FrameEvent>;
}

export function readU64(data: Uint8Array, at: number): number {
  const lo = data[at]! | (data[at + 1]! << 8) | (data[at + 2]! << 16) | (data[at + 3]! << 24);
  const hi = data[at + 4]! | (data[at + 5]! << 8) | (data[at + 6]! << 16) | (data[at + 7]! << 24);
  // Lengths above 2^53 are nonsense for a record; they come back as Infinity-like huge numbers and fail the range check.
  return (hi >>> 0) * 0x100000000 + (lo >>> 0);
}

/** A frame's 64-bit size for a message: exact up to 2^53; above, where readU64's double rounds it, said so instead of a rounded figure. */
export function sizeText(size: number): string {
  return Number.isSafeInteger(size) ? String(size) : "above 2^53";
}

export function writeU64(out: Uint8Array, at: number, value: number): void {
  const lo = value >>> 0;
  const hi = Math.floor(value / 0x100000000) >>> 0;
  out[at] = lo & 0xff;
  out[at + 1] = (lo >>> 8) & 0xff;
  out[at + 2] = (lo >>> 16) & 0xff;
  out[at + 3] = lo >>> 24;
  out[at + 4] = hi & 0xff;
  out[at + 5] = (hi >>> 8) & 0xff;
  out[at + 6] = (hi >>> 16) & 0xff;
  out[at + 7] = hi >>> 24;
}

export function readU32(data: Uint8Array, at: number): number {
  return (data[at]! | (data[at + 1]! << 8) | (data[at + 2]! << 16) | (data[at + 3]! << 24)) >>> 0;
}

export function writeU32(out: Uint8Array, at: number, value: number): void {
  out[at] = value & 0xff;
  out[at + 1] = (value >>> 8) & 0xff;
  out[at + 2] = (value >>> 16) & 0xff;
  out[at + 3] = value >>> 24;
}

/** The parts laid end to end in one new array. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Whether a frame plausibly starts at an offset; "more" when the window ends before that can be told. */
export type Plausible = boolean | "more";

/**
 * The event for a framing that lost its place at `start`: scans from start + 1
 * for the first offset `plausible` accepts and resumes there. In a window that
 * more bytes follow, an offset that cannot be told before its end makes it
 * `short` from `start` (framed again with twice the bytes, up to the window's
 * maxFrame; past that, the undecided offsets count as no frame).
 */
export function resync(data: Uint8Array, start: number, message: string, plausible: (at: number) => Plausible, window: FrameWindow = WHOLE_FILE): { event: FrameEvent; resumeAt: number | null } {
  const held = data.length - start;
  const canGrow = !window.final && held < window.maxFrame;
  for (let p = start + 1; p < data.length; p++) {
    const v = plausible(p);
    if (v === "more" && canGrow) return { event: { kind: "short", offset: start, needs: Math.min(window.maxFrame, held * 2) }, resumeAt: null };
    if (v === true) return { event: { kind: "lost", failure: { offset: start, message, lostBytes: p - start, resumeAt: p } }, resumeAt: p };
  }
  if (canGrow) return { event: { kind: "short", offset: start, needs: Math.min(window.maxFrame, held * 2) }, resumeAt: null };
  return { event: { kind: "lost", failure: { offset: start, message, lostBytes: data.length - start, resumeAt: null } }, resumeAt: null };
}
