export {
  DataType,
  Split,
  MessageType,
  Message,
  Tensor,
  TrainingBatch,
  BatchRequest,
  BatchAck,
  EmbeddingAssign,
  EmbeddingEvict,
  TableStatsRequest,
  TableStats,
  ParameterRequest,
  ParameterSet,
  GradientUpdate,
  StepAck,
  ParameterSyncUpdate,
  ParameterSyncAck,
} from "./gen/pangea-capnp.js";
export { SchemaErrors } from "./errors.js";
export { encodeMessage, decodeMessage, messageTypeName, sizeHint } from "./message.js";
export type { PayloadTypes, Decoded } from "./message.js";
export {
  writeTensor,
  viewTensor,
  readFloat32,
  readUint32,
  readIdWords,
  initFloat32Tensor,
  writeFloats,
  bytesPerElement,
  dtypeName,
} from "./tensor.js";
export type { TypedArray, TensorView } from "./tensor.js";
export { loadProtos, loadTfServingProtos, PROTO_ROOT } from "./proto.js";
export type { TfServingProtos } from "./proto.js";
export type { JobSpec, JobSpec__Output } from "./gen/proto/pangea/v1/JobSpec.js";
export type { ModelSpec, ModelSpec__Output } from "./gen/proto/pangea/v1/ModelSpec.js";
export type { SourceInfo, SourceInfo__Output } from "./gen/proto/pangea/v1/SourceInfo.js";
export type { JobStatus, JobStatus__Output } from "./gen/proto/pangea/v1/JobStatus.js";
export type { JobState } from "./gen/proto/pangea/v1/JobState.js";
export type { EvalReport, EvalReport__Output } from "./gen/proto/pangea/v1/EvalReport.js";
export type { BestCheckpoint, BestCheckpoint__Output } from "./gen/proto/pangea/v1/BestCheckpoint.js";
export type { TaskEval, TaskEval__Output } from "./gen/proto/pangea/v1/TaskEval.js";
export type { TaskStatus, TaskStatus__Output } from "./gen/proto/pangea/v1/TaskStatus.js";
export type { WorkerEvent, WorkerEvent__Output } from "./gen/proto/pangea/v1/WorkerEvent.js";
export type { WorkerStatus } from "./gen/proto/pangea/v1/WorkerStatus.js";
export type { RegisterWorkerRequest, RegisterWorkerRequest__Output } from "./gen/proto/pangea/v1/RegisterWorkerRequest.js";
export type { RegisterWorkerResponse, RegisterWorkerResponse__Output } from "./gen/proto/pangea/v1/RegisterWorkerResponse.js";
export type { OrchestratorClient, OrchestratorHandlers } from "./gen/proto/pangea/v1/Orchestrator.js";
export { toHalf, fromHalf, encodeHalf, decodeHalf } from "./float16.js";
export type { Work, Work__Output } from "./gen/proto/pangea/v1/Work.js";
export type { HeartbeatResponse, HeartbeatResponse__Output } from "./gen/proto/pangea/v1/HeartbeatResponse.js";
export type { HeartbeatRequest } from "./gen/proto/pangea/v1/HeartbeatRequest.js";
export type { GetWorkRequest } from "./gen/proto/pangea/v1/GetWorkRequest.js";
export { writeDenseFile, readDenseFile } from "./dense-file.js";
export { predictBodyProblem } from "./predict-body.js";
