import { DataType, type Tensor } from "./gen/pangea-capnp.js";
import { SchemaErrors } from "./errors.js";
import { decodeHalf, encodeHalf } from "./float16.js";

export type TypedArray = Float32Array | Float64Array | Int32Array | Uint32Array | BigInt64Array | BigUint64Array | Uint8Array | Uint16Array;

const BYTES: Record<DataType, number> = {
  [DataType.FLOAT32]: 4,
  [DataType.FLOAT64]: 8,
  [DataType.INT32]: 4,
  [DataType.UINT32]: 4,
  [DataType.INT64]: 8,
  [DataType.UINT64]: 8,
  [DataType.UINT8]: 1,
  [DataType.FLOAT16]: 2,
};

const DTYPE_NAMES = Object.fromEntries(Object.entries(DataType).map(([k, v]) => [v, k.toLowerCase()])) as Record<DataType, string>;

export function dtypeName(dtype: DataType): string {
  return DTYPE_NAMES[dtype] ?? `unknown(${dtype})`;
}

export function bytesPerElement(dtype: DataType): number {
  return BYTES[dtype];
}

/**
 * Fills a Tensor struct. `data` is copied once into the message; `shape`'s
 * product must equal the element count. 64-bit integer tensors may be given as
 * a Uint32Array of little-endian (lo, hi) word pairs, which is how the hot
 * path holds feature ids without BigInt.
 */
export function writeTensor(t: Tensor, name: string, dtype: DataType, shape: readonly number[], data: TypedArray): void {
  const count = shape.reduce((a, b) => a * b, 1);
  const bytes = count * BYTES[dtype];
  if (data.byteLength !== bytes) {
    throw SchemaErrors.create("SCHEMA_ERR_BAD_TENSOR", `tensor '${name}': shape [${shape.join(", ")}] ${dtypeName(dtype)} needs ${bytes} bytes, got ${data.byteLength}`);
  }
  t.name = name;
  t.dtype = dtype;
  const s = t._initShape(shape.length);
  for (let i = 0; i < shape.length; i++) s.set(i, shape[i]!);
  if (bytes > 0) t._initData(bytes).toUint8Array().set(new Uint8Array(data.buffer, data.byteOffset, bytes));
}

export interface TensorView {
  name: string;
  dtype: DataType;
  shape: number[];
  bytes: Uint8Array;
}

/**
 * Reads a tensor's header and a zero-copy byte view, checking the byte length
 * against the shape. Pointers are followed lazily, so a corrupt message can
 * fail here rather than at decode; that too becomes SCHEMA_ERR_BAD_TENSOR.
 */
export function viewTensor(t: Tensor, what: string): TensorView {
  try {
    return viewTensorUnchecked(t, what);
  } catch (err) {
    if (SchemaErrors.is(err)) throw err;
    throw SchemaErrors.create("SCHEMA_ERR_BAD_TENSOR", `${what}: unreadable tensor: ${(err as Error).message.split("\n")[0]}`);
  }
}

function viewTensorUnchecked(t: Tensor, what: string): TensorView {
  const dtype = t.dtype;
  const size = BYTES[dtype];
  if (size === undefined) throw SchemaErrors.create("SCHEMA_ERR_BAD_TENSOR", `${what}: unknown dtype ${dtype}`);
  const shapeList = t.shape;
  const shape: number[] = new Array(shapeList.length);
  let count = 1;
  for (let i = 0; i < shape.length; i++) {
    shape[i] = shapeList.get(i);
    count *= shape[i]!;
  }
  const bytes = t._hasData() ? t.data.toUint8Array() : new Uint8Array(0);
  if (bytes.byteLength !== count * size) {
    throw SchemaErrors.create(
      "SCHEMA_ERR_BAD_TENSOR",
      `${what}: shape [${shape.join(", ")}] ${dtypeName(dtype)} needs ${count * size} bytes, data has ${bytes.byteLength}`,
    );
  }
  return { name: t.name, dtype, shape, bytes };
}

/**
 * A tensor of one of `dtypes`, read and checked: the dtype is checked first, so a tensor left out of a message (read as
 * capnp's default: float32, no shape, no data) is named by the dtype expected, not by a byte count.
 */
function viewOf(t: Tensor, what: string, dtypes: DataType[], rank?: number): TensorView {
  const dtype = t.dtype;
  // An unknown dtype is viewTensor's to name.
  if (BYTES[dtype] !== undefined && !dtypes.includes(dtype)) {
    throw SchemaErrors.create("SCHEMA_ERR_BAD_TENSOR", `${what}: expected dtype ${dtypes.map(dtypeName).join(" or ")}, got ${dtypeName(dtype)}`);
  }
  const v = viewTensor(t, what);
  if (rank !== undefined && v.shape.length !== rank) {
    throw SchemaErrors.create("SCHEMA_ERR_BAD_TENSOR", `${what}: expected rank ${rank}, got shape [${v.shape.join(", ")}]`);
  }
  return v;
}

/** Typed-array views need element alignment; capnp data is word-aligned, but copy if a buffer ever is not. */
function aligned(bytes: Uint8Array, size: number): Uint8Array {
  return bytes.byteOffset % size === 0 ? bytes : Uint8Array.prototype.slice.call(bytes);
}

/**
 * A float tensor's values as float32: a view for float32 data, a decoded
 * copy for float16 (compressed transport), so receivers need not care which.
 */
export function readFloat32(t: Tensor, what: string, rank?: number): { data: Float32Array; shape: number[] } {
  const v = viewOf(t, what, [DataType.FLOAT32, DataType.FLOAT16], rank);
  if (v.dtype === DataType.FLOAT16) {
    const b = aligned(v.bytes, 2);
    return { data: decodeHalf(new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2)), shape: v.shape };
  }
  const b = aligned(v.bytes, 4);
  return { data: new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4), shape: v.shape };
}

export function readUint32(t: Tensor, what: string, rank?: number): { data: Uint32Array; shape: number[] } {
  const v = viewOf(t, what, [DataType.UINT32], rank);
  const b = aligned(v.bytes, 4);
  return { data: new Uint32Array(b.buffer, b.byteOffset, b.byteLength / 4), shape: v.shape };
}

/** A uint64 tensor as (lo, hi) word pairs: element i is words[2i] + words[2i+1] * 2^32. */
export function readIdWords(t: Tensor, what: string): { words: Uint32Array; count: number } {
  const v = viewOf(t, what, [DataType.UINT64], 1);
  const b = aligned(v.bytes, 4);
  return { words: new Uint32Array(b.buffer, b.byteOffset, b.byteLength / 4), count: v.shape[0]! };
}


/**
 * Allocates a float32 tensor inside the message and returns a writable view of
 * its data, so large payloads are filled in place instead of copied in.
 */
export function initFloat32Tensor(t: Tensor, name: string, shape: readonly number[]): Float32Array {
  const count = shape.reduce((a, b) => a * b, 1);
  t.name = name;
  t.dtype = DataType.FLOAT32;
  const s = t._initShape(shape.length);
  for (let i = 0; i < shape.length; i++) s.set(i, shape[i]!);
  if (count === 0) return new Float32Array(0);
  const bytes = t._initData(count * 4).toUint8Array();
  // Cap'n Proto places data on 8-byte word boundaries; a misaligned view would be a capnp-es bug.
  if (bytes.byteOffset % 4 !== 0) throw new Error(`capnp data for tensor '${name}' is not 4-byte aligned`);
  return new Float32Array(bytes.buffer, bytes.byteOffset, count);
}

/** Writes float32 values as a float32 tensor, or as float16 when `half` (half the bytes, ~3 significant digits). */
export function writeFloats(t: Tensor, name: string, shape: readonly number[], data: Float32Array, half: boolean): void {
  if (half) writeTensor(t, name, DataType.FLOAT16, shape, encodeHalf(data));
  else writeTensor(t, name, DataType.FLOAT32, shape, data);
}
