import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { fileURLToPath } from "node:url";
import type { ProtoGrpcType as OrchestratorProto } from "./gen/proto/orchestrator.js";

/** schemas/proto, found from this file in dist/ or src/. */
export const PROTO_ROOT = fileURLToPath(new URL("../../../schemas/proto", import.meta.url));

// Options must match the flags given to proto-loader-gen-types in scripts/schema-gen.mjs.
const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_ROOT],
};

let cached: OrchestratorProto | undefined;

/** The gRPC service definitions of the control plane, loaded once. */
export function loadProtos(): OrchestratorProto {
  if (!cached) {
    const def = protoLoader.loadSync(["pangea/v1/orchestrator.proto"], LOADER_OPTIONS);
    cached = grpc.loadPackageDefinition(def) as unknown as OrchestratorProto;
  }
  return cached;
}

/** TensorFlow Serving's services, as their clients see them: snake_case fields, int64 as decimal strings, bytes as Buffers. */
export interface TfServingProtos {
  PredictionService: grpc.ServiceClientConstructor;
  ModelService: grpc.ServiceClientConstructor;
}

let tfServing: TfServingProtos | undefined;

/** TensorFlow Serving's PredictionService and ModelService (schemas/proto/tensorflow_serving), loaded once. */
export function loadTfServingProtos(): TfServingProtos {
  if (!tfServing) {
    const def = protoLoader.loadSync(["tensorflow_serving/apis/prediction_service.proto", "tensorflow_serving/apis/model_service.proto"], {
      keepCase: true,
      longs: String,
      enums: String,
      bytes: Buffer,
      defaults: false,
      oneofs: true,
      includeDirs: [PROTO_ROOT],
    });
    tfServing = (grpc.loadPackageDefinition(def) as unknown as { tensorflow: { serving: TfServingProtos } }).tensorflow.serving;
  }
  return tfServing;
}
