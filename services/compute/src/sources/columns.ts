/** Growable typed columns for sources that hold their records in memory. */
export class GrowableF32 {
  data = new Float32Array(1024);
  length = 0;
  push(v: number): void {
    if (this.length === this.data.length) this.grow(this.length + 1);
    this.data[this.length++] = v;
  }
  /** Makes room for at least `min` elements, doubling so appends stay amortised O(1). */
  grow(min: number): void {
    if (min <= this.data.length) return;
    let n = this.data.length;
    while (n < min) n *= 2;
    const d = new Float32Array(n);
    d.set(this.data.subarray(0, this.length));
    this.data = d;
  }
  view(): Float32Array {
    return this.data.subarray(0, this.length);
  }
}

export class GrowableU32 {
  data = new Uint32Array(1024);
  length = 0;
  push(v: number): void {
    if (this.length === this.data.length) this.grow(this.length + 1);
    this.data[this.length++] = v;
  }
  /** Makes room for at least `min` elements, doubling so appends stay amortised O(1). */
  grow(min: number): void {
    if (min <= this.data.length) return;
    let n = this.data.length;
    while (n < min) n *= 2;
    const d = new Uint32Array(n);
    d.set(this.data.subarray(0, this.length));
    this.data = d;
  }
  view(): Uint32Array {
    return this.data.subarray(0, this.length);
  }
}
