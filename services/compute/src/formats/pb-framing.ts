import { concatBytes, readU64, writeU64, type FrameEvent, type RecordFraming } from "./framing.js";

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

/** Monolith files carry a sort id by default. */
export const PB_FILE_DEFAULTS: PbFramingOptions = { lagrangexHeader: false, kafkaDumpPrefix: false, hasSortId: true, kafkaDump: false };

export const DEADBEEF_SIZE = 0xfefefefe;

const CHECK_OPTIONS = "check the framing options (sort id, kafka dump, lagrangex header)";

export class PbFraming implements RecordFraming {
  readonly name = "pb";

  constructor(private readonly opts: PbFramingOptions) {}

  *frames(data: Uint8Array): Generator<FrameEvent> {
    let at = 0;
    while (at < data.length) {
      const start = at;
      const fatal = (message: string): FrameEvent => ({ kind: "fatal", failure: { offset: start, message, lostBytes: data.length - start } });
      const u64 = (what: string): number | null => {
        if (at + 8 > data.length) return null;
        const v = readU64(data, at);
        at += 8;
        return v;
      };
      let truncated: string | null = null;
      if (this.opts.lagrangexHeader) {
        if (u64("lagrangex header") === null) truncated = "lagrangex header";
      } else {
        let sortIdSize = 0;
        if (this.opts.kafkaDumpPrefix) {
          const p = u64("kafka dump prefix");
          if (p === null) truncated = "kafka dump prefix";
          else if (p === 0) {
            if (u64("kafka dump prefix") === null) truncated = "kafka dump prefix";
          } else sortIdSize = p;
        }
        if (!truncated && this.opts.hasSortId) {
          const size = sortIdSize || u64("sort id size");
          if (size === null) truncated = "sort id size";
          else if (size > data.length - at) {
            yield fatal(`sort id size ${size} runs past the end of the file (${data.length - at} bytes left); ${CHECK_OPTIONS}`);
            return;
          } else at += size;
        }
        if (!truncated && this.opts.kafkaDump && u64("kafka dump header") === null) truncated = "kafka dump header";
      }
      if (truncated) {
        yield fatal(`truncated record: the file ends inside the ${truncated}; ${CHECK_OPTIONS}`);
        return;
      }
      const size = u64("size");
      if (size === null) {
        yield fatal(`truncated record: the file ends inside the record size; ${CHECK_OPTIONS}`);
        return;
      }
      if (size === DEADBEEF_SIZE) {
        yield fatal("record size is the 0xfefefefe placeholder (Monolith's DEADBEEF guard): the file is corrupt or the framing options are wrong");
        return;
      }
      if (size > data.length - at) {
        yield fatal(`record size ${size} runs past the end of the file (${data.length - at} bytes left); ${CHECK_OPTIONS}`);
        return;
      }
      yield { kind: "record", record: { bytes: data.subarray(at, at + size), offset: start } };
      at += size;
    }
  }
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
