/**
 * Where a zstd stream's frames end, found from their headers alone (RFC 8878
 * section 3.1), so the decoder can be fed one frame at a time and each
 * frame's decoded bytes checked against its content checksum: the decoder
 * (fzstd) does not compute it. Skippable frames are passed over. At
 * anything that is not a frame (a bad magic number, a reserved block type)
 * the walker stops following the stream and reports no more frames: the
 * decoder names that damage itself.
 */

/** A data frame ending in the input just fed. */
export interface FrameEnd {
  /** Offset in that input just past the frame's last byte. */
  at: number;
  /** The frame's content checksum (XXH64's low 32 bits), or null when the frame carries none. */
  checksum: number | null;
  /** Offset in the whole stream of the frame's first byte. */
  start: number;
}

const DATA_MAGIC = 0xfd2fb528;
/** Skippable frames' magic numbers are 0x184D2A50..0x184D2A5F. */
const SKIPPABLE_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;
const DICT_ID_BYTES = [0, 1, 2, 4];

type Need = "magic" | "skipSize" | "skip" | "descriptor" | "headerRest" | "blockHeader" | "blockBody" | "checksum";

export class ZstdFrames {
  /** False once the stream stopped looking like frames. */
  following = true;
  private need: Need = "magic";
  /** Bytes the current field still needs. */
  private remaining = 4;
  /** The current field's bytes so far (fields are at most 4 bytes: magic, sizes, checksum). */
  private field = 0;
  private fieldBytes = 0;
  private hasChecksum = false;
  private lastBlock = false;
  /** Stream offset of the next byte fed, and of the current frame's start. */
  private offset = 0;
  private frameStart = 0;

  /** The data frames that end within `input`, in order. */
  feed(input: Uint8Array): FrameEnd[] {
    const ends: FrameEnd[] = [];
    let i = 0;
    while (i < input.length && this.following) {
      if (this.need === "skip" || this.need === "blockBody" || this.need === "headerRest") {
        // Bytes passed over without being read.
        const take = Math.min(this.remaining, input.length - i);
        i += take;
        this.remaining -= take;
        if (this.remaining === 0) this.fieldDone(0, ends, i);
        continue;
      }
      this.field |= input[i]! << (8 * this.fieldBytes);
      this.fieldBytes++;
      i++;
      if (--this.remaining === 0) {
        const value = this.field >>> 0;
        this.field = 0;
        this.fieldBytes = 0;
        this.fieldDone(value, ends, i);
      }
    }
    this.offset += input.length;
    return ends;
  }

  /** A field (or a run of bytes passed over) is complete at input offset `at`: what comes next. */
  private fieldDone(value: number, ends: FrameEnd[], at: number): void {
    switch (this.need) {
      case "magic":
        this.frameStart = this.offset + at - 4;
        if (value === DATA_MAGIC) return this.expect("descriptor", 1);
        if (((value & SKIPPABLE_MASK) >>> 0) === SKIPPABLE_MAGIC) return this.expect("skipSize", 4);
        this.following = false;
        return;
      case "skipSize":
        return value === 0 ? this.expect("magic", 4) : this.expect("skip", value);
      case "skip":
        return this.expect("magic", 4);
      case "descriptor": {
        const contentSizeFlag = value >> 6;
        const singleSegment = (value >> 5) & 1;
        if ((value >> 3) & 1) {
          // The reserved bit must be 0.
          this.following = false;
          return;
        }
        this.hasChecksum = ((value >> 2) & 1) === 1;
        const contentSizeBytes = [singleSegment ? 1 : 0, 2, 4, 8][contentSizeFlag]!;
        const rest = (singleSegment ? 0 : 1) + DICT_ID_BYTES[value & 3]! + contentSizeBytes;
        return rest === 0 ? this.expect("blockHeader", 3) : this.expect("headerRest", rest);
      }
      case "headerRest":
        return this.expect("blockHeader", 3);
      case "blockHeader": {
        this.lastBlock = (value & 1) === 1;
        const type = (value >> 1) & 3;
        const size = value >>> 3;
        if (type === 3) {
          this.following = false;
          return;
        }
        // An RLE block's size is what it decodes to; its body is the one byte repeated.
        const body = type === 1 ? 1 : size;
        if (body > 0) return this.expect("blockBody", body);
        return this.blockDone(ends, at);
      }
      case "blockBody":
        return this.blockDone(ends, at);
      case "checksum":
        ends.push({ at, checksum: value, start: this.frameStart });
        return this.expect("magic", 4);
    }
  }

  private blockDone(ends: FrameEnd[], at: number): void {
    if (!this.lastBlock) return this.expect("blockHeader", 3);
    if (this.hasChecksum) return this.expect("checksum", 4);
    ends.push({ at, checksum: null, start: this.frameStart });
    this.expect("magic", 4);
  }

  private expect(need: Need, bytes: number): void {
    this.need = need;
    this.remaining = bytes;
  }
}
