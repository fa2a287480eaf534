/**
 * The V8 heap flags every Pangea service runs with (`pangea run`, `pangea
 * serve`, the images, the benchmarks).
 *
 * A 64 MB young generation: the services allocate megabytes of short-lived
 * buffers per step (parameters, gradients, batches); with V8's default the
 * scavenges cost the cluster 15-20% of its training throughput.
 *
 * A 256 MB initial old-generation limit: V8 starts marking the old generation
 * whenever its headroom below the limit is smaller than the young
 * generation's capacity. With a 64 MB young generation and a small live heap
 * (20-35 MB, limit ~43 MB) that was always true, so the orchestrator ran a
 * full mark-compact every ~130 ms (162 in a 73-step job, 3.3 s of its time)
 * and the 2-trainer cluster trained at 13.3k samples/s; with this flag it ran
 * 8 and the cluster 18-19k samples/s (DLRM Kaggle configuration, same run).
 */
export const SERVICE_V8_FLAGS: readonly string[] = Object.freeze(["--max-semi-space-size=64", "--initial-old-space-size=256"]);
