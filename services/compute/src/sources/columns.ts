/** A growable typed column for sources that hold their records in memory. */
class Growable<A extends Float32Array | Uint32Array> {
  length = 0;

  constructor(
    public data: A,
    private readonly make: (n: number) => A,
  ) {}

  push(v: number): void {
    if (this.length === this.data.length) this.grow(this.length + 1);
    this.data[this.length++] = v;
  }

  /** Makes room for at least `min` elements, doubling so appends stay amortised O(1). */
  grow(min: number): void {
    if (min <= this.data.length) return;
    let n = this.data.length;
    while (n < min) n *= 2;
    const d = this.make(n);
    d.set(this.data.subarray(0, this.length));
    this.data = d;
  }

  pushAll(values: A): void {
    this.grow(this.length + values.length);
    this.data.set(values, this.length);
    this.length += values.length;
  }

  view(): A {
    return this.data.subarray(0, this.length) as A;
  }
}

export class GrowableF32 extends Growable<Float32Array> {
  constructor() {
    super(new Float32Array(1024), (n) => new Float32Array(n));
  }
}

export class GrowableU32 extends Growable<Uint32Array> {
  constructor() {
    super(new Uint32Array(1024), (n) => new Uint32Array(n));
  }
}
