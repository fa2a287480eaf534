import { afterEach, describe, expect, it } from "vitest";
import { PARAMETER_SERVER_SERVICE_NAME, startServer, type RunningServer } from "@pangea/rpc";
import { RowLayout } from "@pangea/model";
import { ParameterServer } from "../../services/orchestrator/src/server/parameter-server.js";
import { startedJob } from "../../services/orchestrator/test/fakes/job-fixture.js";
import { ShardedParameterClient } from "../../services/trainer/src/cluster/sharded-parameters.js";

// A push names its rank; without TLS (or with the shared trainer certificate) anyone could name another trainer's.
// The orchestrator's real ParameterServer and Job over gRPC in plaintext, pushed to as trainer-0's rank.

let server: RunningServer | null = null;
const clients: ShardedParameterClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await server?.shutdown(100);
  server = null;
});

describe("a push for a rank carries the token of the trainer holding it", () => {
  it("refused without it or with another trainer's (PERMISSION_DENIED, nothing applied); taken with it", async () => {
    const { job, sessions } = startedJob({ steps: 2 });
    server = await startServer("127.0.0.1", 0, (s) => new ParameterServer(job, "orchestrator").addToServer(s), [PARAMETER_SERVER_SERVICE_NAME], undefined, { security: null });
    const model = job.model!;
    const asRank0 = (token: string) => {
      const c = new ShardedParameterClient([server!.address], "rogue", 0, model.dense!.params, RowLayout.of(model.spec, [0, 1]), false, null, () => token);
      clients.push(c);
      return c;
    };
    const grads = model.dense!.values.map((v) => new Float32Array(v.length).fill(1000));
    const push = (c: ShardedParameterClient) => c.push(0, 0, 8, 0.5, grads, new Uint32Array(0), 0, new Float32Array(0)).then(() => "taken", (e: Error) => e.message);
    const before = model.dense!.values.map((v) => v.slice());
    for (const token of ["", sessions.get("trainer-1")!.workerToken]) {
      expect(await push(asRank0(token))).toMatch(/PERMISSION_DENIED: ORCH_ERR_PERMISSION_DENIED: Push for rank 0 for trainer trainer-0 refused: (it carries no worker_token|its worker_token is not that of trainer-0's current registration)/);
    }
    expect(model.dense!.values).toEqual(before);
    expect(job.status().batchesApplied).toBe(0);
    expect(await push(asRank0(sessions.get("trainer-0")!.workerToken))).toBe("taken");
  });
});
