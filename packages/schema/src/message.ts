import * as capnp from "capnp-es";
import {
  Message,
  MessageType,
  type BatchAck,
  type EmbeddingAssign,
  type EmbeddingEvict,
  type TableStats,
  type TableStatsRequest,
  type ParameterSyncUpdate,
  type ParameterSyncAck,
  type BatchRequest,
  type GradientUpdate,
  type Message_Payload,
  type ParameterRequest,
  type ParameterSet,
  type StepAck,
  type Tensor,
  type TrainingBatch,
} from "./gen/pangea-capnp.js";
import { SchemaErrors } from "./errors.js";
import { checkPointerBounds } from "./bounds.js";

/** Maps each MessageType to the payload struct it carries. */
export interface PayloadTypes {
  [MessageType.TRAINING_BATCH]: TrainingBatch;
  [MessageType.BATCH_REQUEST]: BatchRequest;
  [MessageType.PARAMETER_REQUEST]: ParameterRequest;
  [MessageType.PARAMETER_SET]: ParameterSet;
  [MessageType.GRADIENT_UPDATE]: GradientUpdate;
  [MessageType.STEP_ACK]: StepAck;
  [MessageType.BATCH_ACK]: BatchAck;
  [MessageType.EMBEDDING_ASSIGN]: EmbeddingAssign;
  [MessageType.EMBEDDING_EVICT]: EmbeddingEvict;
  [MessageType.TABLE_STATS_REQUEST]: TableStatsRequest;
  [MessageType.TABLE_STATS]: TableStats;
  [MessageType.PARAMETER_SYNC_UPDATE]: ParameterSyncUpdate;
  [MessageType.PARAMETER_SYNC_ACK]: ParameterSyncAck;
}

type Kind = keyof PayloadTypes;

const INIT: { [K in Kind]: (p: Message_Payload) => PayloadTypes[K] } = {
  [MessageType.TRAINING_BATCH]: (p) => p._initTrainingBatch(),
  [MessageType.BATCH_REQUEST]: (p) => p._initBatchRequest(),
  [MessageType.PARAMETER_REQUEST]: (p) => p._initParameterRequest(),
  [MessageType.PARAMETER_SET]: (p) => p._initParameterSet(),
  [MessageType.GRADIENT_UPDATE]: (p) => p._initGradientUpdate(),
  [MessageType.STEP_ACK]: (p) => p._initStepAck(),
  [MessageType.BATCH_ACK]: (p) => p._initBatchAck(),
  [MessageType.EMBEDDING_ASSIGN]: (p) => p._initEmbeddingAssign(),
  [MessageType.EMBEDDING_EVICT]: (p) => p._initEmbeddingEvict(),
  [MessageType.TABLE_STATS_REQUEST]: (p) => p._initTableStatsRequest(),
  [MessageType.TABLE_STATS]: (p) => p._initTableStats(),
  [MessageType.PARAMETER_SYNC_UPDATE]: (p) => p._initParameterSyncUpdate(),
  [MessageType.PARAMETER_SYNC_ACK]: (p) => p._initParameterSyncAck(),
};

const GET: { [K in Kind]: (p: Message_Payload) => PayloadTypes[K] } = {
  [MessageType.TRAINING_BATCH]: (p) => p.trainingBatch,
  [MessageType.BATCH_REQUEST]: (p) => p.batchRequest,
  [MessageType.PARAMETER_REQUEST]: (p) => p.parameterRequest,
  [MessageType.PARAMETER_SET]: (p) => p.parameterSet,
  [MessageType.GRADIENT_UPDATE]: (p) => p.gradientUpdate,
  [MessageType.STEP_ACK]: (p) => p.stepAck,
  [MessageType.BATCH_ACK]: (p) => p.batchAck,
  [MessageType.EMBEDDING_ASSIGN]: (p) => p.embeddingAssign,
  [MessageType.EMBEDDING_EVICT]: (p) => p.embeddingEvict,
  [MessageType.TABLE_STATS_REQUEST]: (p) => p.tableStatsRequest,
  [MessageType.TABLE_STATS]: (p) => p.tableStats,
  [MessageType.PARAMETER_SYNC_UPDATE]: (p) => p.parameterSyncUpdate,
  [MessageType.PARAMETER_SYNC_ACK]: (p) => p.parameterSyncAck,
};

/**
 * Follows every pointer of a payload once. capnp-es reads pointers lazily, so
 * without this a corrupt message would throw later, from whichever field a
 * handler happened to read first, with a capnp-es error instead of ours.
 */
function touchTensor(t: Tensor): void {
  void t.name;
  void t.shape.length;
  if (t._hasData()) void t.data.toUint8Array();
}

function touchTensors(list: capnp.List<Tensor>): void {
  for (let i = 0; i < list.length; i++) touchTensor(list.get(i));
}

const TOUCH: { [K in Kind]: (p: PayloadTypes[K]) => void } = {
  [MessageType.TRAINING_BATCH]: (b) => {
    void b.slotIds.length;
    [b.dense, b.labels, b.featureIds, b.cellOffsets].forEach(touchTensor);
    if (b._hasWeights()) touchTensor(b.weights);
    void b.idsSeal;
  },
  [MessageType.BATCH_REQUEST]: (r) => void r.workerToken,
  [MessageType.PARAMETER_REQUEST]: (r) => {
    touchTensor(r.ids);
    void r.aheadBatches.length;
    void r.workingOn.length;
    void [r.workerToken, r.batchTicket, r.batchIdsSeal];
  },
  [MessageType.PARAMETER_SET]: (s) => {
    touchTensors(s.dense);
    touchTensor(s.ids);
    touchTensor(s.embeddings);
    void [s.exchangeDir, s.exchangeNonce, s.denseFile, s.rowsFile];
  },
  [MessageType.GRADIENT_UPDATE]: (g) => {
    touchTensors(g.dense);
    touchTensor(g.sparseIds);
    // Absent when they travel in the dense exchange's file (sparseGradsInFile): reading it would make it present.
    if (g._hasSparseGrads()) touchTensor(g.sparseGrads);
    void g.taskLosses.length;
    void g.taskStreamingAuc.length;
    void [g.denseFile, g.workerToken, g.batchTicket];
  },
  [MessageType.STEP_ACK]: () => {},
  [MessageType.BATCH_ACK]: (a) => void a.want.length,
  [MessageType.EMBEDDING_ASSIGN]: (a) => {
    touchTensor(a.ids);
    touchTensor(a.embeddings);
  },
  [MessageType.EMBEDDING_EVICT]: (e) => touchTensor(e.ids),
  [MessageType.TABLE_STATS_REQUEST]: (r) => void r.slots.length,
  [MessageType.TABLE_STATS]: (t) => void t.slots.length,
  [MessageType.PARAMETER_SYNC_UPDATE]: (u) => {
    touchTensor(u.ids);
    touchTensor(u.rows);
    touchTensor(u.tombstones);
    touchTensors(u.dense);
    void [u.run, u.model];
  },
  [MessageType.PARAMETER_SYNC_ACK]: (a) => void a.loadId,
};

const NAMES = Object.fromEntries(Object.entries(MessageType).map(([k, v]) => [v, k])) as Record<number, string>;

export function messageTypeName(type: number): string {
  return NAMES[type] ?? `unknown(${type})`;
}

/** Bytes a tensor adds to a message beyond its data (struct, name, shape), rounded up. */
const TENSOR_OVERHEAD = 128;

/**
 * A size hint for encodeMessage: the data of the given arrays plus each
 * tensor's overhead plus room for the envelope.
 */
export function sizeHint(...arrays: readonly ({ byteLength: number } | null | undefined)[]): number {
  let bytes = 1024;
  for (const a of arrays) bytes += (a?.byteLength ?? 0) + TENSOR_OVERHEAD;
  return bytes;
}

/**
 * Builds a Message envelope around one payload and returns its standard
 * (unpacked, framed) serialization. `fill` writes the payload in place.
 *
 * `hintBytes` is the expected size of a large message (see sizeHint). capnp-es
 * grows a message's segment by allocating a larger buffer and copying
 * everything written so far, once per large list, so a 4 MB gradient message
 * was copied about 15 times (6 ms to encode, and megabytes of garbage per
 * step); a segment of the right size up front is written once. Underestimates
 * only cost that growth again, never correctness.
 */
export function encodeMessage<K extends Kind>(type: K, sender: string, fill: (payload: PayloadTypes[K]) => void, hintBytes = 0): Buffer {
  const msg = new capnp.Message();
  // What capnp-es does for its first segment (allocate it, reserve the
  // 8-byte root pointer), with room for the whole message.
  if (hintBytes > 4096) msg.allocateSegment(hintBytes + (-hintBytes & 7)).allocate(8);
  const root = msg.initRoot(Message);
  root.type = type;
  root.sender = sender;
  root.sentAtMicros = BigInt(Date.now()) * 1000n;
  fill(INIT[type](root.payload));
  return framed(msg);
}

/**
 * The message's stream serialization. capnp-es's toArrayBuffer frames it
 * into a fresh zero-filled ArrayBuffer; the one segment our encoder writes
 * goes into an uninitialised Buffer instead, every byte of which is then
 * written (the 8-byte header, the segment): the same bytes without
 * clearing megabytes first.
 */
function framed(msg: capnp.Message): Buffer {
  const segments = msg._capnp.segments;
  const only = segments.length === 1 ? segments[0]! : null;
  if (!only || only.byteLength % 8 !== 0) return Buffer.from(msg.toArrayBuffer());
  const out = Buffer.allocUnsafe(8 + only.byteLength);
  out.writeUInt32LE(0, 0);
  out.writeUInt32LE(only.byteLength / 8, 4);
  out.set(new Uint8Array(only.buffer, 0, only.byteLength), 8);
  return out;
}

export interface Decoded<K extends Kind> {
  payload: PayloadTypes[K];
  sender: string;
  sentAtMicros: bigint;
}

/**
 * Decodes a serialized Message and returns its payload, refusing bytes that
 * are not a message of the expected type. The payload reads lazily from the
 * buffer; tensors are viewed, not copied.
 */
export function decodeMessage<K extends Kind>(bytes: Uint8Array, expected: K, peer = "peer"): Decoded<K> {
  if (bytes.byteLength < 8 || bytes.byteLength % 8 !== 0) {
    throw SchemaErrors.create("SCHEMA_ERR_BAD_MESSAGE", `${peer}: ${bytes.byteLength}-byte payload is not a Cap'n Proto message (expected a multiple of 8 bytes, at least 8)`);
  }
  checkFraming(bytes, peer);
  checkPointerBounds(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), peer);
  try {
    const msg = readerOf(bytes);
    // capnp-es charges 8 bytes per pointer it constructs against a fixed 64 MiB;
    // bound it by this message's size instead (decoding and the handlers that
    // read the payload construct a few pointers per struct, never per element).
    msg._capnp.traversalLimit = TRAVERSAL_BYTES_PER_BYTE * bytes.byteLength + TRAVERSAL_FLOOR;
    const root = msg.getRoot(Message);
    void root.sender;
    const type = root.type;
    const which = root.payload.which();
    if (type !== expected || which !== (expected as number)) {
      throw SchemaErrors.create(
        "SCHEMA_ERR_BAD_MESSAGE",
        `${peer}: expected a ${messageTypeName(expected)} message, got type ${messageTypeName(type)} with a ${messageTypeName(which)} payload`,
      );
    }
    // Reading a pointer slot a shorter (older or corrupt) struct lacks makes
    // capnp-es resize the struct, which leaves earlier handles pointing at
    // the old copy: touch once, then take a fresh handle and touch that too.
    TOUCH[expected](GET[expected](root.payload));
    const payload = GET[expected](root.payload);
    TOUCH[expected](payload);
    return { payload, sender: root.sender, sentAtMicros: root.sentAtMicros };
  } catch (err) {
    if (SchemaErrors.is(err)) throw err;
    throw SchemaErrors.create("SCHEMA_ERR_BAD_MESSAGE", `${peer}: malformed Cap'n Proto message: ${(err as Error).message.split("\n")[0]}`);
  }
}

/**
 * A capnp-es reader over the message's segments. capnp-es reads a framed
 * message by copying each segment out of it (ArrayBuffer#slice), after
 * copying a view into a larger buffer (how gRPC hands messages over) into
 * its own: two copies of every message, each a fresh allocation, about 5 ms
 * for a 4 MB gradient push. The one segment our encoder writes is copied
 * once, straight into the buffer the reader keeps; several segments take the
 * general path.
 */
function readerOf(bytes: Uint8Array): capnp.Message {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) === 0) {
    // One segment: an 8-byte header (count - 1, the segment's words), then the segment.
    const segment = (bytes.buffer as ArrayBuffer).slice(bytes.byteOffset + 8, bytes.byteOffset + bytes.byteLength);
    return new capnp.Message(segment, false, true);
  }
  // Passing an ArrayBuffer avoids capnp-es's defensive copy; a view into a
  // larger (pooled) buffer must be copied into its own. (Buffer#slice would
  // return a view, so copy through Uint8Array's.)
  const own =
    bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
      ? (bytes.buffer as ArrayBuffer)
      : (Uint8Array.prototype.slice.call(bytes).buffer as ArrayBuffer);
  return new capnp.Message(own, false);
}

const MAX_SEGMENTS = 512;
const TRAVERSAL_BYTES_PER_BYTE = 32;
const TRAVERSAL_FLOOR = 1 << 16;

/**
 * Checks the stream framing (segment count, then each segment's size in
 * words) against the byte length before capnp-es sees it, so a corrupt or
 * hostile header is refused instead of making the reader allocate for it.
 */
function checkFraming(bytes: Uint8Array, peer: string): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const segments = view.getUint32(0, true) + 1;
  const headerBytes = Math.ceil((4 + 4 * segments) / 8) * 8;
  if (segments > MAX_SEGMENTS || headerBytes > bytes.byteLength) {
    throw SchemaErrors.create("SCHEMA_ERR_BAD_MESSAGE", `${peer}: Cap'n Proto header claims ${segments} segments in a ${bytes.byteLength}-byte message`);
  }
  let words = 0;
  for (let i = 0; i < segments; i++) words += view.getUint32(4 + 4 * i, true);
  if (headerBytes + words * 8 !== bytes.byteLength) {
    throw SchemaErrors.create(
      "SCHEMA_ERR_BAD_MESSAGE",
      `${peer}: Cap'n Proto header declares ${headerBytes + words * 8} bytes, the message has ${bytes.byteLength}`,
    );
  }
}
