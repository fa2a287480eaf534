import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { newRegistry } from "@pangea/observe";
import { registerComputeMetrics } from "../src/monitor/compute-metrics.js";
import { CriteoTsvSource } from "../src/sources/criteo-tsv.js";
import type { BatchStreamHandler } from "../src/server/batch-stream.js";
import { StreamBudget } from "../src/server/stream-budget.js";

describe("compute's metrics of skipped data", () => {
  it("count bad records and damaged stretches apart, with the stretches' bytes", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pangea-compute-metrics-"));
    const line = (i: number) => `${i % 2}\t${Array.from({ length: 13 }, (_, k) => i + k).join("\t")}\t${Array.from({ length: 26 }, (_, k) => ((i * 31 + k) % 997).toString(16)).join("\t")}`;
    const good = Array.from({ length: 4000 }, (_, i) => line(i));
    // Two bad records (a label of 2, a field that is no integer), then a gzip member cut short: one damaged stretch.
    good[10] = good[10]!.replace(/^\d/, "2");
    good[20] = good[20]!.replace(/^(\d\t)\d+/, "$1abc");
    const gz = gzipSync(Buffer.from(good.join("\n") + "\n"));
    const path = join(dir, "day.tsv.gz");
    writeFileSync(path, gz.subarray(0, gz.length - 200));
    const src = await CriteoTsvSource.open({ paths: [path], evalFraction: 0, onBadRecord: "skip", cacheDir: join(dir, "cache") });
    const registry = newRegistry("compute");
    registerComputeMetrics(registry, { batchesServed: 0, recordsServed: 0, budget: new StreamBudget(1, 1) } as unknown as BatchStreamHandler, src);
    const text = await registry.metrics();
    const value = (name: string) => Number(new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, "m").exec(text)?.[1]);
    expect(value("pangea_compute_records_skipped_total")).toBe(2);
    expect(value("pangea_compute_stretches_skipped_total")).toBe(1);
    // The 200 bytes cut are gone: the stretch is at the file's end and holds none of its bytes.
    expect(value("pangea_compute_bytes_skipped_total")).toBe(0);
    expect([src.info.skippedRecords, src.info.skippedStretches, src.info.skippedBytes]).toEqual([2, 1, 0]);
    expect(src.info.skippedSummary).toMatch(/^2 bad records skipped, 1 damaged stretch skipped \(the records in it are not counted\), \d+ samples kept: /);
  });
});
