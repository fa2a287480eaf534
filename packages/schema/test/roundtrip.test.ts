import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  DataType,
  MessageType,
  Split,
  decodeMessage,
  encodeMessage,
  initFloat32Tensor,
  readFloat32,
  readIdWords,
  readUint32,
  viewTensor,
  writeTensor,
  SchemaErrors,
  sizeHint,
} from "../src/index.js";

const f32 = (xs: number[]) => Float32Array.from(xs);

describe("Tensor", () => {
  it.each([
    ["float32", DataType.FLOAT32, new Float32Array([1.5, -2, 3.25, 0])],
    ["float64", DataType.FLOAT64, new Float64Array([1e300, -1e-300])],
    ["int32", DataType.INT32, new Int32Array([-1, 2, -2147483648])],
    ["uint32", DataType.UINT32, new Uint32Array([0, 4294967295])],
    ["int64", DataType.INT64, new BigInt64Array([-5n, 9007199254740993n])],
    ["uint64", DataType.UINT64, new BigUint64Array([0n, 18446744073709551615n])],
    ["uint8", DataType.UINT8, new Uint8Array([0, 255, 7])],
  ] as const)("round-trips %s data byte for byte with its shape", (_name, dtype, data) => {
    const bytes = encodeMessage(MessageType.PARAMETER_SET, "test", (set) => {
      writeTensor(set._initEmbeddings(), "t", dtype, [data.length, 1], data);
    });
    const { payload } = decodeMessage(bytes, MessageType.PARAMETER_SET);
    const view = viewTensor(payload.embeddings, "t");
    expect(view.dtype).toBe(dtype);
    expect(view.shape).toEqual([data.length, 1]);
    expect(Buffer.from(view.bytes)).toEqual(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  });

  it("refuses data whose length does not match the shape", () => {
    expect(() =>
      encodeMessage(MessageType.PARAMETER_SET, "test", (set) => writeTensor(set._initEmbeddings(), "rows", DataType.FLOAT32, [2, 3], f32([1, 2]))),
    ).toThrow(/tensor 'rows': shape \[2, 3\] float32 needs 24 bytes, got 8/);
  });

  it("reads float32 as a view of the message, not a copy", () => {
    const bytes = encodeMessage(MessageType.PARAMETER_SET, "test", (set) => {
      const out = initFloat32Tensor(set._initEmbeddings(), "rows", [2, 2]);
      out.set([1, 2, 3, 4]);
    });
    const { payload } = decodeMessage(bytes, MessageType.PARAMETER_SET);
    const a = readFloat32(payload.embeddings, "rows", 2);
    expect(Array.from(a.data)).toEqual([1, 2, 3, 4]);
    const b = readFloat32(payload.embeddings, "rows", 2);
    a.data[0] = 42;
    expect(b.data[0]).toBe(42);
  });

  it("names the tensor and the expected dtype when the dtype is wrong", () => {
    const bytes = encodeMessage(MessageType.PARAMETER_SET, "test", (set) => writeTensor(set._initEmbeddings(), "rows", DataType.INT32, [1], new Int32Array([1])));
    const { payload } = decodeMessage(bytes, MessageType.PARAMETER_SET);
    expect(() => readFloat32(payload.embeddings, "embeddings")).toThrow("embeddings: expected dtype float32 or float16, got int32");
  });
});

describe("every message type round-trips", () => {
  it("TrainingBatch", () => {
    const ids = new Uint32Array([1, 0x10000, 2, 0x20000, 3, 0x10000]);
    const bytes = encodeMessage(MessageType.TRAINING_BATCH, "compute-1", (b) => {
      b.batchIndex = 7n;
      b.epoch = 2;
      b.split = Split.EVAL;
      const slots = b._initSlotIds(3);
      [1, 2, 300].forEach((s, i) => slots.set(i, s));
      writeTensor(b._initDense(), "dense", DataType.FLOAT32, [1, 2], f32([0.5, 1.5]));
      writeTensor(b._initLabels(), "labels", DataType.FLOAT32, [1], f32([1]));
      writeTensor(b._initFeatureIds(), "feature_ids", DataType.UINT64, [3], ids);
      writeTensor(b._initCellOffsets(), "cell_offsets", DataType.UINT32, [4], new Uint32Array([0, 1, 3, 3]));
    });
    const { payload: b, sender } = decodeMessage(bytes, MessageType.TRAINING_BATCH);
    expect(sender).toBe("compute-1");
    expect(b.batchIndex).toBe(7n);
    expect(b.epoch).toBe(2);
    expect(b.split).toBe(Split.EVAL);
    expect([0, 1, 2].map((i) => b.slotIds.get(i))).toEqual([1, 2, 300]);
    expect(Array.from(readFloat32(b.dense, "dense", 2).data)).toEqual([0.5, 1.5]);
    expect(Array.from(readFloat32(b.labels, "labels", 1).data)).toEqual([1]);
    expect(Array.from(readIdWords(b.featureIds, "ids").words)).toEqual(Array.from(ids));
    expect(Array.from(readUint32(b.cellOffsets, "offsets", 1).data)).toEqual([0, 1, 3, 3]);
  });

  it("BatchRequest", () => {
    const bytes = encodeMessage(MessageType.BATCH_REQUEST, "t", (r) => {
      r.workerRank = 3;
      r.worldSize = 4;
      r.batchSize = 512;
      r.maxBatches = 1000n;
      r.split = Split.TRAIN;
      r.window = 8;
    });
    const { payload: r } = decodeMessage(bytes, MessageType.BATCH_REQUEST);
    expect([r.workerRank, r.worldSize, r.batchSize, r.maxBatches, r.split, r.window]).toEqual([3, 4, 512, 1000n, Split.TRAIN, 8]);
  });

  it("BatchAck", () => {
    const a = decodeMessage(encodeMessage(MessageType.BATCH_ACK, "t", (x) => (x.consumed = 3)), MessageType.BATCH_ACK).payload;
    expect(a.consumed).toBe(3);
  });

  it("TrainingBatch weights are optional", () => {
    const without = decodeMessage(encodeMessage(MessageType.TRAINING_BATCH, "c", (b) => b._initSlotIds(0)), MessageType.TRAINING_BATCH).payload;
    expect(without._hasWeights()).toBe(false);
    const withW = decodeMessage(
      encodeMessage(MessageType.TRAINING_BATCH, "c", (b) => writeTensor(b._initWeights(), "weights", DataType.FLOAT32, [2], f32([0.5, 2]))),
      MessageType.TRAINING_BATCH,
    ).payload;
    expect(Array.from(readFloat32(withW.weights, "weights", 1).data)).toEqual([0.5, 2]);
  });

  it("ParameterRequest and ParameterSet", () => {
    const req = decodeMessage(
      encodeMessage(MessageType.PARAMETER_REQUEST, "t", (r) => {
        r.workerRank = 1;
        r.step = 99n;
        r.includeDense = true;
        r.readOnly = true;
        writeTensor(r._initIds(), "ids", DataType.UINT64, [1], new Uint32Array([5, 6]));
      }),
      MessageType.PARAMETER_REQUEST,
    ).payload;
    expect([req.workerRank, req.step, req.includeDense, req.readOnly]).toEqual([1, 99n, true, true]);
    expect(Array.from(readIdWords(req.ids, "ids").words)).toEqual([5, 6]);

    const set = decodeMessage(
      encodeMessage(MessageType.PARAMETER_SET, "o", (s) => {
        s.step = 12n;
        const dense = s._initDense(2);
        writeTensor(dense.get(0), "w", DataType.FLOAT32, [2, 1], f32([1, 2]));
        writeTensor(dense.get(1), "b", DataType.FLOAT32, [1], f32([3]));
        writeTensor(s._initIds(), "ids", DataType.UINT64, [1], new Uint32Array([5, 6]));
        writeTensor(s._initEmbeddings(), "e", DataType.FLOAT32, [1, 2], f32([7, 8]));
      }),
      MessageType.PARAMETER_SET,
    ).payload;
    expect(set.step).toBe(12n);
    expect(set.dense.length).toBe(2);
    expect(set.dense.get(0).name).toBe("w");
    expect(Array.from(readFloat32(set.dense.get(1), "b").data)).toEqual([3]);
    expect(Array.from(readFloat32(set.embeddings, "e", 2).data)).toEqual([7, 8]);
  });

  it("GradientUpdate and StepAck", () => {
    const u = decodeMessage(
      encodeMessage(MessageType.GRADIENT_UPDATE, "t", (g) => {
        g.workerRank = 2;
        g.step = 4n;
        g.batchSize = 64;
        g.loss = 0.5;
        writeTensor(g._initDense(1).get(0), "w", DataType.FLOAT32, [1], f32([-1]));
        writeTensor(g._initSparseIds(), "ids", DataType.UINT64, [1], new Uint32Array([9, 1]));
        writeTensor(g._initSparseGrads(), "g", DataType.FLOAT32, [1, 2], f32([0.25, -0.25]));
      }),
      MessageType.GRADIENT_UPDATE,
    ).payload;
    expect([u.workerRank, u.step, u.batchSize, u.loss]).toEqual([2, 4n, 64, 0.5]);
    expect(Array.from(readFloat32(u.dense.get(0), "w").data)).toEqual([-1]);
    expect(Array.from(readFloat32(u.sparseGrads, "g", 2).data)).toEqual([0.25, -0.25]);

    const ack = decodeMessage(
      encodeMessage(MessageType.STEP_ACK, "o", (a) => {
        a.step = 5n;
        a.meanLoss = 0.25;
        a.workers = 2;
      }),
      MessageType.STEP_ACK,
    ).payload;
    expect([ack.step, ack.meanLoss, ack.workers]).toEqual([5n, 0.25, 2]);
  });

  it("a size hint changes how the message is allocated, not its bytes (exact, too small, too large)", () => {
    const dense = [new Float32Array(70_000).map((_, i) => i * 0.5), new Float32Array(3).fill(-1)];
    const ids = new Uint32Array(2 * 5_000).map((_, i) => i * 7);
    const grads = new Float32Array(5_000 * 16).map((_, i) => -i);
    const encode = (hint: number) => {
      const bytes = encodeMessage(MessageType.GRADIENT_UPDATE, "t", (g) => {
        g.step = 3n;
        const list = g._initDense(dense.length);
        dense.forEach((d, i) => writeTensor(list.get(i), `w${i}`, DataType.FLOAT32, [d.length], d));
        writeTensor(g._initSparseIds(), "ids", DataType.UINT64, [ids.length / 2], ids);
        writeTensor(g._initSparseGrads(), "g", DataType.FLOAT32, [5_000, 16], grads);
      }, hint);
      // The envelope's send time is the only field that may differ between two encodings.
      const { payload, sentAtMicros } = decodeMessage(bytes, MessageType.GRADIENT_UPDATE);
      expect(readFloat32(payload.dense.get(0), "w0").data).toEqual(dense[0]);
      expect(readIdWords(payload.sparseIds, "ids").words).toEqual(ids);
      expect(readFloat32(payload.sparseGrads, "g", 2).data).toEqual(grads);
      const copy = Buffer.from(bytes);
      const root = copy.indexOf(Buffer.from(new BigUint64Array([sentAtMicros]).buffer));
      copy.fill(0, root, root + 8);
      return copy;
    };
    const plain = encode(0);
    expect(plain.byteLength).toBeGreaterThan(sizeHint(...dense, ids, grads) - 2048);
    expect(encode(sizeHint(...dense, ids, grads)).equals(plain)).toBe(true);
    expect(encode(10_000).equals(plain)).toBe(true);
    expect(encode(64 * 1024 * 1024).equals(plain)).toBe(true);
  });

  it("property: random float32 tensors and id lists survive a round trip", () => {
    fc.assert(
      fc.property(
        fc.array(fc.float({ noNaN: true }), { maxLength: 200 }),
        fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 50 }),
        (values, idPairs) => {
          const words = Uint32Array.from(idPairs.flat());
          const bytes = encodeMessage(MessageType.GRADIENT_UPDATE, "p", (g) => {
            writeTensor(g._initSparseIds(), "ids", DataType.UINT64, [idPairs.length], words);
            writeTensor(g._initSparseGrads(), "g", DataType.FLOAT32, [values.length, 1], Float32Array.from(values));
          });
          const { payload } = decodeMessage(bytes, MessageType.GRADIENT_UPDATE);
          expect(Array.from(readIdWords(payload.sparseIds, "ids").words)).toEqual(Array.from(words));
          expect(Array.from(readFloat32(payload.sparseGrads, "g").data)).toEqual(Array.from(Float32Array.from(values)));
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe("malformed messages", () => {
  const valid = encodeMessage(MessageType.STEP_ACK, "o", (a) => {
    a.step = 1n;
  });

  it("refuses a message of another type, naming both", () => {
    expect(() => decodeMessage(valid, MessageType.TRAINING_BATCH, "peer x")).toThrow(
      "peer x: expected a TRAINING_BATCH message, got type STEP_ACK with a STEP_ACK payload",
    );
  });

  it("refuses bytes that are not a whole number of words", () => {
    const err = (() => {
      try {
        decodeMessage(Buffer.from([1, 2, 3]), MessageType.STEP_ACK, "peer y");
      } catch (e) {
        return e;
      }
    })();
    expect(SchemaErrors.is(err, "SCHEMA_ERR_BAD_MESSAGE")).toBe(true);
    expect((err as Error).message).toMatch(/peer y: 3-byte payload is not a Cap'n Proto message/);
  });

  it("refuses a header that claims more segments or bytes than there are", () => {
    const lying = Buffer.from(valid);
    lying.writeUInt32LE(0xffff, 0);
    expect(() => decodeMessage(lying, MessageType.STEP_ACK, "p")).toThrow(/header claims 65536 segments/);
    const short = Buffer.from(valid);
    short.writeUInt32LE(1000, 4);
    expect(() => decodeMessage(short, MessageType.STEP_ACK, "p")).toThrow(/header declares \d+ bytes, the message has/);
  });

  it("a message inside a larger pooled buffer decodes (no stray bytes read)", () => {
    const pool = Buffer.alloc(valid.length + 24, 0xfe);
    valid.copy(pool, 16);
    const view = pool.subarray(16, 16 + valid.length);
    expect(decodeMessage(view, MessageType.STEP_ACK).payload.step).toBe(1n);
  });

  it("property: any byte string either decodes or throws SCHEMA_ERR_BAD_MESSAGE, never anything else", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 256 }), (bytes) => {
        try {
          decodeMessage(bytes, MessageType.TRAINING_BATCH);
        } catch (err) {
          expect(SchemaErrors.is(err, "SCHEMA_ERR_BAD_MESSAGE")).toBe(true);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it.each([
    ["GradientUpdate", MessageType.GRADIENT_UPDATE],
    ["ParameterRequest", MessageType.PARAMETER_REQUEST],
  ] as const)("every single-byte corruption of a %s with every field set decodes to fields a handler can read, or fails with a SchemaError (a text field's pointer made a list's was capnp-es's error, INTERNAL)", (_name, type) => {
    const valid =
      type === MessageType.GRADIENT_UPDATE
        ? encodeMessage(MessageType.GRADIENT_UPDATE, "trainer-0", (g) => {
            g.step = 3n;
            writeTensor(g._initDense(1).get(0), "w", DataType.FLOAT32, [2], f32([1, -1]));
            writeTensor(g._initSparseIds(), "ids", DataType.UINT64, [1], new Uint32Array([9, 1]));
            writeTensor(g._initSparseGrads(), "g", DataType.FLOAT32, [1, 2], f32([0.25, -0.25]));
            g._initTaskLosses(2).set(1, 0.5);
            g._initTaskStreamingAuc(2).set(0, 0.75);
            g.denseFile = "grad-0";
            g.workerToken = "token-abc";
            g.batchTicket = "ticket-xyz";
          })
        : encodeMessage(MessageType.PARAMETER_REQUEST, "trainer-0", (r) => {
            writeTensor(r._initIds(), "ids", DataType.UINT64, [1], new Uint32Array([9, 1]));
            r._initAheadBatches(2).set(1, 7n);
            r._initWorkingOn(1).set(0, 6n);
            r.workerToken = "token-abc";
            r.batchTicket = "ticket-xyz";
            r.batchIdsSeal = "seal";
          });
    for (let at = 0; at < valid.length; at++) {
      for (let value = 0; value < 256; value += 3) {
        const bad = Buffer.from(valid);
        bad[at] = value;
        try {
          const { payload, sender } = decodeMessage(bad, type);
          // Every field, as the parameter server's handlers read them.
          const fields: unknown[] = [sender];
          if (type === MessageType.GRADIENT_UPDATE) {
            const g = payload as ReturnType<typeof decodeMessage<MessageType.GRADIENT_UPDATE>>["payload"];
            for (let i = 0; i < g.dense.length; i++) fields.push(readFloat32(g.dense.get(i), "dense"));
            if (g._hasSparseGrads()) fields.push(readFloat32(g.sparseGrads, "g"));
            fields.push(readIdWords(g.sparseIds, "ids"), g.taskLosses.length, g.taskStreamingAuc.length, g.denseFile, g.workerToken, g.batchTicket);
          } else {
            const r = payload as ReturnType<typeof decodeMessage<MessageType.PARAMETER_REQUEST>>["payload"];
            fields.push(readIdWords(r.ids, "ids"), r.aheadBatches.length, r.workingOn.length, r.workerToken, r.batchTicket, r.batchIdsSeal);
          }
        } catch (err) {
          if (!SchemaErrors.is(err)) throw new Error(`byte ${at} = ${value}: ${(err as Error).message}`);
        }
      }
    }
  });

  it("a push without its sparse ids is named by the dtype expected, not a byte count of float32", () => {
    const { payload } = decodeMessage(encodeMessage(MessageType.GRADIENT_UPDATE, "t", (g) => void (g.step = 1n)), MessageType.GRADIENT_UPDATE);
    expect(() => readIdWords(payload.sparseIds, "push: sparse ids")).toThrow("push: sparse ids: expected dtype uint64, got float32");
  });

  it("every single-byte corruption of a valid batch either reads or fails with a SchemaError", () => {
    const batch = encodeMessage(MessageType.TRAINING_BATCH, "c", (b) => {
      b._initSlotIds(2);
      writeTensor(b._initDense(), "dense", DataType.FLOAT32, [2, 2], f32([1, 2, 3, 4]));
      writeTensor(b._initLabels(), "labels", DataType.FLOAT32, [2], f32([0, 1]));
    });
    // Exhaustive (every byte, every value) rather than sampled: a sampled run once missed a
    // corruption that left stale struct handles behind.
    for (let at = 0; at < batch.length; at++) {
      for (let value = 0; value < 256; value++) {
        const bad = Buffer.from(batch);
        bad[at] = value;
        try {
          const { payload } = decodeMessage(bad, MessageType.TRAINING_BATCH);
          readFloat32(payload.dense, "dense");
          readFloat32(payload.labels, "labels");
          void payload.slotIds.length;
        } catch (err) {
          if (!SchemaErrors.is(err)) throw new Error(`byte ${at} = ${value}: ${(err as Error).message}`);
        }
      }
    }
  });
});
