import { Counter, CounterFrom, Gauge, type Registry } from "@pangea/observe";
import type { MicroBatcher } from "../batching/micro-batcher.js";
import type { ModelManager } from "../model/model-manager.js";

/** Serving's Prometheus metrics (Predict latency is in pangea_grpc_server_handling_seconds): examples, batching, versions, parameter sync. */
export function registerServingMetrics(registry: Registry, models: ModelManager, batcher: MicroBatcher): void {
  // Registered first: prom-client reads metrics in registration order, so this refresh runs before the others are read.
  new Gauge({
    name: "pangea_serving_up",
    help: "1 while serving; its collect refreshes serving's other metrics.",
    registers: [registry],
    collect() {
      this.set(1);
      requests.update(batcher.requests);
      examples.update(batcher.examples);
      passes.update(batcher.batches);
      shed.update(batcher.shed);
      abandoned.update(batcher.abandoned);
      misplaced.update(batcher.misplacedIds);
      queued.set(batcher.queued);
      inflightRefused.update(batcher.inflight.refused);
      inflightBytes.set(batcher.inflight.held);
      syncRefused.update(models.syncRefused);
      syncIgnored.update(models.syncIgnored);
      loaded.reset();
      for (const v of models.loadedVersions()) loaded.set({ model: models.name, version: String(v) }, 1);
      const s = models.current();
      if (s) {
        current.set({ model: models.name }, s.version);
        // Counted per load of a version: a newly loaded one starts from 0, and its rows add on to the earlier ones'.
        const seen = syncedSeen.get(s) ?? 0;
        if (s.synced.rows > seen) synced.inc(s.synced.rows - seen);
        syncedSeen.set(s, s.synced.rows);
        if (s.synced.lastAt) lag.set({ model: models.name }, (Date.now() - s.synced.lastAt) / 1000);
      }
    },
  });
  const requests = new CounterFrom(registry, "pangea_serving_predict_requests_total", "Predict requests (gRPC and REST).");
  const examples = new CounterFrom(registry, "pangea_serving_examples_total", "Examples predicted.");
  const passes = new CounterFrom(registry, "pangea_serving_forward_passes_total", "Forward passes run (concurrent requests share one).");
  const shed = new CounterFrom(registry, "pangea_serving_shed_requests_total", "Predict requests refused at once because --max-queued-requests (or 64 examples for each) were already waiting for a forward pass (RESOURCE_EXHAUSTED, REST 503).");
  const abandoned = new CounterFrom(registry, "pangea_serving_abandoned_requests_total", "Predict requests not computed because their caller gave up (deadline, cancel, closed connection) while they waited for a forward pass.");
  const misplaced = new CounterFrom(registry, "pangea_serving_misplaced_ids_total", "Feature ids no row of their column can match, each read as missing: another slot in their top bits than the column's (a client sending its slots in another order than the model's), or the reserved top bit set (a negative int64).");
  const inflightRefused = new CounterFrom(registry, "pangea_serving_inflight_refused_requests_total", "Predict requests refused at once, before they were decoded, because their bytes would have taken those of the requests in flight past --max-inflight-request-mb (RESOURCE_EXHAUSTED, REST 503).");
  const inflightBytes = new Gauge({ name: "pangea_serving_inflight_request_bytes", help: "Bytes of the Predict requests received and not yet answered (gRPC messages and REST bodies as received).", registers: [registry] });
  const queued = new Gauge({ name: "pangea_serving_queued_requests", help: "Predict requests waiting for a forward pass.", registers: [registry] });
  const synced = new Counter({ name: "pangea_serving_sync_rows_total", help: "Embedding rows applied from parameter sync, to whichever version was served (it keeps rising across version loads).", registers: [registry] });
  const syncedSeen = new WeakMap<object, number>();
  const syncRefused = new CounterFrom(registry, "pangea_serving_sync_refused_total", "Parameter sync updates refused as non-finite, mis-shaped or from another model (none of such an update is applied).");
  const syncIgnored = new CounterFrom(registry, "pangea_serving_sync_ignored_total", "Parameter sync updates ignored as not newer than one already applied from the same sender run.");
  const loaded = new Gauge({ name: "pangea_serving_model_version_loaded", help: "1 for each loaded model version.", labelNames: ["model", "version"], registers: [registry] });
  const current = new Gauge({ name: "pangea_serving_model_version", help: "The version requests without a version get.", labelNames: ["model"], registers: [registry] });
  const lag = new Gauge({ name: "pangea_serving_sync_lag_seconds", help: "Seconds since the last parameter sync update was applied (absent before the first).", labelNames: ["model"], registers: [registry] });
}
