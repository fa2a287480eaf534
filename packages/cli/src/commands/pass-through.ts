import { parseArgs } from "node:util";
import type { z } from "zod";
import type { FlagSpec, FlagTable } from "@pangea/kit";
import { withNegativeValues } from "@pangea/kit";
import { COMPUTE_FLAGS, ORCHESTRATOR_FLAGS, TRAINER_FLAGS, computeSchema, orchestratorSchema, trainerSchema } from "@pangea/service-flags";

export type Service = "orchestrator" | "compute" | "trainer";

/** Each service's declared flags and their schemas, in the order --help lists them. */
const SERVICES: readonly { name: Service; flags: FlagTable; shape: Record<string, z.ZodType> }[] = [
  { name: "orchestrator", flags: ORCHESTRATOR_FLAGS, shape: orchestratorSchema.shape },
  { name: "compute", flags: COMPUTE_FLAGS, shape: computeSchema.shape },
  { name: "trainer", flags: TRAINER_FLAGS, shape: trainerSchema.shape },
];

/**
 * Flags the local cluster sets for each process itself: where it listens and
 * finds the others, its identity and TLS name, and its role. `pangea run`
 * declares its own --host, --metrics-port, --tls-dir and --blas-threads,
 * whose meaning for a whole cluster differs from one process's.
 */
const SET_BY_THE_CLUSTER = new Set([
  "host", "port", "advertise", "metrics-host", "metrics-port", "orchestrator", "coordinator", "role", "shard-index", "worker-id",
  "discovery", "cluster-name", "discovery-lease-seconds", "tls-dir", "tls-name", "blas-threads",
]);

/** One flag `pangea run` passes on: its help (from the services' declarations), its schema, and who takes it. */
export interface PassThroughFlag {
  spec: FlagSpec;
  schema: z.ZodType;
  services: Service[];
}

function camel(s: string): string {
  return s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/**
 * Every service flag `pangea run` accepts and hands on to the processes that
 * declare it. A flag several services declare (--seed) goes to each; its help
 * joins their descriptions where they differ. The environment variables are
 * the services' own, so --help does not list them here.
 */
export function passThroughFlags(): Map<string, PassThroughFlag> {
  const out = new Map<string, PassThroughFlag>();
  const described = new Map<string, { service: Service; spec: FlagSpec }[]>();
  for (const svc of SERVICES) {
    for (const [name, spec] of Object.entries(svc.flags)) {
      if (SET_BY_THE_CLUSTER.has(name)) continue;
      const seen = out.get(name);
      if (seen) seen.services.push(svc.name);
      else out.set(name, { spec, schema: svc.shape[camel(name)]!, services: [svc.name] });
      described.set(name, [...(described.get(name) ?? []), { service: svc.name, spec }]);
    }
  }
  for (const [name, flag] of out) {
    const all = described.get(name)!;
    const one = (pick: (s: FlagSpec) => string | undefined) => new Set(all.map((d) => pick(d.spec))).size === 1;
    const description = one((s) => s.description) ? all[0]!.spec.description : all.map((d) => `${d.service}: ${d.spec.description}`).join("; ");
    const dflt = one((s) => s.default) ? all[0]!.spec.default : all.map((d) => `${d.spec.default ?? "none"} (${d.service})`).join(", ");
    flag.spec = { description, ...(dflt !== undefined ? { default: dflt } : {}), ...(flag.spec.boolean ? { boolean: true } : {}) };
  }
  return out;
}

/**
 * The pass-through flags given on the command line, as each service's
 * arguments, exactly as typed: a flag left out is left to the service, whose
 * default is the one --help shows.
 */
export function serviceArgs(argv: readonly string[], table: FlagTable, flags: ReadonlyMap<string, PassThroughFlag>): Record<Service, string[]> {
  const options: Record<string, { type: "string" | "boolean" }> = { help: { type: "boolean" } };
  for (const [name, spec] of Object.entries(table)) options[name] = { type: spec.boolean ? "boolean" : "string" };
  const { values } = parseArgs({ args: withNegativeValues(argv, (n) => options[n]?.type === "string"), options, strict: true, allowPositionals: false });
  const args: Record<Service, string[]> = { orchestrator: [], compute: [], trainer: [] };
  for (const [name, flag] of flags) {
    const v = values[name];
    if (v === undefined || v === false) continue;
    // A value starting with '-' goes joined to its flag, which parseArgs reads as the value.
    for (const svc of flag.services) args[svc].push(...(v === true ? [`--${name}`] : v.startsWith("-") ? [`--${name}=${v}`] : [`--${name}`, v]));
  }
  return args;
}

/** Compute flags that say which data to read, whose absence (as flag and as environment variable) means the built-in synthetic data. */
const DATA_FLAGS = ["data", "kafka-brokers", "synthetic-tasks"];

/**
 * The service arguments with `--synthetic-tasks 2` added for compute when a
 * multi-task model trains on the built-in data, so that `pangea run --model
 * mmoe` needs no other flag; a --synthetic-tasks, --data or --kafka-brokers
 * given (or its environment variable set) is left to decide.
 */
export function builtInTaskArgs(args: Record<Service, string[]>, multiTask: boolean, env: NodeJS.ProcessEnv): Record<Service, string[]> {
  if (!multiTask) return args;
  const given = DATA_FLAGS.some((name) => args.compute.includes(`--${name}`) || Boolean(env[COMPUTE_FLAGS[name]!.env!]));
  return given ? args : { ...args, compute: [...args.compute, "--synthetic-tasks", "2"] };
}
