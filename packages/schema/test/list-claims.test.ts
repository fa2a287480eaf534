import { describe, expect, it } from "vitest";
import { DataType, MessageType, SchemaErrors, decodeMessage, encodeMessage, readFloat32, writeTensor } from "../src/index.js";

/**
 * Hostile list headers: a small message whose lists claim far more elements
 * than its bytes hold is refused before anything is allocated or iterated,
 * quickly, with SCHEMA_ERR_BAD_MESSAGE (INVALID_ARGUMENT) naming the field.
 */

/** A small Push as a trainer sends it: one dense gradient, one sparse id, a 1 x 4 sparse gradient. */
function smallPush(): Buffer {
  return encodeMessage(MessageType.GRADIENT_UPDATE, "trainer-0", (g) => {
    g.step = 1n;
    const dense = g._initDense(1);
    writeTensor(dense.get(0), "w", DataType.FLOAT32, [2], Float32Array.of(0.5, -0.5));
    writeTensor(g._initSparseIds(), "ids", DataType.UINT64, [1], Uint32Array.of(7, 1 << 16));
    writeTensor(g._initSparseGrads(), "g", DataType.FLOAT32, [1, 4], new Float32Array(4).fill(0.25));
  });
}

/** Byte position (in the whole buffer) of the object a non-far pointer word at `at` points to. */
function target(b: Buffer, at: number): number {
  return at + 8 + ((b.readInt32LE(at) >> 2) * 8);
}
/** Byte position of pointer slot `i` of the struct whose pointer word is at `at`. */
function slot(b: Buffer, at: number, i: number): number {
  const dataWords = b.readUInt16LE(at + 4);
  return target(b, at) + dataWords * 8 + i * 8;
}

function pointers(b: Buffer) {
  expect(b.readUInt32LE(0)).toBe(0); // one segment, so every pointer is near
  const root = 8;
  const payload = slot(b, root, 1);
  const dense = slot(b, payload, 0);
  const tag = target(b, dense); // a composite list starts with its tag word
  const tensor0 = { at: tag + 8, dataWords: b.readUInt16LE(tag + 4) };
  const shape = tensor0.at + tensor0.dataWords * 8 + 8; // Tensor pointer 1
  const grads = slot(b, payload, 2);
  const gradsData = slot(b, grads, 2);
  return { payload, dense, tag, shape, grads, gradsData };
}

function refusal(bytes: Buffer): { err: unknown; ms: number } {
  const t0 = performance.now();
  try {
    const { payload } = decodeMessage(bytes, MessageType.GRADIENT_UPDATE, "push from test");
    // What the parameter server reads next.
    for (let i = 0; i < payload.dense.length; i++) readFloat32(payload.dense.get(i), `dense ${i}`);
    readFloat32(payload.sparseGrads, "sparse gradients", 2);
    return { err: null, ms: performance.now() - t0 };
  } catch (err) {
    return { err, ms: performance.now() - t0 };
  }
}

function expectRefused(bytes: Buffer, field: RegExp): void {
  const { err, ms } = refusal(bytes);
  expect(err, "the message was accepted").not.toBeNull();
  expect(SchemaErrors.is(err, "SCHEMA_ERR_BAD_MESSAGE"), String(err)).toBe(true);
  expect((err as { status: string }).status).toBe("INVALID_ARGUMENT");
  expect((err as Error).message).toMatch(field);
  // Refused before anything the claim names is allocated: expanding it would take seconds (two test files share the cores).
  expect(ms).toBeLessThan(500);
}

describe("list claims are checked against the message's bytes", () => {
  it("the untouched Push decodes (the fixture is sound)", () => {
    const b = smallPush();
    expect(b.length).toBeLessThan(400);
    expect(refusal(b).err).toBeNull();
  });

  it.each([2 ** 22, 2 ** 24 - 1])("a composite list of zero-sized structs claiming %i elements is refused", (n) => {
    const b = smallPush();
    const { tag } = pointers(b);
    b.writeUInt32LE((n << 2) >>> 0, tag); // element count
    b.writeUInt32LE(0, tag + 4); // 0 data words, 0 pointers per element
    expectRefused(b, /^push from test: gradientUpdate\.dense: list claims \d+ elements of 0 bytes/);
  });

  it("a composite list whose element count times element size exceeds its words is refused", () => {
    const b = smallPush();
    const { tag } = pointers(b);
    b.writeUInt32LE((1000 << 2) >>> 0, tag);
    expectRefused(b, /gradientUpdate\.dense: list claims 1000 elements/);
  });

  it("a List(UInt32) shape claiming 2^24 elements is refused, naming the tensor's shape", () => {
    const b = smallPush();
    const { shape } = pointers(b);
    b.writeUInt32LE((((2 ** 24) << 3) | 4) >>> 0, shape + 4); // 4-byte elements
    expectRefused(b, /gradientUpdate\.dense\[0\]\.shape: list claims 16777216 4-byte elements \(67108864 bytes\), but only \d+ bytes/);
  });

  it("a Data list claiming more bytes than follow is refused", () => {
    const b = smallPush();
    const { gradsData } = pointers(b);
    b.writeUInt32LE((((2 ** 29 - 1) << 3) | 2) >>> 0, gradsData + 4);
    expectRefused(b, /gradientUpdate\.sparseGrads\.data: list claims 536870911 byte elements/);
  });

  it("a void list claiming 2^29 elements (no bytes at all) is refused", () => {
    const b = smallPush();
    const { shape } = pointers(b);
    b.writeUInt32LE((((2 ** 29 - 1) << 3) | 0) >>> 0, shape + 4);
    expectRefused(b, /gradientUpdate\.dense\[0\]\.shape: the message's pointers reach more words than the message holds/);
  });

  it("pointers that share content cannot amplify a message", () => {
    // A list of 40 pointers, every one aimed at the same 4 KB tensor data: 160 KB reachable from a ~5 KB message.
    const data = new Uint8Array(4096);
    const b = encodeMessage(MessageType.GRADIENT_UPDATE, "t", (g) => {
      const dense = g._initDense(40);
      writeTensor(dense.get(0), "w", DataType.UINT8, [4096], data);
      for (let i = 1; i < 40; i++) writeTensor(dense.get(i), "w", DataType.UINT8, [0], new Uint8Array(0));
    }, 16_384);
    // Point tensor i's data pointer (pointer 2) at tensor 0's data.
    const { tag } = pointers(b);
    const dw = b.readUInt16LE(tag + 4);
    const per = (dw + b.readUInt16LE(tag + 6)) * 8;
    const data0 = tag + 8 + dw * 8 + 16;
    const content = target(b, data0);
    for (let i = 1; i < 40; i++) {
      const p = tag + 8 + i * per + dw * 8 + 16;
      b.writeInt32LE((((content - p - 8) / 8) << 2) | 1, p);
      b.writeUInt32LE(b.readUInt32LE(data0 + 4), p + 4);
    }
    expectRefused(b, /gradientUpdate\.dense\[\d+\]\.data: the message's pointers reach more words than the message holds/);
  });

  it("a struct pointer reaching past its segment is refused", () => {
    const b = smallPush();
    const { grads } = pointers(b);
    b.writeUInt16LE(0xffff, grads + 4); // 65535 data words
    expectRefused(b, /gradientUpdate\.sparseGrads: struct of \d+ bytes, but only \d+ bytes of the segment follow/);
  });

  it("a two-segment message (double-far root pointer, as other Cap'n Proto writers may send) is followed and decodes", () => {
    const one = smallPush();
    const words = one.readUInt32LE(4);
    const seg0 = Buffer.from(one.subarray(8, 8 + words * 8));
    const rootLo = seg0.readUInt32LE(0);
    const rootHi = seg0.readUInt32LE(4);
    // Segment 0 keeps its content; its root pointer becomes a double-far pointer to a landing pad in segment 1,
    // whose first word points (single far) back at the root struct in segment 0 and whose second is the tag.
    const structAt = 1 + ((rootLo | 0) >> 2); // word index of the root struct in segment 0
    seg0.writeUInt32LE(((0 << 3) | 4 | 2) >>> 0, 0);
    seg0.writeUInt32LE(1, 4);
    const seg1 = Buffer.alloc(16);
    seg1.writeUInt32LE(((structAt << 3) | 2) >>> 0, 0);
    seg1.writeUInt32LE(0, 4);
    seg1.writeUInt32LE(0, 8);
    seg1.writeUInt32LE(rootHi, 12);
    const header = Buffer.alloc(16);
    header.writeUInt32LE(1, 0);
    header.writeUInt32LE(seg0.length / 8, 4);
    header.writeUInt32LE(seg1.length / 8, 8);
    const two = Buffer.concat([header, seg0, seg1]);
    const { payload } = decodeMessage(two, MessageType.GRADIENT_UPDATE, "two segments");
    expect(Array.from(readFloat32(payload.dense.get(0), "dense").data)).toEqual([0.5, -0.5]);
    // A far pointer to a segment that does not exist is refused, naming where.
    const bad = Buffer.from(two);
    bad.writeUInt32LE(7, 16 + 4);
    expectRefused(bad, /^push from test: root: far pointer to segment 7 of 2/);
  });

  it("fields added to the schema later are named too (the names come from the compiler's view of the schema)", () => {
    const b = encodeMessage(MessageType.GRADIENT_UPDATE, "trainer-0", (g) => {
      g.step = 1n;
      const losses = g._initTaskLosses(2);
      losses.set(0, 0.5);
      losses.set(1, 0.25);
    });
    expect(Array.from(decodeMessage(Buffer.from(b), MessageType.GRADIENT_UPDATE, "push from test").payload.taskLosses)).toEqual([0.5, 0.25]);
    const root = 8;
    const payload = slot(b, root, 1);
    const taskLosses = slot(b, payload, 3);
    // A 4-byte list of 2 elements becomes one claiming 2^28 - 1 elements.
    const hi = b.readUInt32LE(taskLosses + 4);
    b.writeUInt32LE(((((2 ** 29 - 1) << 3) | (hi & 7)) >>> 0), taskLosses + 4);
    expectRefused(b, /^push from test: gradientUpdate\.taskLosses: list claims \d+ 4-byte elements/);
  });
});
