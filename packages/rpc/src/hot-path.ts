import * as grpc from "@grpc/grpc-js";
import { CHANNEL_OPTIONS } from "./server.js";
import { channelCredentials, type TransportSecurity } from "./security/transport-security.js";

/**
 * The hot-path gRPC services. Their payloads are serialized Cap'n Proto
 * `Message`s (schemas/pangea.capnp), passed through as raw bytes: handlers and
 * clients encode with encodeMessage and decode with decodeMessage, which
 * checks the message type, so a malformed payload becomes INVALID_ARGUMENT
 * naming the peer rather than a transport error.
 */
const raw = {
  requestSerialize: (b: Buffer) => b,
  requestDeserialize: (b: Buffer) => b,
  responseSerialize: (b: Buffer) => b,
  responseDeserialize: (b: Buffer) => b,
};

export const BatchStreamService = {
  /** BatchRequest then BatchAcks -> stream of TrainingBatch, flow-controlled by the acks' credit. */
  streamBatches: { path: "/pangea.v1.BatchStream/StreamBatches", requestStream: true, responseStream: true, ...raw },
} satisfies grpc.ServiceDefinition;

export const ParameterServerService = {
  /** ParameterRequest -> ParameterSet. */
  pull: { path: "/pangea.v1.ParameterServer/Pull", requestStream: false, responseStream: false, ...raw },
  /**
   * GradientUpdate -> StepAck, answered on arrival: sync mode applies a step when its last batch
   * arrives (trainers learn of the next step from GetWork); async applies each push at once.
   */
  push: { path: "/pangea.v1.ParameterServer/Push", requestStream: false, responseStream: false, ...raw },
  /** EmbeddingAssign -> TableStats (changed = rows set). */
  assign: { path: "/pangea.v1.ParameterServer/Assign", requestStream: false, responseStream: false, ...raw },
  /** EmbeddingEvict -> TableStats (changed = rows removed). */
  evict: { path: "/pangea.v1.ParameterServer/Evict", requestStream: false, responseStream: false, ...raw },
  /** TableStatsRequest -> TableStats. */
  tableStats: { path: "/pangea.v1.ParameterServer/TableStats", requestStream: false, responseStream: false, ...raw },
} satisfies grpc.ServiceDefinition;

export const ParameterSyncService = {
  /** ParameterSyncUpdate -> ParameterSyncAck: rows, tombstones and dense weights pushed from training to serving. */
  push: { path: "/pangea.v1.ParameterSync/Push", requestStream: false, responseStream: false, ...raw },
} satisfies grpc.ServiceDefinition;

export const PARAMETER_SYNC_SERVICE_NAME = "pangea.v1.ParameterSync";

export interface ParameterSyncClient extends grpc.Client {
  push(request: Buffer, meta: grpc.Metadata, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): grpc.ClientUnaryCall;
}

const ParameterSyncCtor = grpc.makeGenericClientConstructor(ParameterSyncService, "ParameterSync");

/**
 * Reconnection attempts to a serving replica that went away are at most this far apart: gRPC's default backoff grows
 * to 120 s, and a replica restarted after 10 s down waited up to 8.8 s for its first push, serving stale rows meanwhile.
 */
export const SYNC_MAX_RECONNECT_BACKOFF_MS = 2_000;

export function parameterSyncClient(address: string, security?: TransportSecurity | null): ParameterSyncClient {
  return new ParameterSyncCtor(address, channelCredentials(["serving"], security), { ...CHANNEL_OPTIONS, "grpc.max_reconnect_backoff_ms": SYNC_MAX_RECONNECT_BACKOFF_MS }) as unknown as ParameterSyncClient;
}

export const BATCH_STREAM_SERVICE_NAME = "pangea.v1.BatchStream";
export const PARAMETER_SERVER_SERVICE_NAME = "pangea.v1.ParameterServer";

export interface BatchStreamClient extends grpc.Client {
  streamBatches(options?: grpc.CallOptions): grpc.ClientDuplexStream<Buffer, Buffer>;
}

export interface ParameterServerClient extends grpc.Client {
  pull(request: Buffer, meta: grpc.Metadata, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): grpc.ClientUnaryCall;
  push(request: Buffer, meta: grpc.Metadata, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): grpc.ClientUnaryCall;
  assign(request: Buffer, meta: grpc.Metadata, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): grpc.ClientUnaryCall;
  evict(request: Buffer, meta: grpc.Metadata, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): grpc.ClientUnaryCall;
  tableStats(request: Buffer, meta: grpc.Metadata, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): grpc.ClientUnaryCall;
}

const BatchStreamCtor = grpc.makeGenericClientConstructor(BatchStreamService, "BatchStream");
const ParameterServerCtor = grpc.makeGenericClientConstructor(ParameterServerService, "ParameterServer");

export function batchStreamClient(address: string, security?: TransportSecurity | null): BatchStreamClient {
  return new BatchStreamCtor(address, channelCredentials(["compute"], security), CHANNEL_OPTIONS) as unknown as BatchStreamClient;
}

export function parameterServerClient(address: string, security?: TransportSecurity | null): ParameterServerClient {
  return new ParameterServerCtor(address, channelCredentials(["orchestrator", "shard"], security), CHANNEL_OPTIONS) as unknown as ParameterServerClient;
}
