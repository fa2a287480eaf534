import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, describe, expect, it } from "vitest";
import { LocalCluster } from "../../packages/cli/src/launcher/local-cluster.js";
import { StatusClient } from "../../packages/cli/src/commands/status-client.js";
import { orchestratorClient, unary } from "@pangea/rpc";
import { waitFor } from "../support/processes.js";

/**
 * What needs no certificate to refuse (a plaintext cluster, as ./setup.sh
 * runs one on loopback): a flood of bogus trainer registrations, a second
 * process under a connected trainer's id, a second compute; and afterwards a
 * real trainer that was killed still comes back.
 */
const tmp = mkdtempSync(join(tmpdir(), "pangea-sec-flood-"));
let cluster: LocalCluster | null = null;

afterAll(async () => {
  await cluster?.stop(1_000);
  rmSync(tmp, { recursive: true, force: true });
});

describe("registration abuse on a plaintext cluster", () => {
  it("new trainer ids are rate-limited and dropped unless they open a session, connected ids and the compute cannot be taken over, and a killed trainer rejoins", async () => {
    cluster = await LocalCluster.start({
      trainers: 2,
      logDir: join(tmp, "logs"),
      orchestratorArgs: ["--steps", "100000", "--batch-size", "64", "--checkpoint-dir", join(tmp, "ckpt"), "--heartbeat-timeout-ms", "3000"],
      computeArgs: ["--eval-records", "1000"],
      trainerArgs: [],
    });
    const status = new StatusClient(cluster.orchestratorAddress);
    await status.connect(5_000);
    await waitFor("training to start", async () => Number((await status.get()).step) >= 3, 60_000);

    const c = orchestratorClient(cluster.orchestratorAddress);
    const register = (workerId: string, kind: string, extra: object = {}) =>
      unary("orchestrator", c.RegisterWorker.bind(c), { workerId, kind, ...extra }, 5_000).then(
        () => ({ code: grpc.status.OK, details: "" }),
        (e: grpc.ServiceError) => ({ code: e.code, details: e.details }),
      );

    const flood = await Promise.all(Array.from({ length: 120 }, (_, i) => register(`bogus-${i}`, "WORKER_KIND_TRAINER")));
    const accepted = flood.filter((r) => r.code === grpc.status.OK).length;
    const limited = flood.filter((r) => r.code === grpc.status.RESOURCE_EXHAUSTED && r.details.includes("ORCH_ERR_RATE_LIMITED"));
    expect(accepted).toBeLessThanOrEqual(34); // the burst of 32, plus what refilled while the calls ran
    expect(limited.length).toBe(120 - accepted);
    expect(limited[0]!.details).toContain("more than 32 new trainer ids in a burst");
    // The accepted ones never open a session: dropped after the heartbeat timeout, not counted as trainers lost.
    const cleared = await waitFor("the bare registrations to be dropped", async () => {
      const s = await status.get();
      return s.workers.some((w) => w.workerId.startsWith("bogus-")) ? null : s;
    }, 20_000, 250);
    expect(Number(cleared.deadTrainers)).toBe(0);
    expect(cleared.workers.filter((w) => w.kind === "WORKER_KIND_TRAINER").length).toBe(2);

    const hijack = await register("trainer-0", "WORKER_KIND_TRAINER");
    expect(hijack.code).toBe(grpc.status.ALREADY_EXISTS);
    expect(hijack.details).toMatch(/^ORCH_ERR_WORKER_CONFLICT: trainer trainer-0 refused: a trainer of that id is registered and connected \(rank \d+\)$/);
    const source = { description: "synthetic", numDense: 13, slotIds: [1, 2], trainRecords: 1000, evalRecords: 10 };
    const fakeCompute = await register("compute-evil", "WORKER_KIND_COMPUTE", { address: "127.0.0.1:1", source });
    expect(fakeCompute.code).toBe(grpc.status.ALREADY_EXISTS);
    expect(fakeCompute.details).toContain("is registered and connected");

    // An id seen before registering again and again (each time replacing its token) is held to 8 at once, then 1 a
    // second, for itself alone.
    const cyclerId = "cycler";
    await waitFor("a new id to be admitted again", async () => (await register(cyclerId, "WORKER_KIND_TRAINER")).code === grpc.status.OK, 10_000, 250);
    const cycled = [];
    for (let i = 0; i < 40; i++) cycled.push(await register(cyclerId, "WORKER_KIND_TRAINER"));
    const cycledLimited = cycled.filter((r) => r.code === grpc.status.RESOURCE_EXHAUSTED);
    expect(cycledLimited.length).toBeGreaterThanOrEqual(40 - 10);
    expect(cycledLimited[0]!.details).toBe(`ORCH_ERR_RATE_LIMITED: trainer ${cyclerId} refused: it registered again more than 8 times in a burst (then 1/s); try again shortly`);

    // The real trainer-1, killed, its id then registered again and again by another client (its own rate spent), and
    // started again under its id while the cycler goes on: refused for the rate, it asks again every second and rejoins
    // while the cycling goes on (one id cycling holds up no other id's return).
    let cycling = true;
    const keepCycling = (async () => {
      while (cycling) {
        await register(cyclerId, "WORKER_KIND_TRAINER");
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    // Spent back to back (a token refilled is taken within a call's time), and kept spent until the restarted trainer
    // has been refused once or has registered. Its first call can still land on a refilled token before the spender's
    // next one; that run proves nothing about the refusal, so the trainer is killed and started again (at most 3 times).
    const refusal = "the orchestrator refused the registration for the rate of registrations; asking again every 1000 ms";
    const spent: number[] = [];
    let outcome = "";
    for (let attempt = 0; attempt < 3 && outcome !== "refused"; attempt++) {
      const oldLog = cluster.process("trainer-1")!.logPath;
      cluster.process("trainer-1")!.child.kill("SIGKILL");
      await cluster.process("trainer-1")!.exited;
      let spending = true;
      const keepSpending = (async () => {
        while (spending) spent.push((await register("trainer-1", "WORKER_KIND_TRAINER")).code);
      })();
      const restarted = cluster.restart("trainer-1");
      outcome = await waitFor("trainer-1 to be refused for the rate (or to register)", async () => {
        const log = cluster!.process("trainer-1")!.logPath;
        if (log === oldLog) return null;
        const text = readFileSync(log, "utf8");
        return text.includes(refusal) ? "refused" : text.includes("registered; waiting for the job to start") ? "registered" : null;
      }, 30_000, 50);
      spending = false;
      await keepSpending;
      await restarted;
    }
    expect(outcome).toBe("refused");
    expect(spent).toContain(grpc.status.RESOURCE_EXHAUSTED);
    const before = Number((await status.get()).step);
    const rejoined = await waitFor("trainer-1 to train again", async () => {
      const s = await status.get();
      const t1 = s.workers.find((w) => w.workerId === "trainer-1");
      return t1?.alive && Number(s.step) > before + 3 ? s : null;
    }, 60_000, 300);
    expect(rejoined.state).toBe("JOB_STATE_RUNNING");
    cycling = false;
    await keepCycling;
    c.close();
    status.close();
  }, 180_000);
});
