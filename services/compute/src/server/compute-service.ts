import type * as grpc from "@grpc/grpc-js";
import { loadProtos, type ComputeHandlers, type SourceInfo } from "@pangea/schema";
import type { SourceDescription } from "../sources/source.js";

export function toSourceInfo(d: SourceDescription): SourceInfo {
  return {
    description: d.description,
    numDense: d.numDense,
    slotIds: d.slotIds,
    trainRecords: d.trainRecords,
    evalRecords: d.evalRecords,
    hasGroundTruth: d.groundTruth !== undefined,
    groundTruthAuc: d.groundTruth?.auc ?? 0,
    groundTruthLogloss: d.groundTruth?.logloss ?? 0,
    slotDims: d.slotDims ?? [],
    skippedRecords: d.skippedRecords ?? 0,
    skippedSummary: d.skippedSummary ?? "",
  };
}

/** The compute service's control plane (protobuf). */
export class ComputeService {
  constructor(private readonly source: SourceDescription) {}

  addToServer(server: grpc.Server): void {
    const handlers: ComputeHandlers = {
      GetSourceInfo: (_call, cb) => cb(null, toSourceInfo(this.source)),
    };
    server.addService(loadProtos().pangea.v1.Compute.service, handlers);
  }
}
