import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@pangea/kit";
import { newRegistry } from "@pangea/observe";
import { PARAMETER_SYNC_SERVICE_NAME, startServer, type RunningServer } from "@pangea/rpc";
import { modelIdentity } from "@pangea/model";
import { ModelManager } from "../src/model/model-manager.js";
import { addParameterSync } from "../src/api/parameter-sync.js";
import { MicroBatcher } from "../src/batching/micro-batcher.js";
import { registerServingMetrics } from "../src/monitor/serving-metrics.js";
import { SPEC, idWords, writeVersion } from "./support/versions.js";
import { encodeSyncUpdate, pushSync } from "./support/sync.js";

/**
 * pangea_serving_sync_rows_total keeps rising across a version load: it had counted the served version's rows alone,
 * and stood still after a newer version loaded until that one's count passed the older one's (a script watching it
 * for freshness saw a stall that was not there).
 */
const log = createLogger("serving-test", "silent");
const base = mkdtempSync(join(tmpdir(), "pangea-sync-metric-"));
const models = new ModelManager("ctr", base, 2, log);
const registry = newRegistry("serving");
let server: RunningServer;

beforeAll(async () => {
  writeVersion(base, 1);
  models.scan();
  registerServingMetrics(registry, models, new MicroBatcher(0, 64));
  server = await startServer("127.0.0.1", 0, (s) => addParameterSync(s, models, new MicroBatcher(0, 64), log), [PARAMETER_SYNC_SERVICE_NAME]);
});
afterAll(() => server.shutdown(100));

const D = SPEC.embeddingDim;
const push = (seq: number, ids: number[]) =>
  pushSync(server.address, encodeSyncUpdate({ sender: "orchestrator", run: "run-a", model: modelIdentity(SPEC), seq, ids: Uint32Array.from(ids.flatMap((id) => idWords(id))), rows: new Float32Array(D * ids.length).fill(0.5), rowsShape: [ids.length, D] }));
const rowsTotal = async () => Number(/^pangea_serving_sync_rows_total(?:\{[^}]*\})? (\S+)$/m.exec(await registry.metrics())?.[1]);

describe("pangea_serving_sync_rows_total", () => {
  it("counts the rows applied to every version served, on across a newer version's load", async () => {
    expect(await push(1, [10, 11, 12, 13, 14])).toMatchObject({ modelVersion: 1n, rowsApplied: 5n });
    expect(await rowsTotal()).toBe(5);
    writeVersion(base, 2);
    models.scan();
    expect(models.current()!.version).toBe(2);
    expect(await push(2, [10, 11])).toMatchObject({ modelVersion: 2n, rowsApplied: 2n });
    expect(await rowsTotal()).toBe(7);
    expect(await push(3, [12])).toMatchObject({ modelVersion: 2n, rowsApplied: 1n });
    expect(await rowsTotal()).toBe(8);
  });
});
