/**
 * A minimal protobuf wire-format reader over a byte range, for the hot
 * decoders of Monolith's messages: no objects per field, 64-bit values as two
 * 32-bit words, and every read bounds-checked (a malformed message throws
 * WireError, never reads outside its range or loops).
 */
export class WireError extends Error {}

/** A well-formed message whose values do not fit the feature list (a feature of another kind than declared): says nothing of the framing. */
export class FitError extends WireError {}

/** An ExampleBatch whose batch_size is above the examples its reader takes: a request too large, not a malformed one, to serving. */
export class BatchSizeError extends WireError {
  constructor(
    readonly batchSize: number,
    readonly limit: number,
  ) {
    super(`batch_size ${batchSize} is above the limit of ${limit} examples per ExampleBatch`);
  }
}

export const WIRE_VARINT = 0;
export const WIRE_I64 = 1;
export const WIRE_LEN = 2;
export const WIRE_I32 = 5;

const f32 = new Float32Array(1);
const f32Bytes = new Uint8Array(f32.buffer);
const f64 = new Float64Array(1);
const f64Bytes = new Uint8Array(f64.buffer);

/**
 * Why `bytes` are not a protobuf message at their top level (a tag, a wire
 * type or a length that does not fit them exactly), or null when they walk as
 * one. Nested messages are not entered: this is the cheap check a framing
 * without checksums uses to tell a record from bytes its damaged size took in.
 */
export function wireShapeError(bytes: Uint8Array): string | null {
  const r = new WireReader(bytes);
  try {
    while (!r.done()) r.skip(r.tag() & 7);
    return null;
  } catch (err) {
    if (err instanceof WireError) return err.message;
    throw err;
  }
}

export class WireReader {
  pos: number;
  /** The last 64-bit value read by varint64/fixed64: low and high words. */
  lo = 0;
  hi = 0;

  constructor(
    readonly buf: Uint8Array,
    start = 0,
    readonly end = buf.length,
  ) {
    this.pos = start;
  }

  done(): boolean {
    return this.pos >= this.end;
  }

  /** Reads a tag; returns field number * 8 + wire type. */
  tag(): number {
    const t = this.varint32();
    if (t >>> 3 === 0) throw new WireError(`field number 0 at byte ${this.pos}`);
    return t;
  }

  /** A varint that must fit in 32 bits unsigned (tags, lengths, enums, int32 >= 0). */
  varint32(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      if (this.pos >= this.end) throw new WireError("varint runs past the end of the message");
      const b = this.buf[this.pos++]!;
      if (shift < 28) result |= (b & 0x7f) << shift;
      else if (shift === 28) result = (result | ((b & 0x0f) << 28)) >>> 0;
      if (b < 0x80) return result >>> 0;
      shift += 7;
      if (shift >= 70) throw new WireError("varint longer than 10 bytes");
    }
  }

  /** A varint of up to 64 bits into lo/hi. */
  varint64(): void {
    let lo = 0;
    let hi = 0;
    let shift = 0;
    for (;;) {
      if (this.pos >= this.end) throw new WireError("varint runs past the end of the message");
      const b = this.buf[this.pos++]!;
      const v = b & 0x7f;
      if (shift < 28) lo |= v << shift;
      else if (shift === 28) {
        lo |= (v & 0x0f) << 28;
        hi |= v >>> 4;
      } else if (shift < 64) hi |= v << (shift - 32);
      if (b < 0x80) break;
      shift += 7;
      if (shift >= 70) throw new WireError("varint longer than 10 bytes");
    }
    this.lo = lo >>> 0;
    this.hi = hi >>> 0;
  }

  fixed64(): void {
    if (this.pos + 8 > this.end) throw new WireError("fixed64 runs past the end of the message");
    const b = this.buf;
    const p = this.pos;
    this.lo = (b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24)) >>> 0;
    this.hi = (b[p + 4]! | (b[p + 5]! << 8) | (b[p + 6]! << 16) | (b[p + 7]! << 24)) >>> 0;
    this.pos += 8;
  }

  float32(): number {
    if (this.pos + 4 > this.end) throw new WireError("float runs past the end of the message");
    for (let i = 0; i < 4; i++) f32Bytes[i] = this.buf[this.pos + i]!;
    this.pos += 4;
    return f32[0]!;
  }

  float64(): number {
    if (this.pos + 8 > this.end) throw new WireError("double runs past the end of the message");
    for (let i = 0; i < 8; i++) f64Bytes[i] = this.buf[this.pos + i]!;
    this.pos += 8;
    return f64[0]!;
  }

  /** A length-delimited field's range; the reader moves past it. */
  bytes(): { start: number; end: number } {
    const len = this.varint32();
    if (len > this.end - this.pos) throw new WireError(`length ${len} runs past the end of the message (${this.end - this.pos} bytes left)`);
    const start = this.pos;
    this.pos += len;
    return { start, end: this.pos };
  }

  /** A sub-reader over a length-delimited field. */
  sub(): WireReader {
    const { start, end } = this.bytes();
    return new WireReader(this.buf, start, end);
  }

  skip(wireType: number): void {
    switch (wireType) {
      case WIRE_VARINT:
        this.varint64();
        return;
      case WIRE_I64:
        if (this.pos + 8 > this.end) throw new WireError("fixed64 runs past the end of the message");
        this.pos += 8;
        return;
      case WIRE_LEN:
        this.bytes();
        return;
      case WIRE_I32:
        if (this.pos + 4 > this.end) throw new WireError("fixed32 runs past the end of the message");
        this.pos += 4;
        return;
      default:
        throw new WireError(`unsupported wire type ${wireType} at byte ${this.pos}`);
    }
  }

  /**
   * Reads a repeated fixed64 field given its tag's wire type (packed or one
   * value), calling `each` with lo/hi words.
   */
  repeatedFixed64(wireType: number, each: (lo: number, hi: number) => void): void {
    if (wireType === WIRE_LEN) {
      const { start, end } = this.bytes();
      if ((end - start) % 8 !== 0) throw new WireError(`packed fixed64 field of ${end - start} bytes is not a multiple of 8`);
      const saved = this.pos;
      this.pos = start;
      while (this.pos < end) {
        this.fixed64();
        each(this.lo, this.hi);
      }
      this.pos = saved;
    } else if (wireType === WIRE_I64) {
      this.fixed64();
      each(this.lo, this.hi);
    } else throw new WireError(`fixed64 field with wire type ${wireType}`);
  }

  repeatedFloat(wireType: number, each: (v: number) => void): void {
    if (wireType === WIRE_LEN) {
      const { start, end } = this.bytes();
      if ((end - start) % 4 !== 0) throw new WireError(`packed float field of ${end - start} bytes is not a multiple of 4`);
      const saved = this.pos;
      this.pos = start;
      while (this.pos < end) each(this.float32());
      this.pos = saved;
    } else if (wireType === WIRE_I32) each(this.float32());
    else throw new WireError(`float field with wire type ${wireType}`);
  }

  repeatedDouble(wireType: number, each: (v: number) => void): void {
    if (wireType === WIRE_LEN) {
      const { start, end } = this.bytes();
      if ((end - start) % 8 !== 0) throw new WireError(`packed double field of ${end - start} bytes is not a multiple of 8`);
      const saved = this.pos;
      this.pos = start;
      while (this.pos < end) each(this.float64());
      this.pos = saved;
    } else if (wireType === WIRE_I64) each(this.float64());
    else throw new WireError(`double field with wire type ${wireType}`);
  }

  repeatedVarint64(wireType: number, each: (lo: number, hi: number) => void): void {
    if (wireType === WIRE_LEN) {
      // A sub-reader keeps the bound at the packed field's end.
      const sub = this.sub();
      while (!sub.done()) {
        sub.varint64();
        each(sub.lo, sub.hi);
      }
    } else if (wireType === WIRE_VARINT) {
      this.varint64();
      each(this.lo, this.hi);
    } else throw new WireError(`varint field with wire type ${wireType}`);
  }
}
