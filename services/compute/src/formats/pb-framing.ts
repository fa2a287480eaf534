import { wireShapeError } from "@pangea/monolith";
import { concatBytes, pastWindow, readU64, resync, sizeText, WHOLE_FILE, writeU64, type FrameEvent, type FrameWindow, type Plausible, type RecordFraming } from "./framing.js";

/**
 * Monolith's "pb" framing: each record is an optional header followed by a
 * little-endian uint64 size and that many bytes of a serialized message.
 * The header, by option:
 *
 *   lagrangexHeader   one uint64: low byte = message type, bits 8..31 = data source key
 *   otherwise, in this order:
 *     kafkaDumpPrefix uint64; if it is 0 another uint64 follows, else it is the sort id's size
 *     hasSortId       uint64 size (unless the prefix gave it) + that many bytes of sort id
 *     kafkaDump       uint64, ignored
 *
 * A size of 0xfefefefe marks a placeholder Monolith refuses ("DEADBEEF").
 */
export interface PbFramingOptions {
  lagrangexHeader: boolean;
  kafkaDumpPrefix: boolean;
  hasSortId: boolean;
  kafkaDump: boolean;
}

/** Monolith's Instance and Example files carry a sort id by default. */
export const PB_FILE_DEFAULTS: PbFramingOptions = { lagrangexHeader: false, kafkaDumpPrefix: false, hasSortId: true, kafkaDump: false };

/** Whether records of a message kind carry a sort id when --sort-id is auto: Instance and Example files do, ExampleBatch files do not (as Monolith writes them). */
export function sortIdByDefault(message: string): boolean {
  return message !== "examplebatch";
}

export const DEADBEEF_SIZE = 0xfefefefe;

const CHECK_OPTIONS = "check the framing options (sort id, kafka dump, lagrangex header; or --framing tfrecord for a TFRecord file)";

/** A frame's header read at an offset: where its message lies, why no frame can start there, or how many bytes from there it needs (a window's end cuts it). */
type Frame =
  | { kind: "frame"; body: number; size: number; sortIdAt: number; sortIdSize: number }
  | { kind: "bad"; message: string; hint?: string }
  | { kind: "more"; needs: number };

/** The largest sort id a resync accepts when judging whether a frame plausibly starts somewhere. */
const PLAUSIBLE_SORT_ID_BYTES = 1 << 16;
/** Frames checked in a row (or up to the end of the file) before a resync trusts an offset. */
const PLAUSIBLE_CHAIN = 3;

export class PbFraming implements RecordFraming {
  readonly name = "pb";

  readonly firstRecordHint: string;

  /** Without sort ids: the same framing with them, to tell a file whose records carry them from a damaged one. */
  private readonly withSortIds: PbFraming | null;

  constructor(private readonly opts: PbFramingOptions) {
    // Read without sort ids, a file that has them yields each sort id as a record of its own.
    this.firstRecordHint = !opts.hasSortId && !opts.lagrangexHeader ? "if the file's records carry sort ids, read it with --sort-id true" : CHECK_OPTIONS;
    this.withSortIds = !opts.hasSortId && !opts.lagrangexHeader ? new PbFraming({ ...opts, hasSortId: true }) : null;
  }

  /**
   * The first frame failed: whether the file frames as records with sort ids (PLAUSIBLE_CHAIN of them from its start).
   * Such a file read without them loses all but a record or two to resyncs that each find nothing, which is no damage
   * to skip: it is refused whatever --on-bad-record says.
   */
  private wrongOptions(data: Uint8Array, start: number, window: FrameWindow): { wrongOptions: string; recordsAsFitted: Uint8Array[] } | undefined {
    const other = this.withSortIds;
    if (start !== 0 || !other) return undefined;
    let at = 0;
    const records: Uint8Array[] = [];
    for (let k = 0; k < PLAUSIBLE_CHAIN && at < data.length; k++) {
      const f = other.frameAt(data, at, PLAUSIBLE_SORT_ID_BYTES, window);
      const record = f.kind === "frame" ? data.subarray(f.body, f.body + f.size) : null;
      if (f.kind !== "frame" || messageShapeError(record!) !== null) return undefined;
      // Read with sort ids, a file without them pairs its records: every other one is taken for a sort id, and walks
      // as a message (the first may be the damaged one). A real sort id is a key: empty, or bytes that seldom do.
      if (k > 0 && f.sortIdSize > 0 && messageShapeError(data.subarray(f.sortIdAt, f.sortIdAt + f.sortIdSize)) === null) return undefined;
      if (k < 2) records.push(record!);
      at = f.body + f.size;
    }
    if (at > data.length) return undefined;
    return { wrongOptions: "its records carry sort ids (its first records frame as sort id, then record): read it with --sort-id true", recordsAsFitted: records };
  }

  /**
   * The frames in order. The format has no checksum, so a damaged size loses
   * the reader's place: it then scans forward for the next offset where a
   * frame plausibly starts (a header that parses, a size that fits and is not
   * the placeholder, a message that walks as protobuf, and the frames after it
   * doing the same, up to three or the end of the file) and resumes there,
   * counting the bytes in between. A size that fits but frames bytes that are
   * not a protobuf message (a size made larger takes in the next records'
   * headers, which never walk as one) is scanned from the frame's start the
   * same way, so it costs the records it touches, not those it swallowed.
   * Damage deeper inside a message is not seen here; the decoder refuses that record.
   */
  *frames(data: Uint8Array, window: FrameWindow = WHOLE_FILE): Generator<FrameEvent> {
    let at = 0;
    // The last record read, yielded once the frame after it reads too: a size made smaller that still frames a
    // message (a record cut short at a field's end) shows only there, as bytes that are no frame.
    let held: HeldRecord | null = null;
    while (at < data.length) {
      const start = at;
      const f = this.frameAt(data, at, Number.POSITIVE_INFINITY, window);
      if (f.kind === "more") {
        if (held) yield held.event;
        yield { kind: "short", offset: start, needs: f.needs };
        return;
      }
      const bytes = f.kind === "frame" ? data.subarray(f.body, f.body + f.size) : null;
      const shape = bytes ? messageShapeError(bytes) : null;
      if (f.kind === "bad" || shape !== null) {
        // A damaged size can read as one record the records after it, so the bytes are scanned from the frame's start, not skipped past its end.
        const message = f.kind === "bad" ? f.message : `record size ${f.size}: ${shape} (a damaged size or a damaged record)`;
        const r = resync(data, start, message, (p) => this.plausibleAt(data, p, PLAUSIBLE_CHAIN, window), window);
        const cut = held && r.event.kind === "lost" ? cutShort(data, held, r.resumeAt) : null;
        if (cut) yield cut;
        else {
          if (held) yield held.event;
          yield withFailure(r.event, { hint: f.kind === "bad" ? f.hint : undefined, ...this.wrongOptions(data, start, window) });
        }
        held = null;
        if (r.resumeAt === null) return;
        at = r.resumeAt;
        continue;
      }
      if (held) yield held.event;
      const frame = f as Extract<Frame, { kind: "frame" }>;
      const record = { bytes: bytes!, offset: start };
      held = { event: { kind: "record", record: this.opts.hasSortId && !this.opts.lagrangexHeader ? { ...record, sortId: data.subarray(frame.sortIdAt, frame.sortIdAt + frame.sortIdSize) } : record }, offset: start, body: frame.body, size: frame.size };
      at = frame.body + frame.size;
    }
    if (held) yield held.event;
  }

  private plausibleAt(data: Uint8Array, p: number, chain: number, window: FrameWindow): Plausible {
    const f = this.frameAt(data, p, PLAUSIBLE_SORT_ID_BYTES, window);
    if (f.kind === "more") return "more";
    if (f.kind === "bad" || messageShapeError(data.subarray(f.body, f.body + f.size)) !== null) return false;
    const next = f.body + f.size;
    if (next === data.length) return window.final || "more";
    return chain <= 1 || this.plausibleAt(data, next, chain - 1, window);
  }

  /** Reads the header of the frame at `start`. */
  private frameAt(data: Uint8Array, start: number, maxSortId: number, window: FrameWindow): Frame {
    let at = start;
    const u64 = (): number | null => {
      if (at + 8 > data.length) return null;
      const v = readU64(data, at);
      at += 8;
      return v;
    };
    // A header the bytes end inside: in a window, the next one holds it (it is short: never past maxFrame).
    const truncated = (what: string): Frame =>
      window.final
        ? { kind: "bad", message: window.end ? `truncated record: the ${what} runs past ${window.end}` : `truncated record: the file ends inside the ${what}`, hint: CHECK_OPTIONS }
        : { kind: "more", needs: at - start + 8 };
    const past = (what: string, size: number): Frame => {
      const p = pastWindow(`${what} ${sizeText(size)}`, at - start + size, data.length - at, window);
      return "needs" in p ? { kind: "more", needs: p.needs } : { kind: "bad", message: p.message, hint: CHECK_OPTIONS };
    };
    let sortIdAt = at;
    let sortIdSize = 0;
    if (this.opts.lagrangexHeader) {
      if (u64() === null) return truncated("lagrangex header");
    } else {
      if (this.opts.kafkaDumpPrefix) {
        const p = u64();
        if (p === null) return truncated("kafka dump prefix");
        if (p === 0) {
          if (u64() === null) return truncated("kafka dump prefix");
        } else sortIdSize = p;
      }
      if (this.opts.hasSortId) {
        const size = sortIdSize || u64();
        if (size === null) return truncated("sort id size");
        if (size > maxSortId) return { kind: "bad", message: `sort id size ${sizeText(size)} is more than a sort id holds` };
        if (size > data.length - at) return past("sort id size", size);
        sortIdAt = at;
        sortIdSize = size;
        at += size;
      }
      if (this.opts.kafkaDump && u64() === null) return truncated("kafka dump header");
    }
    const size = u64();
    if (size === null) return truncated("record size");
    if (size === DEADBEEF_SIZE) return { kind: "bad", message: "record size is the 0xfefefefe placeholder (Monolith's DEADBEEF guard): the file is corrupt or the framing options are wrong" };
    if (size > data.length - at) return past("record size", size);
    return { kind: "frame", body: at, size, sortIdAt, sortIdSize };
  }
}

/**
 * Why a frame's bytes cannot be a record: empty (as zeroed bytes read), or not a protobuf message at their top
 * level (as a size made larger reads, taking in the headers of the records after it); null when they can.
 */
function messageShapeError(bytes: Uint8Array): string | null {
  if (bytes.length === 0) return "an empty record (zeroed bytes read as a frame)";
  const wrong = wireShapeError(bytes);
  return wrong === null ? null : `its bytes are not a protobuf message: ${wrong}`;
}

/** A record read, held back until the frame after it reads (see PbFraming.frames). */
interface HeldRecord {
  event: FrameEvent;
  /** Where its frame starts, and its message. */
  offset: number;
  body: number;
  size: number;
}

/**
 * The record before a frame that failed, when its size is what was damaged: made smaller, it framed the first part of
 * its message, and the rest is the "frame" that failed. Then its message runs to where reading resumes (or the file's
 * end) and walks as one message there, which bytes holding a frame's header never do. One stretch from the record's
 * frame, instead of a record cut short kept as a sample and damage after it that names no record.
 */
function cutShort(data: Uint8Array, held: HeldRecord, resumeAt: number | null): FrameEvent | null {
  const end = resumeAt ?? data.length;
  if (messageShapeError(data.subarray(held.body, end)) !== null) return null;
  const message = `record size ${held.size} cuts its record short (a damaged size): the ${end - held.body - held.size} bytes after it are no frame, and with them it walks as one message of ${end - held.body} bytes`;
  return { kind: "lost", failure: { offset: held.offset, message, lostBytes: end - held.offset, resumeAt } };
}

/** A resync's event with what the frame's failure adds: a hint, or (a file the options do not fit) what to give instead. */
function withFailure(event: FrameEvent, extra: { hint?: string | undefined; wrongOptions?: string | undefined; recordsAsFitted?: Uint8Array[] }): FrameEvent {
  if (event.kind !== "lost") return event;
  const failure = { ...event.failure };
  if (extra.hint) failure.hint = extra.hint;
  if (extra.wrongOptions) failure.wrongOptions = extra.wrongOptions;
  if (extra.recordsAsFitted) failure.recordsAsFitted = extra.recordsAsFitted;
  return { kind: "lost", failure };
}

/** Writes records with the given framing; headers are zeros except a sort id, as Monolith's writer does. */
export function encodePbRecords(records: readonly Uint8Array[], opts: PbFramingOptions, sortIds?: readonly Uint8Array[]): Uint8Array {
  const parts: Uint8Array[] = [];
  records.forEach((r, i) => {
    const sortId = sortIds?.[i] ?? new Uint8Array(0);
    const head: number[] = [];
    if (opts.lagrangexHeader) head.push(0);
    else {
      if (opts.kafkaDumpPrefix) head.push(0, 0);
      if (opts.hasSortId) head.push(sortId.length);
    }
    const header = new Uint8Array(head.length * 8);
    head.forEach((v, k) => writeU64(header, k * 8, v));
    parts.push(header);
    if (!opts.lagrangexHeader && opts.hasSortId) parts.push(sortId);
    if (!opts.lagrangexHeader && opts.kafkaDump) parts.push(new Uint8Array(8));
    const size = new Uint8Array(8);
    writeU64(size, 0, r.length);
    parts.push(size, r);
  });
  return concatBytes(parts);
}
