import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@pangea/kit";
import { PARAMETER_SYNC_SERVICE_NAME, startServer, type RunningServer } from "@pangea/rpc";
import { modelIdentity } from "@pangea/model";
import { ModelManager } from "../src/model/model-manager.js";
import { addParameterSync } from "../src/api/parameter-sync.js";
import { MicroBatcher } from "../src/batching/micro-batcher.js";
import { SPEC, idWords, writeVersion } from "./support/versions.js";
import { encodeSyncUpdate, pushSync } from "./support/sync.js";

/**
 * Sequences count per sender run (a real server on port 0): a second job or
 * a restarted orchestrator, under the same sender name and counting from 1
 * again, is applied; within one run a replayed or older update is ignored,
 * and its ack says so (nothing applied, counted in syncIgnored). An older
 * sender, without a run, keeps sequences per sender name.
 */
const log = createLogger("serving-test", "silent");
const base = mkdtempSync(join(tmpdir(), "pangea-sync-runs-"));
const models = new ModelManager("ctr", base, 1, log);
let server: RunningServer;

beforeAll(async () => {
  writeVersion(base, 1);
  models.scan();
  server = await startServer("127.0.0.1", 0, (s) => addParameterSync(s, models, new MicroBatcher(0, 64), log), [PARAMETER_SYNC_SERVICE_NAME]);
});
afterAll(() => server.shutdown(100));

const D = SPEC.embeddingDim;
const MODEL = modelIdentity(SPEC);

/** Sets row `id` to [value, value] as sender "orchestrator" in `run`. */
const push = (run: string, seq: number, id: number, value: number) =>
  pushSync(server.address, encodeSyncUpdate({ sender: "orchestrator", run, model: run ? MODEL : "", seq, ids: Uint32Array.from(idWords(id)), rows: new Float32Array(D).fill(value), rowsShape: [1, D] }));

const row = (n: number) => {
  const t = models.current()!.tables.get(1)!;
  const [lo, hi] = idWords(n);
  const r = t.find(lo, hi);
  return r < 0 ? null : Array.from(t.rows.subarray(r * D, r * D + D));
};

describe("parameter sync sequences per sender run", () => {
  it("a second run under the same sender name, counting from 1 again, is applied; its replays and older updates are ignored and say so", async () => {
    for (let seq = 1; seq <= 5; seq++) expect(await push("run-a", seq, 10, seq)).toMatchObject({ rowsApplied: 1n, ignored: false });
    expect(row(10)).toEqual([5, 5]);
    const rowsBefore = models.current()!.synced.rows;

    // The next job (or the orchestrator restarted with --resume) starts its sequence at 1.
    expect(await push("run-b", 1, 11, 1)).toMatchObject({ modelVersion: 1n, rowsApplied: 1n, ignored: false });
    expect(await push("run-b", 2, 10, 20)).toMatchObject({ rowsApplied: 1n, ignored: false });
    expect([row(10), row(11)]).toEqual([[20, 20], [1, 1]]);

    // Within run-b, a replay of update 2 and an older update 1 are acknowledged as ignored and change nothing.
    const ignoredBefore = models.syncIgnored;
    expect(await push("run-b", 2, 10, 99)).toMatchObject({ modelVersion: 1n, rowsApplied: 0n, rowsRemoved: 0n, denseApplied: false, ignored: true });
    expect(await push("run-b", 1, 11, 99)).toMatchObject({ rowsApplied: 0n, ignored: true });
    expect([row(10), row(11)]).toEqual([[20, 20], [1, 1]]);
    expect(models.syncIgnored).toBe(ignoredBefore + 2);
    expect(models.current()!.synced.rows).toBe(rowsBefore + 2);

    // run-a's own sequence is still remembered: its update 5 again is ignored, its update 6 applies.
    expect(await push("run-a", 5, 10, 99)).toMatchObject({ ignored: true });
    expect(await push("run-a", 6, 10, 6)).toMatchObject({ rowsApplied: 1n, ignored: false });
    expect(row(10)).toEqual([6, 6]);
  });

  it("an older sender (no run) keeps sequences per sender name", async () => {
    expect(await push("", 3, 12, 3)).toMatchObject({ rowsApplied: 1n, ignored: false });
    expect(await push("", 3, 12, 9)).toMatchObject({ rowsApplied: 0n, ignored: true });
    expect(await push("", 2, 12, 9)).toMatchObject({ rowsApplied: 0n, ignored: true });
    expect(await push("", 4, 12, 4)).toMatchObject({ rowsApplied: 1n, ignored: false });
    expect(row(12)).toEqual([4, 4]);
  });
});
