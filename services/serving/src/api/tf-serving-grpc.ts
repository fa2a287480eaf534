import * as grpc from "@grpc/grpc-js";
import { toServiceError } from "@pangea/rpc";
import { loadTfServingProtos } from "@pangea/schema";
import { ServingErrors } from "../errors.js";
import type { MicroBatcher } from "../batching/micro-batcher.js";
import type { ModelManager, VersionState } from "../model/model-manager.js";
import { OUTPUT_PROBS, examplesFrom, probabilitiesTensor, type TensorProtoMsg } from "./tensors.js";

export const PREDICTION_SERVICE = "tensorflow.serving.PredictionService";
export const MODEL_SERVICE = "tensorflow.serving.ModelService";

interface ModelSpecMsg {
  name?: string;
  version?: { value?: string | number };
  version_label?: string;
  signature_name?: string;
}

type Def = { service: grpc.ServiceDefinition };

/** TensorFlow Serving's service definitions, from schemas/proto/tensorflow_serving. */
export function tfServingServices(): { prediction: Def; model: Def } {
  const p = loadTfServingProtos();
  return { prediction: p.PredictionService, model: p.ModelService };
}

const STATE: Record<VersionState, string> = { LOADING: "LOADING", AVAILABLE: "AVAILABLE", END: "END" };

function versionOf(spec: ModelSpecMsg | undefined): number | undefined {
  if (spec?.version_label) throw ServingErrors.create("SERVING_ERR_BAD_INPUT", `version labels ("${spec.version_label}") are not supported; give a version number or none`);
  const v = spec?.version?.value;
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw ServingErrors.create("SERVING_ERR_BAD_INPUT", `model version ${v} is not a positive integer`);
  return n;
}

/** PredictionService/Predict and ModelService/GetModelStatus at TensorFlow Serving's method paths. */
export function addTfServing(server: grpc.Server, models: ModelManager, batcher: MicroBatcher, maxBatch: number): void {
  const { prediction, model } = tfServingServices();
  server.addService(prediction.service, {
    Predict: (call: grpc.ServerUnaryCall<{ model_spec?: ModelSpecMsg; inputs?: Record<string, TensorProtoMsg>; output_filter?: string[] }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      void (async () => {
        const req = call.request;
        if (!req.model_spec?.name) throw ServingErrors.create("SERVING_ERR_BAD_INPUT", "model_spec.name is required");
        if (req.model_spec.signature_name && req.model_spec.signature_name !== "serving_default") {
          throw ServingErrors.create("SERVING_ERR_BAD_INPUT", `unknown signature "${req.model_spec.signature_name}"; the model has serving_default`);
        }
        const servable = models.get(req.model_spec.name, versionOf(req.model_spec));
        const unknownOutputs = (req.output_filter ?? []).filter((o) => o !== OUTPUT_PROBS);
        if (unknownOutputs.length) throw ServingErrors.create("SERVING_ERR_BAD_INPUT", `unknown outputs ${unknownOutputs.join(", ")}; the model outputs ${OUTPUT_PROBS}`);
        const x = examplesFrom(req.inputs ?? {}, servable.spec, maxBatch, servable.featureList, servable.rawLayout);
        const p = await batcher.predict(servable, x);
        return {
          model_spec: { name: models.name, version: { value: String(servable.version) }, signature_name: "serving_default" },
          outputs: { [OUTPUT_PROBS]: probabilitiesTensor(p) },
        };
      })().then(
        (res) => cb(null, res),
        (err) => cb(toServiceError(err)),
      );
    },
  });
  server.addService(model.service, {
    GetModelStatus: (call: grpc.ServerUnaryCall<{ model_spec?: ModelSpecMsg }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      try {
        const spec = call.request.model_spec;
        if (!spec?.name) throw ServingErrors.create("SERVING_ERR_BAD_INPUT", "model_spec.name is required");
        const versions = models.versions(spec.name, versionOf(spec));
        cb(null, {
          model_version_status: versions.map((v) => ({
            version: String(v.version),
            state: STATE[v.state],
            // tensorflow.error.Code: 0 OK; 9 FAILED_PRECONDITION for a version that could not be loaded.
            status: { error_code: v.error ? 9 : 0, error_message: v.error },
          })),
        });
      } catch (err) {
        cb(toServiceError(err));
      }
    },
  });
}
