#!/usr/bin/env node
import { namedAsGiven, parseConfig, printable, runMain, usageText, UsageError, address, type FlagTable } from "@pangea/kit";
import { z } from "zod";
import { constants as osConstants } from "node:os";
import { ClusterError } from "./cluster-error.js";

// Each command's module is loaded when that command runs: `pangea serve`, `export`, `gen-data` and every
// `--help` then start without gRPC, the protobuf schemas or the launcher (about half of `pangea --help`'s 0.45 s).
const run = () => import("./commands/run.js");
const clusterCommands = () => import("./commands/cluster-commands.js");
const childCommands = () => import("./commands/child-commands.js");

const COMMANDS = `Usage: pangea <command> [flags]

Commands:
  run        start a local cluster, train, evaluate, print results, stop everything
  train      the same as run
  up         start a local cluster in the background
  down       stop the cluster 'up' started
  status     show the job's state, loss, throughput and evaluation
  gen-data   write the synthetic Criteo-like data set: Criteo TSV, Monolith Instance/Example/ExampleBatch or Parquet
  export     write a servable model version from a checkpoint
  serve      serve exported model versions (TensorFlow Serving gRPC API + REST)
  predict    send examples to a serving replica and print the predictions
  bench      run the benchmarks (data pipeline, trainer, tables, serving) and print figures
  certs      make a cluster CA and per-role certificates for mutual TLS (--tls-dir)

Run 'pangea <command> --help' for a command's flags.
`;

const STATUS_FLAGS: FlagTable = {
  orchestrator: { description: "the orchestrator's host:port (default: the cluster 'pangea up' started)" },
  json: { description: "print the job status as JSON", boolean: true },
  "tls-dir": { description: "the cluster's certificates (pangea certs): call with admin.crt (default: the directory 'pangea up --tls' used)" },
};
const statusUsage = () => usageText("pangea status", "Show the job's state, loss, throughput and evaluation.", STATUS_FLAGS);
const downUsage = () => usageText("pangea down", "Stop the local cluster 'pangea up' started (every process it launched).", {});

const STATUS_SCHEMA = z.object({
  orchestrator: address.optional(),
  json: z.boolean().default(false),
  tlsDir: z.string().min(1, "expected a directory").optional(),
}).strict();

const KNOWN = new Set(["run", "train", "up", "down", "status", "gen-data", "export", "serve", "predict", "bench", "certs"]);

// The reader went away (`pangea run | head -1`): this process ends as one killed by SIGPIPE would, quietly, and the
// services it started stop with it (they hold a pipe from it).
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(128 + osConstants.signals.SIGPIPE);
    throw err;
  });
}

runMain("pangea", async () => {
  const [command, ...rest] = process.argv.slice(2);
  let code = 0;
  try {
    switch (command) {
      case "run":
      case "train":
      case "up": {
        const { parseRun, runCommand, runUsage, trainUsage, upUsage } = await run();
        const config = parseRun(rest);
        if (!config) {
          process.stdout.write({ run: runUsage, train: trainUsage, up: upUsage }[command]());
          return;
        }
        if (command === "up" && config.json) throw new UsageError("--json is for 'pangea run'; after 'pangea up', 'pangea status --json' prints the job status as JSON");
        code = command === "up" ? await (await clusterCommands()).upCommand(config) : await runCommand(config);
        break;
      }
      case "predict":
        code = await (await import("./commands/predict.js")).predictCommand(rest);
        break;
      case "certs":
        code = (await import("./commands/certs.js")).certsCommand(rest);
        break;
      case "bench":
        code = await (await childCommands()).benchCommand(rest);
        break;
      case "down":
        // Flags and arguments as every command reads them, so an unknown one is worded alike.
        if (!parseConfig(z.object({}), {}, rest, {})) {
          process.stdout.write(downUsage());
          return;
        }
        code = await (await clusterCommands()).downCommand();
        break;
      case "status": {
        const a = parseConfig(STATUS_SCHEMA, STATUS_FLAGS, rest, {});
        if (!a) {
          process.stdout.write(statusUsage());
          return;
        }
        code = await (await clusterCommands()).statusCommand(a.orchestrator, a.json, a.tlsDir);
        break;
      }
      case "gen-data":
        code = await (await childCommands()).genDataCommand(rest);
        break;
      case "export":
        code = await (await childCommands()).exportCommand(rest);
        break;
      case "serve":
        code = await (await childCommands()).serveCommand(rest);
        break;
      case "--help":
      case "help":
        process.stdout.write(COMMANDS);
        return;
      case undefined:
        // No command is a usage error (the list, then exit 2), as a shell script calling `pangea $cmd` with an empty one should see.
        process.stderr.write(COMMANDS);
        process.exitCode = 2;
        return;
      default:
        throw new UsageError(`unknown command '${command}'`);
    }
  } catch (err) {
    if (err instanceof UsageError && command && KNOWN.has(command)) {
      // One line naming the problem and where the usage is: the flag list would push that line off the screen.
      // printable: a flag or path typed with an ESC, a newline or a bidi override is echoed escaped, on one line.
      process.stderr.write(`pangea ${command}: ${printable(namedAsGiven(err.message), 2048)}\nRun 'pangea ${command} --help' for usage.\n`);
      process.exit(2);
    }
    if (err instanceof ClusterError) {
      process.stderr.write(`pangea ${command}: ${printable(err.message, 2048)}\n`);
      process.exit(err.exitCode);
    }
    throw err;
  }
  process.exitCode = code;
}, () => COMMANDS);
