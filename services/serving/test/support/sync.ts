import { parameterSyncClient, unary } from "@pangea/rpc";
import { DataType, MessageType, decodeMessage, encodeMessage, writeTensor } from "@pangea/schema";

/** A ParameterSync update as a parameter server sends it: ids as (lo, hi) words, their rows, tombstones and dense tensors. */
export interface SyncUpdate {
  seq: number;
  ids?: Uint32Array;
  rows?: Float32Array;
  /** The rows tensor's shape; [rows.length] when absent. */
  rowsShape?: number[];
  tombstones?: Uint32Array;
  dense?: { name: string; shape: number[]; data: Float32Array }[];
  /** The sender run (empty: an older sender's update, sequences per sender name). */
  run?: string;
  /** modelIdentity() of the sender's model (empty: an older sender's, not checked). */
  model?: string;
  sender?: string;
}

export function encodeSyncUpdate(u: SyncUpdate): Buffer {
  const ids = u.ids ?? new Uint32Array(0);
  const rows = u.rows ?? new Float32Array(0);
  const tombstones = u.tombstones ?? new Uint32Array(0);
  return encodeMessage(MessageType.PARAMETER_SYNC_UPDATE, u.sender ?? "orchestrator-test", (m) => {
    m.sequence = BigInt(u.seq);
    m.run = u.run ?? "";
    m.model = u.model ?? "";
    m.step = 1n;
    writeTensor(m._initIds(), "ids", DataType.UINT64, [ids.length / 2], ids);
    writeTensor(m._initRows(), "rows", DataType.FLOAT32, u.rowsShape ?? [rows.length], rows);
    writeTensor(m._initTombstones(), "tombstones", DataType.UINT64, [tombstones.length / 2], tombstones);
    const dense = u.dense ?? [];
    const list = m._initDense(dense.length);
    dense.forEach((d, i) => writeTensor(list.get(i), d.name, DataType.FLOAT32, d.shape, d.data));
  });
}

/** Pushes an encoded update to serving at `address` and returns its acknowledgement (rejects with the gRPC error). */
export function pushSync(address: string, bytes: Buffer) {
  const c = parameterSyncClient(address);
  return unary<Buffer, Buffer>("serving", c.push.bind(c), bytes, 5_000)
    .then((b) => decodeMessage(b, MessageType.PARAMETER_SYNC_ACK).payload)
    .finally(() => c.close());
}
