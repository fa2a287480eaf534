import { CounterFrom, Gauge, type Registry } from "@pangea/observe";
import type { BatchStreamHandler, BatchSource } from "../server/batch-stream.js";

/** Compute's Prometheus metrics: batches and records served, records skipped, Kafka consumer lag. */
export function registerComputeMetrics(registry: Registry, batches: BatchStreamHandler, source: BatchSource): void {
  // Registered first: prom-client reads metrics in registration order, so this refresh runs before the others are read.
  new Gauge({
    name: "pangea_compute_up",
    help: "1 while compute serves; its collect refreshes compute's other metrics.",
    registers: [registry],
    collect() {
      this.set(1);
      served.update(batches.batchesServed);
      streamBytes.set(batches.budget.bytesHeld);
      streams.set(batches.budget.openStreams);
      records.update(batches.recordsServed);
      if ("streaming" in source) {
        skipped.update(source.stats().skipped);
        for (const [p, n] of source.lag()) lag.set({ partition: String(p) }, n);
      } else {
        skipped.update(source.info.skippedRecords ?? 0);
        stretches.update(source.info.skippedStretches ?? 0);
        skippedBytes.update(source.info.skippedBytes ?? 0);
      }
    },
  });
  const served = new CounterFrom(registry, "pangea_compute_batches_served_total", "Batches sent to trainers.");
  const records = new CounterFrom(registry, "pangea_compute_records_served_total", "Records sent to trainers.");
  const skipped = new CounterFrom(registry, "pangea_compute_records_skipped_total", "Bad records (read whole, refused) skipped (--on-bad-record=skip).");
  const stretches = new CounterFrom(registry, "pangea_compute_stretches_skipped_total", "Damaged stretches of file skipped (--on-bad-record=skip): bytes a framing or decompressor could not read; the records in them are not counted.");
  const skippedBytes = new CounterFrom(registry, "pangea_compute_bytes_skipped_total", "Bytes in the damaged stretches skipped (--on-bad-record=skip).");
  const streamBytes = new Gauge({ name: "pangea_compute_stream_bytes_unacked", help: "Bytes of encoded batches sent on batch streams and not yet acknowledged (bounded by --max-stream-mb plus one batch per stream).", registers: [registry] });
  const streams = new Gauge({ name: "pangea_compute_batch_streams", help: "Batch streams open (at most --max-batch-streams).", registers: [registry] });
  const lag = new Gauge({ name: "pangea_kafka_consumer_lag_records", help: "Kafka source: records behind each partition's newest offset.", labelNames: ["partition"], registers: [registry] });
}
