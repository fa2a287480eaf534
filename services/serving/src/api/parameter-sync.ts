import type * as grpc from "@grpc/grpc-js";
import type { Logger } from "@pangea/kit";
import { ParameterSyncService, toServiceError } from "@pangea/rpc";
import { MessageType, decodeMessage, encodeMessage, readFloat32, readIdWords } from "@pangea/schema";
import { denseParams } from "@pangea/model";
import { ServingErrors } from "../errors.js";
import type { ModelManager } from "../model/model-manager.js";

/**
 * Serving's side of ParameterSync: training pushes the rows it changed, the
 * ids it evicted and now and then the dense weights; they are applied to the
 * version being served, between requests, so serving never pauses. Updates
 * from one sender arrive in order (sequence); an older one is ignored.
 */
export function addParameterSync(server: grpc.Server, models: ModelManager, log: Logger): void {
  const lastSequence = new Map<string, bigint>();
  server.addService(ParameterSyncService, {
    push: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      try {
        const { payload: u, sender } = decodeMessage(call.request, MessageType.PARAMETER_SYNC_UPDATE, `parameter sync from ${call.getPeer()}`);
        const servable = models.current();
        if (!servable) throw ServingErrors.create("SERVING_ERR_NOT_READY", `no model version loaded to apply parameter sync from ${sender} to`);
        const seq = u.sequence;
        const prev = lastSequence.get(sender);
        let applied = 0;
        let removed = 0;
        let denseApplied = false;
        if (prev === undefined || seq > prev) {
          lastSequence.set(sender, seq);
          const D = servable.spec.embeddingDim;
          const { words, count } = readIdWords(u.ids, `parameter sync from ${sender}: ids`);
          const rows = readFloat32(u.rows, `parameter sync from ${sender}: rows`, 2);
          if (rows.shape[0] !== count || (count > 0 && rows.shape[1] !== D)) {
            throw ServingErrors.create("SERVING_ERR_BAD_INPUT", `parameter sync from ${sender}: rows [${rows.shape.join(", ")}] do not match ${count} ids of dim ${D}`);
          }
          const dense = u.dense;
          const params = denseParams(servable.spec);
          const values: Float32Array[] = [];
          if (dense.length > 0) {
            if (dense.length !== params.length) throw ServingErrors.create("SERVING_ERR_BAD_INPUT", `parameter sync from ${sender}: ${dense.length} dense tensors, the model has ${params.length}`);
            for (let i = 0; i < dense.length; i++) {
              const t = readFloat32(dense.get(i), `parameter sync from ${sender}: ${params[i]!.name}`);
              if (t.data.length !== params[i]!.shape.reduce((a, b) => a * b, 1)) throw ServingErrors.create("SERVING_ERR_BAD_INPUT", `parameter sync from ${sender}: ${params[i]!.name} has ${t.data.length} values`);
              values.push(t.data.slice());
            }
          }
          for (let i = 0; i < count; i++) {
            const lo = words[2 * i]!;
            const hi = words[2 * i + 1]!;
            const table = servable.tables.get((hi >>> 16) & 0x7fff);
            if (!table) continue;
            table.set(lo, hi, rows.data, i * D);
            applied++;
          }
          const tomb = readIdWords(u.tombstones, `parameter sync from ${sender}: tombstones`);
          for (let i = 0; i < tomb.count; i++) {
            const lo = tomb.words[2 * i]!;
            const hi = tomb.words[2 * i + 1]!;
            if (servable.tables.get((hi >>> 16) & 0x7fff)?.remove(lo, hi)) removed++;
          }
          if (values.length) {
            servable.setDense(values);
            denseApplied = true;
          }
          servable.synced.rows += applied;
          servable.synced.tombstones += removed;
          if (denseApplied) servable.synced.dense++;
          servable.synced.lastAt = Date.now();
          log.debug({ sender, sequence: Number(seq), step: Number(u.step), rows: applied, removed, dense: denseApplied, version: servable.version }, "parameter sync applied");
        }
        cb(null, encodeMessage(MessageType.PARAMETER_SYNC_ACK, "serving", (a) => {
          a.modelVersion = BigInt(servable.version);
          a.rowsApplied = BigInt(applied);
          a.rowsRemoved = BigInt(removed);
          a.denseApplied = denseApplied;
        }));
      } catch (err) {
        cb(toServiceError(err));
      }
    },
  });
}
