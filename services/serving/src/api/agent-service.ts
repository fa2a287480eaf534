import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { toServiceError, type Discovery } from "@pangea/rpc";
import { printable } from "@pangea/kit";
import { PROTO_ROOT } from "@pangea/schema";
import { ServingErrors } from "../errors.js";

export const AGENT_SERVICE = "monolith.serving.agent_service.AgentService";

type ServerType = "PS" | "ENTRY" | "DENSE";
type Def = { service: grpc.ServiceDefinition };
let cached: Def | null = null;

export function agentServiceDefinition(): Def {
  if (!cached) {
    const pkg = grpc.loadPackageDefinition(
      protoLoader.loadSync(["monolith/agent_service/agent_service.proto"], { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, includeDirs: [PROTO_ROOT] }),
    ) as unknown as { monolith: { serving: { agent_service: { AgentService: Def } } } };
    cached = pkg.monolith.serving.agent_service.AgentService;
  }
  return cached;
}

/** What the agent reports about this replica, measured since the previous GetResource. */
export interface ReplicaLoad {
  address: string;
  model: string;
  workerId: string;
  /** Predict requests and model-input bytes served so far. */
  counters(): { requests: number; bytes: number };
}

/**
 * Monolith's AgentService on a serving replica, answered from the discovery
 * backend: GetReplicas (who serves a model, or which process holds a
 * parameter-server shard), GetResource (this replica's memory, CPU, load) and
 * HeartBeat (the whole replica map of a server type). Serving replicas are
 * registered as serving/<model>/<worker id>.
 */
export function addAgentService(server: grpc.Server, discovery: Discovery, me: ReplicaLoad): void {
  let last = { at: performance.now(), cpu: process.cpuUsage(), ...me.counters() };
  const replicas = async (model: string): Promise<Map<string, string[]>> => {
    const byModel = new Map<string, string[]>();
    for (const [id, address] of await discovery.list("serving")) {
      const name = id.includes("/") ? id.slice(0, id.indexOf("/")) : me.model;
      if (model && name !== model) continue;
      byModel.set(name, [...(byModel.get(name) ?? []), address].sort());
    }
    return byModel;
  };
  const shards = async (): Promise<Map<string, string>> => {
    const out = new Map<string, string>();
    const orch = [...(await discovery.list("orchestrator")).values()][0];
    if (orch) out.set("0", orch);
    for (const [id, address] of await discovery.list("ps")) out.set(id, address);
    return out;
  };
  const answer = <Req, Res>(fn: (req: Req) => Promise<Res>) => (call: grpc.ServerUnaryCall<Req, Res>, cb: grpc.sendUnaryData<Res>) => {
    fn(call.request).then(
      (r) => cb(null, r),
      (err) => cb(toServiceError(err)),
    );
  };
  // An enum value the proto does not name arrives as its number: said, not answered as an empty list of a kind no one serves.
  const known = (t: ServerType | number): void => {
    if (t !== "PS" && t !== "ENTRY" && t !== "DENSE") throw ServingErrors.create("SERVING_ERR_BAD_INPUT", `server_type ${printable(String(t), 20)} is none of PS (0), ENTRY (1), DENSE (2)`);
  };
  server.addService(agentServiceDefinition().service, {
    GetReplicas: answer(async (req: { server_type: ServerType; task: number; model_name: string }) => {
      known(req.server_type);
      if (req.server_type === "ENTRY") return { address_list: { address: (await replicas(req.model_name)).get(req.model_name || me.model) ?? [] } };
      const all = await shards();
      if (req.server_type === "DENSE") return { address_list: { address: all.has("0") ? [all.get("0")!] : [] } };
      if (req.task < 0) throw ServingErrors.create("SERVING_ERR_BAD_INPUT", `task ${req.task} is not a shard index`);
      const a = all.get(String(req.task));
      return { address_list: { address: a ? [a] : [] } };
    }),
    GetResource: answer(async () => {
      const now = performance.now();
      const cpu = process.cpuUsage();
      const c = me.counters();
      const seconds = Math.max(1e-3, (now - last.at) / 1000);
      const cpuSeconds = (cpu.user - last.cpu.user + cpu.system - last.cpu.system) / 1e6;
      const res = {
        address: me.address,
        shard_id: 0,
        replica_id: Math.max(0, ((await replicas(me.model)).get(me.model) ?? []).indexOf(me.address)),
        memory: String(process.memoryUsage().rss),
        cpu: cpuSeconds / seconds,
        network: (c.bytes - last.bytes) / seconds,
        work_load: (c.requests - last.requests) / seconds,
      };
      last = { at: now, cpu, ...c };
      return res;
    }),
    HeartBeat: answer(async (req: { server_type: ServerType }) => {
      known(req.server_type);
      const addresses: Record<string, { address: string[] }> = {};
      if (req.server_type === "ENTRY") for (const [model, list] of await replicas("")) addresses[model] = { address: list };
      else {
        const all = await shards();
        if (req.server_type === "DENSE") {
          if (all.has("0")) addresses.dense = { address: [all.get("0")!] };
        } else for (const [index, address] of all) addresses[index] = { address: [address] };
      }
      return { addresses };
    }),
  });
}
