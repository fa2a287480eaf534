/** A minimal protobuf wire-format writer, enough to produce Monolith's messages. */
export class WireWriter {
  private buf = new Uint8Array(256);
  private len = 0;
  private readonly f32 = new Float32Array(1);

  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const b = new Uint8Array(size);
    b.set(this.buf.subarray(0, this.len));
    this.buf = b;
  }

  varint(v: number): this {
    this.ensure(10);
    while (v > 0x7f) {
      this.buf[this.len++] = (v & 0x7f) | 0x80;
      v = Math.floor(v / 128);
    }
    this.buf[this.len++] = v;
    return this;
  }

  /** A 64-bit varint from two 32-bit words (two's complement for negatives). */
  varint64(lo: number, hi: number): this {
    this.ensure(10);
    lo >>>= 0;
    hi >>>= 0;
    while (hi > 0 || lo > 0x7f) {
      this.buf[this.len++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    this.buf[this.len++] = lo;
    return this;
  }

  tag(field: number, wireType: number): this {
    return this.varint(field * 8 + wireType);
  }

  fixed64(lo: number, hi: number): this {
    this.ensure(8);
    for (let i = 0; i < 4; i++) this.buf[this.len + i] = (lo >>> (8 * i)) & 0xff;
    for (let i = 0; i < 4; i++) this.buf[this.len + 4 + i] = (hi >>> (8 * i)) & 0xff;
    this.len += 8;
    return this;
  }

  float(v: number): this {
    this.ensure(4);
    this.f32[0] = v;
    this.buf.set(new Uint8Array(this.f32.buffer), this.len);
    this.len += 4;
    return this;
  }

  bytes(field: number, data: Uint8Array): this {
    this.tag(field, 2).varint(data.length);
    this.ensure(data.length);
    this.buf.set(data, this.len);
    this.len += data.length;
    return this;
  }

  string(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }

  /** A length-delimited sub-message written by `fill`. */
  message(field: number, fill: (w: WireWriter) => void): this {
    const w = new WireWriter();
    fill(w);
    return this.bytes(field, w.finish());
  }

  packedFixed64(field: number, words: Uint32Array, count: number): this {
    if (count === 0) return this;
    this.tag(field, 2).varint(count * 8);
    for (let i = 0; i < count; i++) this.fixed64(words[2 * i]!, words[2 * i + 1]!);
    return this;
  }

  packedFloat(field: number, values: ArrayLike<number>): this {
    if (values.length === 0) return this;
    this.tag(field, 2).varint(values.length * 4);
    for (let i = 0; i < values.length; i++) this.float(values[i]!);
    return this;
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}
