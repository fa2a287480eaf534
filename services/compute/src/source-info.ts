import { featureInputsOf } from "@pangea/features";
import type { SourceInfo } from "@pangea/schema";
import type { SourceDescription } from "./sources/source.js";

/** What compute tells the orchestrator about its data when it registers. */

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
    groundTruthTaskAuc: d.taskGroundTruth?.map((g) => g.auc) ?? [],
    groundTruthTaskLogloss: d.taskGroundTruth?.map((g) => g.logloss) ?? [],
    slotDims: d.slotDims ?? [],
    slotPooling: d.slotPooling ?? [],
    tasks: d.tasks ?? [],
    hasGroupSlot: d.groupSlot !== undefined && d.groupSlot !== null,
    groupSlot: d.groupSlot ?? 0,
    skippedRecords: d.skippedRecords ?? 0,
    skippedStretches: d.skippedStretches ?? 0,
    skippedStretchBytes: d.skippedBytes ?? 0,
    skippedSummary: d.skippedSummary ?? "",
    featureInputs: d.featureList ? JSON.stringify(featureInputsOf(d.featureList)) : "",
    dataWarnings: d.dataWarnings ?? [],
    contentSample: d.contentSample ?? "",
  };
}
