import { maskedCrc32c } from "@pangea/kit";
import { readU32, readU64, writeU32, writeU64, type FrameEvent, type RecordFraming } from "./framing.js";

/**
 * TFRecord framing, checked on every record:
 *
 *   uint64 length            little-endian
 *   uint32 masked_crc32c(length bytes)
 *   byte   data[length]
 *   uint32 masked_crc32c(data)
 *
 * A bad length CRC or a truncated frame loses the reader's place (fatal for
 * the rest of the file); a bad data CRC spoils only that record.
 */
export class TfRecordFraming implements RecordFraming {
  readonly name = "tfrecord";

  *frames(data: Uint8Array): Generator<FrameEvent> {
    let at = 0;
    while (at < data.length) {
      const start = at;
      const fatal = (message: string): FrameEvent => ({ kind: "fatal", failure: { offset: start, message, lostBytes: data.length - start } });
      if (at + 12 > data.length) {
        yield fatal(`truncated TFRecord header: ${data.length - at} of 12 bytes`);
        return;
      }
      const length = readU64(data, at);
      if (readU32(data, at + 8) !== maskedCrc32c(data, at, at + 8)) {
        yield fatal("TFRecord length checksum mismatch");
        return;
      }
      if (length > data.length - at - 16) {
        yield fatal(`TFRecord length ${length} runs past the end of the file (${data.length - at - 16} bytes left)`);
        return;
      }
      const body = at + 12;
      const end = body + length;
      if (readU32(data, end) !== maskedCrc32c(data, body, end)) {
        yield { kind: "bad-record", failure: { offset: start, message: "TFRecord data checksum mismatch" } };
      } else {
        yield { kind: "record", record: { bytes: data.subarray(body, end), offset: start } };
      }
      at = end + 4;
    }
  }
}

export function encodeTfRecords(records: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(records.reduce((n, r) => n + r.length + 16, 0));
  let at = 0;
  for (const r of records) {
    writeU64(out, at, r.length);
    writeU32(out, at + 8, maskedCrc32c(out, at, at + 8));
    out.set(r, at + 12);
    writeU32(out, at + 12 + r.length, maskedCrc32c(r));
    at += r.length + 16;
  }
  return out;
}
