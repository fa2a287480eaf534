import { valueSnippet } from "@pangea/kit";
import * as grpc from "@grpc/grpc-js";
import { toServiceError } from "@pangea/rpc";
import { loadTfServingProtos } from "@pangea/schema";
import { taskColumn } from "@pangea/model";
import { ServingErrors } from "../errors.js";
import type { MicroBatcher } from "../batching/micro-batcher.js";
import type { ModelManager, VersionState } from "../model/model-manager.js";
import { examplesFrom, floatTensor } from "./tensors.js";
import { METADATA_SIGNATURE_DEF, selectOutputs, signatureOf } from "./outputs.js";
import { decodePredictRequest, predictValueLimit, type ModelSpecMsg } from "./predict-request.js";
import { sourceFields } from "./version-source.js";

export const PREDICTION_SERVICE = "tensorflow.serving.PredictionService";
export const MODEL_SERVICE = "tensorflow.serving.ModelService";

type Def = { service: grpc.ServiceDefinition };

/** TensorFlow Serving's service definitions, from schemas/proto/tensorflow_serving. */
export function tfServingServices(): { prediction: Def; model: Def } {
  const p = loadTfServingProtos();
  return { prediction: p.PredictionService, model: p.ModelService };
}

const STATE: Record<VersionState, string> = { LOADING: "LOADING", AVAILABLE: "AVAILABLE", END: "END" };

function versionOf(spec: ModelSpecMsg | undefined): number | undefined {
  if (spec?.version_label) throw ServingErrors.create("SERVING_ERR_BAD_INPUT", `version labels ("${spec.version_label}") are not supported; give a version number or none`);
  // A version wrapper without a value is version 0 (proto3 leaves a zero out): TF Serving looks it up and finds none,
  // as REST's /versions/0 does; no wrapper is the newest.
  if (!spec?.version) return undefined;
  const v = spec.version.value ?? 0;
  const n = Number(v);
  if (n === 0) return 0;
  if (!Number.isSafeInteger(n) || n < 1) throw ServingErrors.create("SERVING_ERR_BAD_INPUT", `model version ${v} is not a version number: expected a whole number from 1 to 2^53 - 1`);
  return n;
}

const SIGNATURE_DEF_MAP = "type.googleapis.com/tensorflow.serving.SignatureDefMap";

/**
 * The largest Predict request decoded: MAX_IDS_PER_REQUEST ids as varints
 * take at most 10 MiB, and each example may bring 4 KiB of dense and raw
 * values. The server's receive limit (MAX_MESSAGE_BYTES) is one for every
 * method, parameter sync's large updates included; a Predict above this is
 * refused before decoding, as decoding 100 MB of ids took 2.6 GB.
 */
export function predictRequestLimit(maxBatch: number): number {
  return 16 * 1024 * 1024 + maxBatch * 4096;
}

/**
 * What grpc-js hands the Predict handler: the message's bytes, not yet decoded
 * (the handler decodes them once they fit the in-flight budget, so a refused
 * request, or one refused by the call policy first, is never decoded), or
 * only the size of one too large to decode.
 */
type PredictWire = { [ENCODED]: Buffer } | { [OVERSIZE]: number };
const ENCODED = Symbol("encoded");
const OVERSIZE = Symbol("oversize");

/** PredictionService/Predict and GetModelMetadata and ModelService/GetModelStatus at TensorFlow Serving's method paths. */
export function addTfServing(server: grpc.Server, models: ModelManager, batcher: MicroBatcher, maxBatch: number): void {
  const { prediction, model } = tfServingServices();
  const limit = predictRequestLimit(maxBatch);
  const maxValues = predictValueLimit(maxBatch);
  const predict = prediction.service.Predict!;
  const service = { ...prediction.service, Predict: { ...predict, requestDeserialize: (b: Buffer): PredictWire => (b.length > limit ? { [OVERSIZE]: b.length } : { [ENCODED]: b }) } };
  server.addService(service, {
    Predict: (call: grpc.ServerUnaryCall<PredictWire, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      let release = () => {};
      void (async () => {
        const wire = call.request;
        if (OVERSIZE in wire) {
          throw ServingErrors.create("SERVING_ERR_TOO_LARGE", `request is ${wire[OVERSIZE].toLocaleString("en-US")} bytes; a Predict takes at most ${limit.toLocaleString("en-US")} (16 MiB + 4 KiB per --max-batch example)`);
        }
        release = batcher.inflight.take(wire[ENCODED].length);
        // Decoded in the handler: grpc-js would answer a deserializer's throw with INTERNAL and no reason.
        const req = decodePredictRequest(wire[ENCODED], maxValues);
        if (!req.model_spec?.name) throw ServingErrors.create("SERVING_ERR_BAD_INPUT", "model_spec.name is required");
        if (req.model_spec.signature_name && req.model_spec.signature_name !== "serving_default") {
          throw ServingErrors.create("SERVING_ERR_BAD_INPUT", `unknown signature "${req.model_spec.signature_name}"; the model has serving_default`);
        }
        const servable = models.get(req.model_spec.name, versionOf(req.model_spec));
        const outputs = selectOutputs(servable.tasks, req.output_filter);
        const x = examplesFrom(req.inputs, servable.spec, maxBatch, servable.featureList, servable.rawLayout);
        const p = await batcher.predict(servable, x, () => call.cancelled);
        const T = servable.tasks.length;
        return {
          model_spec: { name: models.name, version: { value: String(servable.version) }, signature_name: "serving_default" },
          outputs: Object.fromEntries(outputs.map((o) => [o.name, floatTensor(taskColumn(p, T, o.column))])),
        };
      })().then(
        (res) => {
          cb(null, res);
          release();
        },
        (err) => {
          cb(toServiceError(err));
          release();
        },
      );
    },
    GetModelMetadata: (call: grpc.ServerUnaryCall<{ model_spec?: ModelSpecMsg; metadata_field?: string[] }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      try {
        const req = call.request;
        if (!req.model_spec?.name) throw ServingErrors.create("SERVING_ERR_BAD_INPUT", "model_spec.name is required");
        const fields = req.metadata_field ?? [];
        if (fields.length === 0) throw ServingErrors.create("SERVING_ERR_BAD_INPUT", `metadata_field is empty; ask for "${METADATA_SIGNATURE_DEF}"`);
        const other = fields.find((f) => f !== METADATA_SIGNATURE_DEF);
        if (other !== undefined) throw ServingErrors.create("SERVING_ERR_BAD_INPUT", `metadata field ${valueSnippet(other)} is not supported; the one there is is "${METADATA_SIGNATURE_DEF}"`);
        const servable = models.get(req.model_spec.name, versionOf(req.model_spec));
        cb(null, {
          model_spec: { name: models.name, version: { value: String(servable.version) } },
          // proto-loader packs an object with "@type" into the Any, encoded as that message.
          metadata: { [METADATA_SIGNATURE_DEF]: { "@type": SIGNATURE_DEF_MAP, signature_def: { serving_default: signatureOf(servable.spec) } } },
        });
      } catch (err) {
        cb(toServiceError(err));
      }
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
            pangea_tasks: v.tasks ?? [],
            ...(v.source ? { pangea_source: sourceFields(v.source) } : {}),
          })),
        });
      } catch (err) {
        cb(toServiceError(err));
      }
    },
  });
}
