import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createInterface } from "node:readline";
import * as grpc from "@grpc/grpc-js";
import { EtcdClient } from "@pangea/rpc";
import { startEtcd, type EtcdServer } from "@pangea/test-utils";
import { agentServiceDefinition } from "../../services/serving/src/api/agent-service.js";
import { LocalCluster } from "../../packages/cli/src/launcher/local-cluster.js";
import { StatusClient } from "../../packages/cli/src/commands/status-client.js";
import { inputsAcrossTables } from "../support/version-inputs.js";
import { ENTRY, ROOT, closedPort, lastLine, runNode, waitFor } from "../support/processes.js";

/**
 * Service discovery against a real registry: Debian's etcd server, started
 * here on free ports (`.ci/run` installs etcd-server). Services announce
 * themselves under /pangea/<cluster>/ with leases and find the orchestrator
 * there; TF_CONFIG-style JSON is the registry-less alternative.
 */
const tmp = mkdtempSync(join(tmpdir(), "pangea-disc-"));
let etcd: EtcdServer | null = null;
let endpoint = "";
const clusters: LocalCluster[] = [];

beforeAll(async () => {
  etcd = await startEtcd(tmp);
  endpoint = etcd.endpoint;
}, 30_000);

afterAll(async () => {
  await Promise.all(clusters.map((c) => c.stop(1_000)));
  etcd?.stop();
});

async function finished(status: StatusClient) {
  return waitFor("the job to end", async () => {
    const s = await status.get().catch(() => null);
    return s && (s.state === "JOB_STATE_COMPLETED" || s.state === "JOB_STATE_FAILED") ? s : null;
  }, 120_000);
}

type Replica = { child: ReturnType<typeof spawn>; address: string; rest: string };

/** A serving of model `model` from `base`, announced in etcd under `cluster` (2 s lease) unless null; it never polls for new versions. */
async function startReplica(base: string, id: string, model: string, cluster: string | null): Promise<Replica> {
  const where = cluster ? ["--discovery", `etcd://${endpoint}`, "--cluster-name", cluster, "--discovery-lease-seconds", "2", "--worker-id", id] : [];
  const child = spawn(process.execPath, [join(ROOT, "services/serving/dist/main.js"), "--model-base-path", base, "--model-name", model, "--port", "0", "--rest-port", "0", "--poll-seconds", "3600", ...where], { stdio: ["ignore", "pipe", "ignore"] });
  const line = await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once("line", resolve));
  return { child, ...(JSON.parse(line) as { address: string; rest: string }) };
}

/** `pangea export` of a checkpoint (a sharded one: every shard's part) to a model base path, as its next version. */
function exportCheckpoint(checkpoint: string, out: string): void {
  const r = spawnSync(process.execPath, [join(ROOT, "services/orchestrator/dist/export.js"), "--checkpoint", checkpoint, "--out", out], { encoding: "utf8" });
  expect(r.status, r.stderr).toBe(0);
}

async function rowsApplied(rest: string): Promise<number> {
  const text = await (await fetch(`http://${rest}/metrics`)).text();
  return Number(/^pangea_serving_sync_rows_total(?:\{[^}]*\})? (\S+)$/m.exec(text)?.[1] ?? 0);
}

async function predict(rest: string, version: number, body: unknown): Promise<number[]> {
  const res = await fetch(`http://${rest}/v1/models/ctr/versions/${version}:predict`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  expect(res.status).toBe(200);
  return ((await res.json()) as { outputs: { probabilities: number[] } }).outputs.probabilities;
}

/** A replica's version 1, synced, predicts `exported`. The final push may still be on its way when the job reports completed: waited for, then compared (a replica that never gets there fails on the comparison). */
async function expectSynced(r: Replica, body: unknown, exported: number[]): Promise<void> {
  const matches = (xs: number[]) => xs.every((x, i) => Math.abs(x - exported[i]!) < 5e-6);
  const synced = await waitFor("the synced version to hold the final push", async () => {
    const xs = await predict(r.rest, 1, body);
    return matches(xs) ? xs : null;
  }, 30_000, 250).catch(() => predict(r.rest, 1, body));
  synced.forEach((x, i) => expect(x, `replica ${r.address}, example ${i}`).toBeCloseTo(exported[i]!, 5));
}

/** The cluster's job once it has ended (the cluster is stopped after the file). */
async function jobEnd(c: LocalCluster) {
  clusters.push(c);
  const status = new StatusClient(c.orchestratorAddress);
  try {
    return await finished(status);
  } finally {
    status.close();
  }
}

describe("service discovery", () => {
  it("etcd: every service announces itself with a lease and finds the orchestrator there; 2 shards, 2 trainers train", async () => {
    const c = await LocalCluster.start({
      trainers: 2,
      psShards: 2,
      discovery: `etcd://${endpoint}`,
      clusterName: "alpha",
      logDir: join(tmp, "etcd-job"),
      orchestratorArgs: ["--job-id", "etcd-job", "--steps", "40", "--batch-size", "64", "--checkpoint-dir", join(tmp, "ckpt")],
      computeArgs: ["--eval-records", "2000"],
      trainerArgs: [],
    });
    clusters.push(c);
    const etcdClient = new EtcdClient([endpoint]);
    // Trainers announce themselves right after printing their ready line.
    await waitFor("both trainers in etcd", async () => [...(await etcdClient.list("/pangea/alpha/trainer/")).keys()].length === 2, 10_000, 100);
    const registry = await etcdClient.list("/pangea/alpha/");
    expect(registry.get("/pangea/alpha/orchestrator/main")).toBe(c.orchestratorAddress);
    expect(registry.get("/pangea/alpha/ps/1")).toBe(c.shardAddresses[0]);
    expect([...registry.keys()].filter((k) => k.startsWith("/pangea/alpha/compute/"))).toHaveLength(1);
    expect([...registry.keys()].filter((k) => k.startsWith("/pangea/alpha/trainer/")).sort()).toEqual(["/pangea/alpha/trainer/trainer-0", "/pangea/alpha/trainer/trainer-1"]);
    for (const p of c.processes) expect(p.args).not.toContain("--orchestrator");
    const status = new StatusClient(c.orchestratorAddress);
    const s = await finished(status);
    status.close();
    expect(s.error).toBe("");
    expect(s.state).toBe("JOB_STATE_COMPLETED");
    // A generous grace: on a loaded machine a clean shutdown can take seconds,
    // and a service killed after the grace would leave its entry until its lease expires.
    await c.stop(20_000);
    for (const p of c.processes) expect(p.lastLine, p.name).not.toMatch(/^killed by SIGKILL/);
    // A stopped service takes its entry with it (lease revoked on shutdown).
    expect([...(await new EtcdClient([endpoint]).list("/pangea/alpha/")).keys()]).toEqual([]);
  }, 150_000);

  it("etcd: an orchestrator killed with SIGKILL drops out when its lease expires; restarted on another port it is found again and the job resumes", async () => {
    const c = await LocalCluster.start({
      trainers: 2,
      discovery: `etcd://${endpoint}`,
      clusterName: "beta",
      logDir: join(tmp, "etcd-move"),
      orchestratorArgs: ["--job-id", "etcd-move", "--steps", "120", "--batch-size", "64", "--checkpoint-dir", join(tmp, "ckpt"), "--checkpoint-every-steps", "10", "--discovery-lease-seconds", "3"],
      computeArgs: ["--eval-records", "2000", "--discovery-lease-seconds", "3"],
      trainerArgs: ["--discovery-lease-seconds", "3"],
    });
    clusters.push(c);
    const first = c.orchestratorAddress;
    let status = new StatusClient(first);
    await waitFor("step 15", async () => Number((await status.get()).step) >= 15, 60_000, 100);
    status.close();
    const etcdClient = new EtcdClient([endpoint]);
    c.process("orchestrator")!.child.kill("SIGKILL");
    await c.process("orchestrator")!.exited;
    const killedAt = Date.now();
    await waitFor("the dead orchestrator's entry to expire", async () => (await etcdClient.get("/pangea/beta/orchestrator/main")) === null, 10_000, 200);
    expect(Date.now() - killedAt).toBeLessThan(6_000);
    const second = await c.restart("orchestrator", ["--port", "0", "--resume"]);
    expect(second).not.toBe(first);
    expect(await etcdClient.get("/pangea/beta/orchestrator/main")).toBe(second);
    status = new StatusClient(second);
    const s = await finished(status);
    status.close();
    expect(s.error).toBe("");
    expect(s.state).toBe("JOB_STATE_COMPLETED");
    expect(Number(s.resumedFromStep)).toBeGreaterThanOrEqual(10);
    expect(Number(s.missingBatches)).toBe(0);
    expect(Number(s.batchesApplied)).toBe(240);
  }, 150_000);

  it("serving replicas answer Monolith's AgentService (GetReplicas, GetResource, HeartBeat) from etcd; a killed replica drops out with its lease", async () => {
    const base = join(tmp, "models", "ctr");
    exportCheckpoint(join(tmp, "ckpt", "etcd-job", "step-40"), base);
    const start = async (id: string) => {
      const child = spawn(process.execPath, [join(ROOT, "services/serving/dist/main.js"), "--model-base-path", base, "--model-name", "ctr", "--port", "0", "--rest-port", "0",
        "--discovery", `etcd://${endpoint}`, "--cluster-name", "gamma", "--discovery-lease-seconds", "2", "--worker-id", id], { stdio: ["ignore", "pipe", "ignore"] });
      const line = await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once("line", resolve));
      return { child, address: (JSON.parse(line) as { address: string }).address };
    };
    const a = await start("replica-a");
    const b = await start("replica-b");
    const etcdClient = new EtcdClient([endpoint]);
    await etcdClient.put("/pangea/gamma/orchestrator/main", "10.0.0.1:50051");
    await etcdClient.put("/pangea/gamma/ps/1", "10.0.0.2:50051");
    const { service } = agentServiceDefinition();
    const Agent = grpc.makeGenericClientConstructor(service, "AgentService");
    const agent = new Agent(a.address, grpc.credentials.createInsecure()) as unknown as Record<string, (req: unknown, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void>;
    const ask = <T>(method: string, req: unknown) => new Promise<T>((resolve, reject) => agent[method]!.call(agent, req, (err, res) => (err ? reject(err) : resolve(res as T))));
    type Replicas = { address_list: { address: string[] } };
    expect((await ask<Replicas>("GetReplicas", { server_type: "ENTRY", model_name: "ctr" })).address_list.address).toEqual([a.address, b.address].sort());
    expect((await ask<Replicas>("GetReplicas", { server_type: "ENTRY", model_name: "other" })).address_list.address).toEqual([]);
    expect((await ask<Replicas>("GetReplicas", { server_type: "PS", task: 1 })).address_list.address).toEqual(["10.0.0.2:50051"]);
    expect((await ask<Replicas>("GetReplicas", { server_type: "DENSE" })).address_list.address).toEqual(["10.0.0.1:50051"]);
    // A server type the proto does not name is refused naming the three (it was answered with an empty list).
    for (const method of ["GetReplicas", "HeartBeat"]) {
      const err = await ask(method, { server_type: 99, task: 0 }).then(() => null, (e: grpc.ServiceError) => e);
      expect([err?.code, err?.details]).toEqual([grpc.status.INVALID_ARGUMENT, "SERVING_ERR_BAD_INPUT: server_type 99 is none of PS (0), ENTRY (1), DENSE (2)"]);
    }
    const hb = await ask<{ addresses: Record<string, { address: string[] }> }>("HeartBeat", { server_type: "PS" });
    expect(hb.addresses).toEqual({ "0": { address: ["10.0.0.1:50051"] }, "1": { address: ["10.0.0.2:50051"] } });
    const res = await ask<{ address: string; memory: string; cpu: number; replica_id: number }>("GetResource", {});
    expect(res.address).toBe(a.address);
    expect(Number(res.memory)).toBeGreaterThan(10_000_000);
    expect(res.cpu).toBeGreaterThanOrEqual(0);
    b.child.kill("SIGKILL");
    await waitFor("replica-b to drop out", async () => {
      const r = await ask<{ addresses: Record<string, { address: string[] }> }>("HeartBeat", { server_type: "ENTRY" });
      return r.addresses.ctr?.address.length === 1 ? r : null;
    }, 8_000, 200).then((r) => expect(r.addresses.ctr!.address).toEqual([a.address]));
    a.child.kill("SIGTERM");
  }, 60_000);

  it("etcd: --serving-sync discovery:ctr pushes to every serving replica of model ctr etcd lists (not another model's), one that joins mid-job first sent every row, none to one whose lease expired; at the end each replica's synced version predicts what the final checkpoint's export does", async () => {
    const base = join(tmp, "models-synced");
    exportCheckpoint(join(tmp, "ckpt", "etcd-job", "step-40"), base);
    const replicas: Replica[] = [];
    // The replicas never look for new versions (--poll-seconds 3600): every push goes to version 1, the one they
    // loaded, also a final push that lands after the job's final export (version 2) was written.
    const start = async (id: string, model = "ctr", discovered = true) => {
      const r = await startReplica(base, id, model, discovered ? "delta" : null);
      replicas.push(r);
      return r;
    };
    try {
      const a = await start("replica-a");
      const gone = await start("replica-gone");
      // Another model's replica in the same cluster: not this job's to push to.
      const other = await start("replica-other", "other");
      const c = await LocalCluster.start({
        trainers: 2,
        discovery: `etcd://${endpoint}`,
        clusterName: "delta",
        logDir: join(tmp, "sync-job"),
        orchestratorArgs: ["--job-id", "sync-job", "--steps", "600", "--batch-size", "64", "--checkpoint-dir", join(tmp, "ckpt"), "--restore-from", join(tmp, "ckpt", "etcd-job", "step-40"),
          "--serving-sync", "discovery:ctr", "--sync-interval-seconds", "1", "--dense-sync-interval-seconds", "1", "--export-dir", base],
        computeArgs: ["--eval-records", "1000"],
        trainerArgs: [],
      });
      clusters.push(c);
      const status = new StatusClient(c.orchestratorAddress);
      await waitFor("replica-a's first rows", async () => (await rowsApplied(a.rest)) > 0, 30_000, 100);
      gone.child.kill("SIGKILL");
      const b = await start("replica-b");
      // Announced while the job trains: it is found by a push before the final one.
      const step = Number((await status.get()).step);
      expect(step).toBeLessThan(600);
      await waitFor("replica-b's rows", async () => (await rowsApplied(b.rest)) > 0, 30_000, 100);
      const orchestratorLog = () => readFileSync(c.process("orchestrator")!.logPath, "utf8");
      await waitFor("replica-gone to leave etcd", async () => orchestratorLog().includes(`"serving":"${gone.address}","msg":"serving replica left etcd: parameter sync stops pushing to it"`), 15_000, 200);
      const s = await finished(status);
      status.close();
      expect([s.state, s.error]).toEqual(["JOB_STATE_COMPLETED", ""]);
      const log = orchestratorLog();
      for (const r of [a, gone, b]) expect(log).toContain(`"serving":"${r.address}","msg":"serving replica found in etcd: parameter sync sends it every row and the dense weights, then what changes"`);
      expect(log).not.toContain(other.address);
      expect(await rowsApplied(other.rest)).toBe(0);
      // Each replica got the whole table first, the one that joined mid-job included.
      expect(log.split("\n").filter((l) => l.includes("parameter sync sent serving every row") && l.includes(b.address))).toHaveLength(1);
      // The final checkpoint exported as version 2, served by a serving outside the cluster: every replica's version
      // 1, synced, predicts what it does.
      const body = inputsAcrossTables(join(base, "2"), 32);
      const exported = await predict((await start("reference", "ctr", false)).rest, 2, body);
      for (const r of [a, b]) await expectSynced(r, body, exported);
    } finally {
      for (const r of replicas) r.child.kill("SIGKILL");
    }
  }, 150_000);

  it("etcd: with 2 parameter-server shards, discovery:ctr has each shard push its own rows to the replicas it finds there; the replica's synced version predicts what the final sharded checkpoint's export does", async () => {
    const base = join(tmp, "models-sharded");
    exportCheckpoint(join(tmp, "ckpt", "etcd-job", "step-40"), base);
    const replicas: Replica[] = [];
    try {
      const replica = await startReplica(base, "replica-s", "ctr", "epsilon");
      replicas.push(replica);
      const c = await LocalCluster.start({
        trainers: 2,
        psShards: 2,
        discovery: `etcd://${endpoint}`,
        clusterName: "epsilon",
        logDir: join(tmp, "sharded-sync-job"),
        orchestratorArgs: ["--job-id", "sharded-sync", "--steps", "200", "--batch-size", "64", "--checkpoint-dir", join(tmp, "ckpt"), "--restore-from", join(tmp, "ckpt", "etcd-job", "step-40"),
          "--serving-sync", "discovery:ctr", "--sync-interval-seconds", "1", "--dense-sync-interval-seconds", "1"],
        computeArgs: ["--eval-records", "1000"],
        trainerArgs: [],
      });
      const s = await jobEnd(c);
      expect([s.state, s.error]).toEqual(["JOB_STATE_COMPLETED", ""]);
      // Both shards found the replica in etcd and sent it their whole part first.
      for (const [name, what] of [["orchestrator", "every row and the dense weights"], ["shard-1", "every row this shard holds"]] as const) {
        const log = readFileSync(c.process(name)!.logPath, "utf8");
        expect(log, name).toContain(`"serving":"${replica.address}","msg":"serving replica found in etcd: parameter sync sends it ${what}, then what changes"`);
      }
      // The job's final checkpoint, both shards' parts, exported and served outside the cluster.
      const finalBase = join(tmp, "models-sharded-final");
      exportCheckpoint(join(tmp, "ckpt", "sharded-sync", "step-200"), finalBase);
      const body = inputsAcrossTables(join(finalBase, "1"), 32);
      const reference = await startReplica(finalBase, "reference", "ctr", null);
      replicas.push(reference);
      await expectSynced(replica, body, await predict(reference.rest, 1, body));
    } finally {
      for (const r of replicas) r.child.kill("SIGKILL");
    }
  }, 150_000);

  it("etcd: a shard started without a registry refuses a job whose --serving-sync is discovery:<model>: it exits 2, and the job fails with the shard's reason, not only that it disconnected", async () => {
    // The orchestrator (last --ps-shards wins), compute and trainer find each other in etcd; shard 1 is told the orchestrator's address instead.
    const c = await LocalCluster.start({
      trainers: 1,
      psShards: 1,
      discovery: `etcd://${endpoint}`,
      clusterName: "zeta",
      logDir: join(tmp, "refused-shard"),
      orchestratorArgs: ["--job-id", "refused", "--ps-shards", "2", "--steps", "20", "--batch-size", "64", "--serving-sync", "discovery:ctr"],
      computeArgs: ["--eval-records", "200"],
      trainerArgs: [],
    });
    clusters.push(c);
    const shard = await runNode(ENTRY.orchestrator, ["--role", "shard", "--shard-index", "1", "--ps-shards", "2", "--coordinator", c.orchestratorAddress, "--port", "0", "--worker-id", "shard-1"], { timeoutMs: 60_000 });
    const why = "the job's --serving-sync discovery:ctr finds serving replicas in etcd, and this shard was started without a registry: start it with the orchestrator's --discovery etcd://...";
    expect(shard.code, shard.stderr).toBe(2);
    expect(lastLine(shard.stderr)).toBe(`pangea-orchestrator: error ORCH_ERR_BAD_JOB_CONFIG: ${why}`);
    const s = await jobEnd(c);
    expect([s.state, s.error, s.errorExitCode]).toEqual(["JOB_STATE_FAILED", `ORCH_ERR_BAD_JOB_CONFIG: parameter-server shard shard-1 (index 1) at step 0 of 20 failed: ${why}`, 2]);
  }, 90_000);

  it("--serving-sync discovery:<model> without etcd, and discovery without a model, are usage errors naming the flag", async () => {
    for (const [extra, message] of [
      [["discovery:ctr"], "--serving-sync: discovery:<model> finds serving replicas in etcd: give --discovery etcd://host:port too"],
      [["discovery", "--discovery", "etcd://127.0.0.1:2379"], '--serving-sync: expected host:port[,host:port...] (ports 1..65535), or discovery:<model> (the --model-name of the serving replicas to find in etcd)'],
    ] as const) {
      const r = await runNode(join(ROOT, "services/orchestrator/dist/main.js"), ["--serving-sync", ...extra, "--checkpoint-dir", join(tmp, "ckpt-usage")]);
      expect([r.code, r.stderr.split("\n")[0]]).toEqual([2, expect.stringContaining(message)]);
    }
  }, 30_000);

  it("tf-config: the orchestrator's address comes from TF_CONFIG's cluster spec", async () => {
    const port = await closedPort();
    const c = await LocalCluster.start({
      trainers: 1,
      orchestratorPort: port,
      discovery: "tf-config",
      env: { TF_CONFIG: JSON.stringify({ cluster: { chief: [`127.0.0.1:${port}`], worker: ["127.0.0.1:1"] }, task: { type: "worker", index: 0 } }) },
      logDir: join(tmp, "tf-config"),
      orchestratorArgs: ["--job-id", "tf-config", "--steps", "10", "--batch-size", "64", "--checkpoint-dir", join(tmp, "ckpt")],
      computeArgs: ["--eval-records", "1000"],
      trainerArgs: [],
    });
    expect((await jobEnd(c)).state).toBe("JOB_STATE_COMPLETED");
  }, 60_000);

  it.each([
    ["no TF_CONFIG", {}, "RPC_ERR_DISCOVERY: --discovery tf-config needs the TF_CONFIG environment variable (a JSON cluster spec)"],
    ["TF_CONFIG that is not JSON", { TF_CONFIG: "{cluster" }, "RPC_ERR_DISCOVERY: TF_CONFIG is not valid JSON"],
    ["TF_CONFIG without an orchestrator", { TF_CONFIG: '{"cluster":{"worker":["h:1"]}}' }, "RPC_ERR_DISCOVERY: TF_CONFIG names no orchestrator"],
  ])("a trainer with %s exits 2 with one line", async (_what, env, message) => {
    const r = await runNode(ENTRY.trainer, ["--discovery", "tf-config", "--backend", "cpu"], { env: { TF_CONFIG: "", ...env }, timeoutMs: 20_000 });
    expect(r.code).toBe(2);
    expect(lastLine(r.stderr)).toContain(`pangea-trainer: error ${message}`);
  });

  it("a bad --discovery value is a usage error (exit 2); an unreachable etcd is exit 3 naming it", async () => {
    const bad = await runNode(ENTRY.compute, ["--discovery", "zookeeper://x:1", "--eval-records", "0"]);
    expect(bad.code).toBe(2);
    expect(lastLine(bad.stderr.trimEnd().split("\n").slice(0, -1).join("\n"))).toBe("pangea-compute: invalid --discovery: expected static, tf-config or etcd://host:port[,host:port] (ports 1..65535), got \"zookeeper://x:1\"");
    const port = await closedPort();
    const r = await runNode(ENTRY.compute, ["--port", "0", "--discovery", `etcd://127.0.0.1:${port}`, "--eval-records", "0"], { timeoutMs: 20_000 });
    expect(r.code).toBe(3);
    expect(lastLine(r.stderr)).toMatch(new RegExp(`^pangea-compute: error RPC_ERR_REGISTRY: etcd at 127\\.0\\.0\\.1:${port}: `));
  });
});
