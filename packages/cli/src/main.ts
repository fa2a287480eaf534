#!/usr/bin/env node
import { runMain, usageText, UsageError, address } from "@pangea/kit";
import { ClusterError } from "./launcher/local-cluster.js";
import { parseRun, runCommand, runUsage } from "./commands/run.js";
import { benchCommand, downCommand, exportCommand, genDataCommand, serveCommand, statusCommand, upCommand } from "./commands/cluster-commands.js";
import { predictCommand, predictUsage } from "./commands/predict.js";

const COMMANDS = `Usage: pangea <command> [flags]

Commands:
  run        start a local cluster, train, evaluate, print results, stop everything
  train      the same as run
  up         start a local cluster in the background
  down       stop the cluster 'up' started
  status     show the job's state, loss, throughput and evaluation
  gen-data   write the synthetic Criteo-like data set as a TSV file
  export     write a servable model version from a checkpoint
  serve      serve exported model versions (TensorFlow Serving gRPC API + REST)
  predict    send examples to a serving replica and print the probabilities
  bench      run the benchmarks (data pipeline, trainer, tables, serving) and print figures

Run 'pangea <command> --help' for a command's flags.
`;

function statusArgs(argv: string[]): { address?: string; json: boolean } {
  let addr: string | undefined;
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--json") json = true;
    else if (argv[i] === "--orchestrator") {
      const v = argv[++i];
      const ok = address.safeParse(v);
      if (!ok.success) throw new UsageError(`invalid --orchestrator: expected host:port, got '${v ?? ""}'`);
      addr = v;
    } else throw new UsageError(`unknown flag '${argv[i]}' for status`);
  }
  return { address: addr, json };
}

const USAGE: Record<string, () => string> = {
  run: runUsage,
  train: () => runUsage().replace("pangea run", "pangea train"),
  up: () => runUsage().replace("pangea run", "pangea up"),
  down: () => usageText("pangea down", "Stop the local cluster 'pangea up' started.", {}),
  status: () => usageText("pangea status", "Show the job's state. Flags: --orchestrator host:port (default: the cluster 'up' started), --json.", {}),
  predict: predictUsage,
};

runMain("pangea", async () => {
  const [command, ...rest] = process.argv.slice(2);
  let code = 0;
  try {
    switch (command) {
      case "run":
      case "train":
      case "up": {
        const config = parseRun(rest);
        if (!config) {
          process.stdout.write(runUsage().replace("pangea run", `pangea ${command}`));
          return;
        }
        code = command === "up" ? await upCommand(config) : await runCommand(config);
        break;
      }
      case "predict":
        code = await predictCommand(rest);
        break;
      case "bench":
        code = benchCommand(rest);
        break;
      case "down":
        if (rest.includes("--help")) {
          process.stdout.write(usageText("pangea down", "Stop the local cluster 'pangea up' started (every process it launched).", {}));
          return;
        }
        if (rest.length) throw new UsageError(`unknown argument '${rest[0]}' for down`);
        code = await downCommand();
        break;
      case "status": {
        if (rest.includes("--help")) {
          process.stdout.write(usageText("pangea status", "Show the job's state. Flags: --orchestrator host:port (default: the cluster 'up' started), --json.", {}));
          return;
        }
        const a = statusArgs(rest);
        code = await statusCommand(a.address, a.json);
        break;
      }
      case "gen-data":
        code = genDataCommand(rest);
        break;
      case "export":
        code = exportCommand(rest);
        break;
      case "serve":
        code = serveCommand(rest);
        break;
      case undefined:
      case "--help":
      case "help":
        process.stdout.write(COMMANDS);
        return;
      default:
        throw new UsageError(`unknown command '${command}'`);
    }
  } catch (err) {
    if (err instanceof UsageError && command && USAGE[command]) {
      // One line naming the problem, then the command's usage.
      process.stderr.write(`pangea ${command}: ${err.message}\n\n${USAGE[command]!()}`);
      process.exit(2);
    }
    if (err instanceof ClusterError) {
      process.stderr.write(`pangea ${command}: ${err.message}\n`);
      process.exit(err.exitCode);
    }
    throw err;
  }
  process.exitCode = code;
}, () => COMMANDS);
