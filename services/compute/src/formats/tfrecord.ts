import { maskedCrc32c } from "@pangea/kit";
import { pastWindow, readU32, readU64, resync, sizeText, WHOLE_FILE, writeU32, writeU64, type FrameEvent, type FrameWindow, type Plausible, type RecordFraming } from "./framing.js";

/**
 * TFRecord framing, checked on every record:
 *
 *   uint64 length            little-endian
 *   uint32 masked_crc32c(length bytes)
 *   byte   data[length]
 *   uint32 masked_crc32c(data)
 *
 * A bad data CRC spoils only that record (its length is trusted, so the next
 * record follows it). A bad length CRC or a frame running past the end loses
 * the reader's place: it scans forward for the next offset whose length CRC
 * checks (and whose frame fits in the file) and resumes there, counting the
 * bytes in between as lost; a random 12-byte window passes that check with
 * probability 2^-32.
 */
export class TfRecordFraming implements RecordFraming {
  readonly name = "tfrecord";

  *frames(data: Uint8Array, window: FrameWindow = WHOLE_FILE): Generator<FrameEvent> {
    let at = 0;
    while (at < data.length) {
      const start = at;
      let lostPlace: string | null = null;
      if (at + 12 > data.length) {
        if (!window.final) {
          yield { kind: "short", offset: start, needs: 16 };
          return;
        }
        lostPlace = `truncated TFRecord header: ${data.length - at} of 12 bytes`;
      } else if (readU32(data, at + 8) !== maskedCrc32c(data, at, at + 8)) lostPlace = "TFRecord length checksum mismatch";
      else {
        const length = readU64(data, at);
        if (length > data.length - at - 16) {
          const p = pastWindow(`TFRecord length ${sizeText(length)}`, length + 16, data.length - at - 16, window);
          if ("needs" in p) {
            yield { kind: "short", offset: start, needs: p.needs };
            return;
          }
          lostPlace = p.message;
        }
      }
      if (lostPlace !== null) {
        const r = resync(data, start, lostPlace, (p) => headerChecks(data, p, window), window);
        yield r.event;
        if (r.resumeAt === null) return;
        at = r.resumeAt;
        continue;
      }
      const body = at + 12;
      const end = body + readU64(data, at);
      if (readU32(data, end) !== maskedCrc32c(data, body, end)) {
        yield { kind: "bad-record", failure: { offset: start, message: "TFRecord data checksum mismatch" } };
      } else {
        yield { kind: "record", record: { bytes: data.subarray(body, end), offset: start } };
      }
      at = end + 4;
    }
  }
}

/** Whether a TFRecord header at `p` is one to resume at: its length CRC checks and its frame fits in the file (in a window, "more" until that can be told). */
function headerChecks(data: Uint8Array, p: number, window: FrameWindow): Plausible {
  if (p + 12 > data.length) return window.final ? false : "more";
  // The cheap test first: a length that fits (most garbage fails here) before the CRC.
  const length = readU64(data, p);
  const fits = length <= data.length - p - 16;
  if (!fits && (window.final || length + 16 > window.maxFrame)) return false;
  if (readU32(data, p + 8) !== maskedCrc32c(data, p, p + 8)) return false;
  return fits || "more";
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
