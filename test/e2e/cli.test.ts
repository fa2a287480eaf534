import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { connect, createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { SERVICE_MALLOC_ENV } from "@pangea/kit";
import { ENTRY, closedPort, lastLine, runNode, waitFor } from "../support/processes.js";
import { processExists as alive, processStartTime } from "@pangea/kit";

/** `pangea serve` on an empty model base path, ports 0: the CLI process, its collected output (ready line on stdout, the server's pid in its log on stderr) and its exit. */
function startServe(base = mkdtempSync(join(tmpdir(), "pangea-cli-serve-"))): { cli: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const cli = spawn(process.execPath, [ENTRY.cli, "serve", "--model-base-path", base, "--port", "0", "--rest-port", "0"], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  cli.stdout!.on("data", (d: Buffer) => (out += d));
  cli.stderr!.on("data", (d: Buffer) => (out += d));
  const exited = new Promise<number | null>((resolve) => cli.once("exit", (c) => resolve(c)));
  return { cli, output: () => out, exited };
}

function accepts(address: string): Promise<boolean> {
  const [host, port] = address.split(":");
  return new Promise((resolve) => {
    const s = connect(Number(port), host!, () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

describe("the pangea command as a new user meets it", () => {
  // The checks that only run a command to its exit are independent processes: they run side by side (it.concurrent).
  it.concurrent.for(["run", "train", "up", "down", "status", "gen-data", "export", "serve", "predict", "bench"])("pangea %s --help prints its own usage and exits 0", async (cmd, { expect }) => {
    const r = await runNode(ENTRY.cli, [cmd, "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout.split("\n")[0]).toBe(cmd === "bench" ? "Usage: pangea bench [records]" : `Usage: pangea ${cmd} [flags]`);
    // No command shows an empty flag list.
    expect(r.stdout).not.toContain("Flags:\n\n");
  });

  it.concurrent("up describes up, not run; run's --format lists parquet and --metrics-port", async ({ expect }) => {
    const up = await runNode(ENTRY.cli, ["up", "--help"]);
    expect(up.stdout.split("\n")[2]).toBe(
      "Start a local cluster (orchestrator, compute, trainers) in the background and return once every process is ready; the job trains on. Follow it with 'pangea status', stop it with 'pangea down'.",
    );
    expect(up.stdout).not.toContain("--json");
    const run = await runNode(ENTRY.cli, ["run", "--help"]);
    expect(run.stdout.split("\n")[2]).toBe("Start a local cluster (orchestrator, compute, trainers), train, evaluate, print the results and stop every process.");
    const lines = run.stdout.split("\n");
    expect(lines).toContain("  --format <value>             criteo (TSV), instance, example, examplebatch or parquet (default criteo)");
    expect(lines).toContain("  --metrics-port <value>       orchestrator's HTTP port: /metrics and the dashboard at / (0 = any free port) (default 0)");
    expect(up.stdout.split("\n")).toContain("  --metrics-port <value>       orchestrator's HTTP port: /metrics and the dashboard at / (0 = any free port) (default 0)");
  });

  it.concurrent("status lists --orchestrator, --json and --tls-dir as flags; down lists only --help", async ({ expect }) => {
    const status = await runNode(ENTRY.cli, ["status", "--help"]);
    expect(status.stdout).toBe(
      [
        "Usage: pangea status [flags]",
        "",
        "Show the job's state, loss, throughput and evaluation.",
        "",
        "Flags:",
        "  --orchestrator <value>       the orchestrator's host:port (default: the cluster 'pangea up' started)",
        "  --json                       print the job status as JSON",
        "  --tls-dir <value>            the cluster's certificates (pangea certs): call with admin.crt (default: the directory 'pangea up --tls' used)",
        "  --help                       show this help",
        "",
      ].join("\n"),
    );
    const down = await runNode(ENTRY.cli, ["down", "--help"]);
    expect(down.stdout).toBe(
      ["Usage: pangea down [flags]", "", "Stop the local cluster 'pangea up' started (every process it launched).", "", "Flags:", "  --help                       show this help", ""].join("\n"),
    );
  });

  it.concurrent("the top-level help names every format gen-data writes", async ({ expect }) => {
    const r = await runNode(ENTRY.cli, ["--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout.split("\n")).toContain("  gen-data   write the synthetic Criteo-like data set: Criteo TSV, Monolith Instance/Example/ExampleBatch or Parquet");
    const gen = await runNode(ENTRY.cli, ["gen-data", "--help"]);
    expect(gen.stdout.split("\n")[2]).toBe("Write the built-in synthetic Criteo-like data set as a Criteo TSV file, Monolith Instance/Example/ExampleBatch records or a Parquet file.");
  });

  it.concurrent.for(["run", "up"])("%s with a --log-dir that cannot be made: one line naming the flag, exit 2, nothing started", async (cmd, { expect }) => {
    const file = join(mkdtempSync(join(tmpdir(), "pangea-cli-logdir-")), "a-file");
    writeFileSync(file, "");
    const r = await runNode(ENTRY.cli, [cmd, "--log-dir", join(file, "logs")], { cwd: dirname(file) });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`pangea ${cmd}: invalid --log-dir: ${file} (in ${join(file, "logs")}'s path) is not a directory\nRun 'pangea ${cmd} --help' for usage.\n`);
    expect(existsSync(join(dirname(file), ".pangea"))).toBe(false);
  });

  it.concurrent("certs --workers: a name given twice, or a role's or the CA's name, is refused before any file is written", async ({ expect }) => {
    const out = join(mkdtempSync(join(tmpdir(), "pangea-cli-certs-")), "tls");
    for (const [workers, message] of [
      ["trainer:x,compute:x", "worker x is named twice (each gets one certificate, x.crt)"],
      ["trainer:admin", "worker name admin is the name of a role's or the CA's certificate (admin.crt); give the worker another name"],
      ["trainer:ca", "worker name ca is the name of a role's or the CA's certificate (ca.crt); give the worker another name"],
    ]) {
      const r = await runNode(ENTRY.cli, ["certs", "--out", out, "--workers", workers!]);
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(`pangea certs: invalid --workers: ${message}\nRun 'pangea certs --help' for usage.\n`);
    }
    expect(existsSync(out)).toBe(false);
  });

  it.concurrent("no command: the command list on stderr, exit 2 (a script's empty $cmd is an error, not help)", async ({ expect }) => {
    const r = await runNode(ENTRY.cli, []);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr.split("\n")[0]).toBe("Usage: pangea <command> [flags]");
  });

  it("pangea run whose reader goes away (| head -1) ends as by SIGPIPE, 141, with no Node error, and its services stop", async () => {
    const cwd = mkdtempSync(join(tmpdir(), "pangea-cli-epipe-"));
    // Its services run in its working directory: every process there is one it started.
    const inCwd = () => readdirSync("/proc").filter((p) => /^\d+$/.test(p)).filter((p) => {
      try {
        return readlinkSync(`/proc/${p}/cwd`) === cwd;
      } catch {
        return false;
      }
    });
    const run = spawn(process.execPath, [ENTRY.cli, "run", "--steps", "5000", "--batch-size", "64", "--log-dir", "logs"], { cwd, stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    run.stderr!.on("data", (d: Buffer) => (err += d));
    // As head -1 does: read the first line, then close the pipe; the next write meets a pipe with no reader.
    run.stdout!.once("data", () => run.stdout!.destroy());
    const code = await new Promise<number | null>((resolve) => run.once("exit", (c) => resolve(c)));
    expect(code).toBe(141);
    expect(err).toBe("");
    expect(readdirSync(join(cwd, "logs")).some((f) => f === "orchestrator.log")).toBe(true);
    await waitFor("the services it started to stop", async () => inCwd().length === 0, 15_000, 100);
  }, 60_000);

  /** A long pangea run checkpointing every 5 steps, once it has written its first checkpoint. */
  async function runToFirstCheckpoint(jobId: string) {
    const cwd = mkdtempSync(join(tmpdir(), `pangea-cli-${jobId}-`));
    const run = spawn(process.execPath, [ENTRY.cli, "run", "--steps", "100000", "--batch-size", "64", "--checkpoint-every-steps", "5", "--job-id", jobId, "--log-dir", "logs", "--checkpoint-dir", join(cwd, "ckpt")], { cwd, stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    run.stderr!.on("data", (d: Buffer) => (err += d));
    const exited = new Promise<number | null>((resolve) => run.once("exit", (c) => resolve(c)));
    const log = join(cwd, "logs", "orchestrator.log");
    try {
      await waitFor("a checkpoint", async () => existsSync(log) && readFileSync(log, "utf8").includes('"checkpoint saved"'), 60_000, 100);
    } catch (e) {
      run.kill("SIGKILL");
      throw e;
    }
    return { run, exited, cwd, jobDir: join(cwd, "ckpt", jobId), stderrLines: () => err.trim().split("\n") };
  }

  it("pangea run interrupted (SIGINT) mid-job: exit 130, its services stop, and it says where the job's checkpoints are and how to go on, also when resumed and interrupted before a checkpoint of its own", async () => {
    const { run, exited, cwd, jobDir, stderrLines } = await runToFirstCheckpoint("interrupted");
    try {
      run.kill("SIGINT");
      expect(await exited).toBe(130);
      expect(stderrLines().at(-1)).toMatch(new RegExp(`^pangea run: interrupted; checkpoints of job interrupted are in ${jobDir} \\(newest written: step-\\d+\\); the same command with --resume --job-id interrupted continues from the newest intact one$`));
    } finally {
      run.kill("SIGKILL");
    }
    const newest = Math.max(...readdirSync(jobDir).filter((d) => /^step-\d+$/.test(d)).map((d) => Number(d.slice(5))));
    // Resumed, with no checkpoint due before it is interrupted: the one it resumed from is where the job goes on.
    const again = spawn(process.execPath, [ENTRY.cli, "run", "--steps", "100000", "--batch-size", "64", "--checkpoint-every-steps", "100000", "--resume", "--job-id", "interrupted", "--log-dir", "logs", "--checkpoint-dir", join(cwd, "ckpt")], { cwd, stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    again.stderr!.on("data", (d: Buffer) => (err += d));
    const code = new Promise<number | null>((resolve) => again.once("exit", (c) => resolve(c)));
    try {
      const log = join(cwd, "logs", "orchestrator.log");
      // The first run's log is there too until this run's orchestrator starts its own: only this one says "resuming".
      await waitFor("the resumed job to train", async () => existsSync(log) && /"resuming"[^]*"job started"/.test(readFileSync(log, "utf8")), 60_000, 100);
      again.kill("SIGINT");
      expect(await code).toBe(130);
      expect(err.trim().split("\n").at(-1)).toBe(`pangea run: interrupted; checkpoints of job interrupted are in ${jobDir} (newest written: step-${newest}); the same command with --resume --job-id interrupted continues from the newest intact one`);
    } finally {
      again.kill("SIGKILL");
    }
  }, 150_000);

  // The job's directory made immutable after its first checkpoint (chattr +i, as root on a file system that has the attribute):
  // the next checkpoint cannot be written, as on a full disk.
  it("a checkpoint that cannot be written fails the job (CHECKPOINT_IO, exit 1), and pangea run says how the earlier ones carry it on", async (ctx) => {
    const { run, exited, jobDir, stderrLines } = await runToFirstCheckpoint("ckio");
    try {
      if (spawnSync("chattr", ["+i", jobDir]).status !== 0) ctx.skip();
      expect(await exited).toBe(1);
      expect(stderrLines().at(-2)).toMatch(/^pangea run: job failed: ORCH_ERR_CHECKPOINT_IO: /);
      expect(stderrLines().at(-1)).toMatch(new RegExp(`^pangea run: checkpoints of job ckio are in ${jobDir} \\(newest written: step-\\d+\\); the same command with --resume --job-id ckio continues from the newest intact one$`));
    } finally {
      spawnSync("chattr", ["-i", jobDir]);
      run.kill("SIGKILL");
    }
  }, 90_000);

  // A 10 MB tmpfs (mounted as root; skipped elsewhere) holds this job's checkpoints of steps 50, 100 and 150 (2.5, 3.0
  // and 3.3 MB) but not step 200's (3.4 MB).
  it("a full disk fails the job (CHECKPOINT_IO, ENOSPC), and the hint says to make room first: resumed with the older ones removed, the job completes", async (ctx) => {
    const cwd = mkdtempSync(join(tmpdir(), "pangea-cli-full-"));
    const ckpt = join(cwd, "ckpt");
    mkdirSync(ckpt);
    if (spawnSync("mount", ["-t", "tmpfs", "-o", "size=10m", "tmpfs", ckpt]).status !== 0) ctx.skip();
    try {
      const args = ["run", "--steps", "200", "--batch-size", "128", "--eval-records", "500", "--job-id", "full", "--checkpoint-every-steps", "50", "--checkpoint-dir", ckpt];
      const r = await runNode(ENTRY.cli, [...args, "--log-dir", join(cwd, "logs")], { timeoutMs: 150_000, stopSignal: "SIGTERM", cwd });
      expect(r.code, r.stderr).toBe(1);
      const lines = r.stderr.trimEnd().split("\n");
      expect(lines.at(-2), r.stderr).toMatch(/^pangea run: job failed: ORCH_ERR_CHECKPOINT_IO: cannot write checkpoint .*step-\d+: ENOSPC/);
      const jobDir = join(ckpt, "full");
      const steps = readdirSync(jobDir).filter((d) => /^step-\d+$/.test(d)).map((d) => Number(d.slice(5))).sort((a, b) => a - b);
      expect(lines.at(-1)).toBe(
        `pangea run: checkpoints of job full are in ${jobDir} (newest written: step-${steps.at(-1)}); free space there first, e.g. by removing its oldest step-N directories (a new checkpoint is written whole before the oldest beyond --keep-checkpoints is removed, so the disk must hold one more than --keep-checkpoints; a lower --keep-checkpoints keeps it from filling again); then the same command with --resume --job-id full continues from the newest intact one`,
      );
      for (const step of steps.slice(0, -1)) rmSync(join(jobDir, `step-${step}`), { recursive: true });
      const again = await runNode(ENTRY.cli, [...args, "--resume", "--keep-checkpoints", "2", "--log-dir", join(cwd, "logs-again")], { timeoutMs: 150_000, stopSignal: "SIGTERM", cwd });
      expect(again.code, again.stderr).toBe(0);
      expect(readdirSync(jobDir)).toContain("step-200");
    } finally {
      spawnSync("umount", [ckpt]);
    }
  }, 330_000);

  it("the job's checkpoint directory removed mid-job fails it as CHECKPOINT_IO naming the directory (it read as another run's lock)", async () => {
    const { run, exited, jobDir, stderrLines } = await runToFirstCheckpoint("ckgone");
    try {
      rmSync(jobDir, { recursive: true, force: true });
      // The lock's file is looked at every 10 s, and before each checkpoint (here every 5 steps, so that comes first).
      expect(await exited).toBe(1);
      expect(stderrLines().find((l) => l.startsWith("pangea run: job failed:"))).toMatch(new RegExp(`^pangea run: job failed: ORCH_ERR_CHECKPOINT_IO: the job's checkpoint directory ${jobDir} was removed or cannot be read while the job ran \\(${jobDir}/orchestrator.lock is gone`));
      // No checkpoint made the directory again, unguarded (the next ones had, until the lock's check saw it gone).
      expect(existsSync(jobDir)).toBe(false);
    } finally {
      run.kill("SIGKILL");
    }
  }, 90_000);

  // Raw feature values by name, which REST takes and pangea predict does not.
  const rawInput = join(mkdtempSync(join(tmpdir(), "pangea-cli-raw-")), "raw.json");
  writeFileSync(rawInput, JSON.stringify({ instances: [{ I1: 1, C1: ["x", null] }] }));
  // Rows of different widths and no rows: named by the CLI, before serving sees a tensor that does not fill its shape.
  const oddInput = join(dirname(rawInput), "odd.json");
  writeFileSync(oddInput, JSON.stringify({ instances: [{ dense_features: [1, 2], feature_ids: [1] }, { dense_features: [1], feature_ids: [2] }] }));
  const emptyInput = join(dirname(rawInput), "empty.json");
  writeFileSync(emptyInput, JSON.stringify({ instances: [] }));
  // Not JSON, over two lines: the parser's message quotes the text, and the error stays one line.
  const notJson = join(dirname(rawInput), "not-json.txt");
  writeFileSync(notJson, "hello\nworld");
  // A hostile input: a cell's list holding a list nested 5,000 deep (JSON.stringify of it for the message overflowed the stack).
  const deepInput = join(dirname(rawInput), "deep.json");
  writeFileSync(deepInput, `{"instances":[{"dense_features":[1,2],"feature_ids":[[${"[".repeat(5000)}${"]".repeat(5000)}]]}]}`);
  // A key given twice: JSON.parse would predict the second list alone (serving's REST refuses the same body).
  const twiceInput = join(dirname(rawInput), "twice.json");
  writeFileSync(twiceInput, '{"instances":[{"dense_features":[1,2],"feature_ids":[1]}],"instances":[{"dense_features":[3,4],"feature_ids":[2]}]}');
  const longIdInput = join(dirname(rawInput), "long-id.json");
  writeFileSync(longIdInput, JSON.stringify({ instances: [{ dense_features: [1, 2], feature_ids: ["7".repeat(100_000)] }] }));
  // dense_features values that are no number: checked by the CLI as REST checks them (a list nested 100,000 deep had failed inside gRPC's serializer as INTERNAL).
  const denseInput = (name: string, cell: string) => {
    const file = join(dirname(rawInput), `${name}.json`);
    writeFileSync(file, `{"instances":[{"dense_features":[1,2],"feature_ids":[1]},{"dense_features":[3,${cell}],"feature_ids":[2]}]}`);
    return file;
  };
  // The body's outline, checked in the words REST uses (schema's predictBodyProblem): a misspelt key had been ignored, both forms reported as no examples.
  const bodyInput = (name: string, body: unknown) => {
    const file = join(dirname(rawInput), `${name}.json`);
    writeFileSync(file, JSON.stringify(body));
    return file;
  };
  // A lone surrogate as raw bytes (ED A0 80): REST refuses such a body, and so does pangea predict (it had sent it).
  const notUtf8 = join(dirname(rawInput), "not-utf8.json");
  writeFileSync(notUtf8, Buffer.concat([Buffer.from('{"instances":[{"dense_features":[1,2],"feature_ids":[1]}],"x":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}')]));
  const validInput = join(dirname(rawInput), "valid.json");
  writeFileSync(validInput, JSON.stringify({ instances: [{ dense_features: [1, 2], feature_ids: [1] }] }));

  it.concurrent.for([
    [["predict", "--input", rawInput], `pangea predict: invalid --input: feature "C1" of example 0 has a null in its list, which a gRPC tensor cannot carry (a null for the whole feature is sent as no values); serving's REST API reads it as missing (curl -d @file http://<rest address>/v1/models/<name>:predict)`],
    [["run", "--steps", "abc"], 'pangea run: invalid --steps: expected a positive number of steps: a whole number from 1 to 2^53 - 1, got "abc"'],
    [["train", "--steps=-3"], 'pangea train: invalid --steps: expected a positive number of steps: a whole number from 1 to 2^53 - 1, got "-3"'],
    [["up", "--trainers", "0"], 'pangea up: invalid --trainers: expected a positive number of trainers: a whole number from 1 to 256, got "0"'],
    [["up", "--json"], "pangea up: --json is for 'pangea run'; after 'pangea up', 'pangea status --json' prints the job status as JSON"],
    [["run", "--metrics-port", "70000"], 'pangea run: invalid --metrics-port: expected a port 0..65535, got "70000"'],
    [["up", "--orchestrator-port", "7000", "--compute-port", "7000"], "pangea up: invalid --compute-port: expected a port other than --orchestrator-port's (7000): each service binds its own"],
    [["run", "--compute-port", "7001", "--metrics-port", "7001"], "pangea run: invalid --metrics-port: expected a port other than --compute-port's (7001): each service binds its own"],
    [["status", "--frobnicate"], "pangea status: Unknown option '--frobnicate'"],
    [["status", "--orchestrator", "nohostport"], `pangea status: invalid --orchestrator: expected host:port (a port 1..65535), got "nohostport"`],
    [["status", "--orchestrator", "127.0.0.1:99999"], `pangea status: invalid --orchestrator: expected host:port (a port 1..65535), got "127.0.0.1:99999"`],
    [["predict", "--address", "127.0.0.1:65536"], 'pangea predict: invalid --address: expected host:port (a port 1..65535), got "127.0.0.1:65536"'],
    [["run", "--serving-sync", "127.0.0.1:8500,127.0.0.1:99999"], 'pangea run: invalid --serving-sync: expected host:port[,host:port...] (ports 1..65535), or discovery:<model> (the --model-name of the serving replicas to find in etcd), got "127.0.0.1:8500,127.0.0.1:99999"'],
    [["run", "--serving-sync", "discovery:ctr"], "pangea run: invalid --serving-sync: discovery:<model> lists the serving replicas in etcd, which the local cluster does not use; name the replicas (host:port[,...])"],
    [["run", "--job-id", ".."], "pangea run: invalid --job-id: expected a name, not '.' or '..' (the job's checkpoints go in a directory of that name)"],
    [["run", "--job-id", "."], "pangea run: invalid --job-id: expected a name, not '.' or '..' (the job's checkpoints go in a directory of that name)"],
    [["down", "extra"], "pangea down: Unexpected argument 'extra'. This command does not take positional arguments"],
    // Every command words an unknown flag alike (status and down read theirs by hand, each its own way).
    [["down", "--frobnicate"], "pangea down: Unknown option '--frobnicate'"],
    [["run", "--frobnicate"], "pangea run: Unknown option '--frobnicate'"],
    [["predict", "--input", "/nonexistent.json"], "pangea predict: invalid --input: /nonexistent.json is missing"],
    [["predict", "--input", "/dev/zero"], "pangea predict: invalid --input: /dev/zero is a device, not a regular file"],
    [["predict", "--input", oddInput], "pangea predict: invalid --input: dense_features of example 1 has 1 value; example 0 has 2"],
    [["predict", "--input", emptyInput], "pangea predict: invalid --input: no examples; give at least one"],
    [["predict", "--input", deepInput], "pangea predict: invalid --input: feature_ids of example 0, slot #0: a list inside the cell's list of ids; a cell is one id or one list of ids"],
    [["predict", "--input", longIdInput], `pangea predict: invalid --input: feature_ids of example 0, slot #0: feature id "${"7".repeat(64)}… (${100_000 - 64} more chars)" is not a 64-bit integer (-2^63 .. 2^64 - 1; send ids at or beyond ±2^53 as strings)`],
    [["predict", "--input", denseInput("dense-deep", `${"[".repeat(100_000)}${"]".repeat(100_000)}`)], "pangea predict: invalid --input: dense_features of example 1, value 1 must be a number, got a list"],
    [["predict", "--input", denseInput("dense-null", "null")], "pangea predict: invalid --input: dense_features of example 1, value 1 must be a number, got null"],
    [["predict", "--input", denseInput("dense-string", '"4\\n"')], 'pangea predict: invalid --input: dense_features of example 1, value 1 must be a number, got the string "4\\n"'],
    [["predict", "--input", bodyInput("both", { inputs: { dense_features: [[1, 2]], feature_ids: [[1]] }, instances: [] })], 'pangea predict: invalid --input: the body has both "inputs" and "instances"; give one of them'],
    [["predict", "--input", bodyInput("misspelt", { instances: [{ dense_features: [1, 2], feature_ids: [1] }], instancs: 1 })], 'pangea predict: invalid --input: unknown key "instancs" in the body; a predict body takes "instances" or "inputs", and optionally "signature_name"'],
    [["predict", "--input", bodyInput("filter", { instances: [{ dense_features: [1, 2], feature_ids: [1] }], output_filter: ["x"] })], 'pangea predict: invalid --input: unknown key "output_filter" in the body; a predict body takes "instances" or "inputs", and optionally "signature_name" (output_filter is gRPC\'s; pangea predict answers every output)'],
    [["predict", "--input", bodyInput("row-list", { instances: [[1, 2]] })], "pangea predict: invalid --input: instance 0 must be an object of named inputs, got a list"],
    [["predict", "--input", twiceInput], `pangea predict: invalid --input: ${twiceInput} gives "instances" twice in one object; JSON.parse would keep only the last: give each key once`],
    [["predict", "--input", validInput, "--timeout-ms", "86400001"], 'pangea predict: invalid --timeout-ms: expected at most 86400000 milliseconds (a day), got "86400001"'],
    [["predict", "--input", notUtf8], `pangea predict: invalid --input: ${notUtf8} is not UTF-8 text; JSON must be UTF-8`],
    [["run", "--heartbeat-ms", "3000000000"], `pangea run: invalid --heartbeat-ms: expected at most 2147483647 ms (about 24.8 days, Node's timer limit), got "3000000000"`],
    [["gen-data", "--out", join(dirname(rawInput), "seeded.tsv"), "--seed", "4294967296"], 'pangea gen-data: invalid --seed: expected a seed below 2^32 (seeds are 32-bit), got "4294967296"'],
    [["gen-data", "--out", join(dirname(rawInput), "same.tsv"), "--feature-list-out", join(dirname(rawInput), ".", "same.tsv")], `pangea gen-data: --feature-list-out ${join(dirname(rawInput), "same.tsv")} is --out's file too; give the feature list its own path`],
    // A flag typed with an ESC and a bidi override is echoed escaped, on one line.
    [["run", "--a\u001b[31m\u202eb"], "pangea run: Unknown option '--a\\x1b[31m\\u{202e}b'"],
    [["run", "--seed", ""], 'pangea run: invalid --seed: expected a seed: a whole number from 0 to 4294967295, got ""'],
    [["export", "--checkpoint", "/nonexistent", "--out", tmpdir(), "--version", "0x10"], 'pangea export: invalid --version: expected a version number: a whole number from 1 to 2^53 - 1, got "0x10"'],
    [["predict", "--input", notJson], `pangea predict: invalid --input: ${notJson} is not JSON: Unexpected token 'h', "hello\\nworld" is not valid JSON`],
    [["predict", "--input", validInput, "--tls-dir", "/nonexistent-tls"], "pangea predict: invalid --tls-dir: cannot read the cluster CA /nonexistent-tls/ca.crt (ENOENT)"],
    [["status", "--orchestrator", "127.0.0.1:1", "--tls-dir", "/nonexistent-tls"], "pangea status: invalid --tls-dir: cannot read the cluster CA /nonexistent-tls/ca.crt (ENOENT)"],
    [["bench", "x"], 'pangea bench: expected a number of records, a whole number from 1 to 999999999; got "x"'],
    [["bench", "0"], 'pangea bench: expected a number of records, a whole number from 1 to 999999999; got "0"'],
    [["bench", "5", "6"], "pangea bench: expected at most one argument, a number of records; got 2: 5 6"],
    [["certs", "--out", validInput], `pangea certs: invalid --out: ${validInput} is not a directory`],
    [["run", "--tls", "--tls-dir", validInput], `pangea run: invalid --tls-dir: ${validInput} is not a directory`],
    [["gen-data", "--records", "5"], "pangea gen-data: invalid --out: expected a file path"],
    [["export", "--frobnicate"], "pangea export: Unknown option '--frobnicate'"],
    [["serve", "--frobnicate"], "pangea serve: Unknown option '--frobnicate'"],
  ] as const)("pangea %j: the one error line and a pointer to --help, exit 2", async ([args, line], { expect }) => {
    const r = await runNode(ENTRY.cli, [...args]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(`${line}\nRun 'pangea ${args[0]} --help' for usage.\n`);
  });

  // The model's flags are checked by pangea run before it starts any process (the orchestrator's line had come after
  // "starting 2 trainers, 1 compute, 1 orchestrator"), as the orchestrator reads them: flags, then the environment.
  it.concurrent("pangea run refuses a bad model config before starting anything, naming a variable the environment gave", async ({ expect }) => {
    const dir = mkdtempSync(join(tmpdir(), "pangea-cli-model-config-"));
    writeFileSync(join(dir, "inf.json"), '{"crossLayers": 1e400}');
    writeFileSync(join(dir, "yaml.json"), "crossLayers: 2\n");
    const logs = join(dir, "logs");
    const inf = await runNode(ENTRY.cli, ["run", "--model", "dcn-v2", "--model-config", join(dir, "inf.json"), "--log-dir", logs]);
    expect([inf.code, inf.stdout, inf.stderr]).toEqual([2, "", `pangea run: MODEL_ERR_BAD_SPEC: model dcn-v2 field crossLayers: expected a finite number, got Infinity (from ${join(dir, "inf.json")})\nRun 'pangea run --help' for usage.\n`]);
    const env = await runNode(ENTRY.cli, ["run", "--log-dir", logs], { env: { PANGEA_MODEL_CONFIG: join(dir, "yaml.json") } });
    expect(env.code).toBe(2);
    expect(env.stderr.split("\n")[0]).toMatch(new RegExp(`^pangea run: PANGEA_MODEL_CONFIG \\(environment\\): ${join(dir, "yaml.json")} is not JSON: `));
    expect(existsSync(logs), "no process was started (none wrote a log)").toBe(false);
  });

  it.concurrent("an unknown command points at the top-level help, exit 2", async ({ expect }) => {
    const r = await runNode(ENTRY.cli, ["frobnicate"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("pangea: unknown command 'frobnicate'\nRun 'pangea --help' for usage.\n");
  });

  it.concurrent.for([
    [ENTRY.orchestrator, "pangea-orchestrator"],
    [ENTRY.compute, "pangea-compute"],
    [ENTRY.trainer, "pangea-trainer"],
    [ENTRY.serving, "pangea-serving"],
    [ENTRY.exportModel, "pangea-export"],
  ] as const)("the service binary %s answers a bad flag the same way, under its own name", async ([entry, program], { expect }) => {
    const r = await runNode(entry, ["--frobnicate"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`${program}: Unknown option '--frobnicate'\nRun '${program} --help' for usage.\n`);
  });

  it.each([
    ["SIGTERM", 0],
    ["SIGINT", 0],
    // pangea itself killed: the server reads end-of-file on the pipe it holds from pangea and stops (it held its ports for good before).
    ["SIGKILL", null],
  ] as const)("%s to 'pangea serve' stops the server it started, and pangea exits with the server's code", async (signal, code) => {
    const { cli, output, exited } = startServe();
    try {
      // The ready line carries the ports; the server is the only process here that could bind them.
      const ready = await waitFor("serving's ready line", async () => {
        const line = output().split("\n").find((l) => l.startsWith('{"ready":"serving"'));
        return line && /"pid":\d+/.test(output()) ? (JSON.parse(line) as { address: string; rest: string }) : null;
      }, 20_000);
      const serverPid = Number(/"pid":(\d+)/.exec(output())![1]);
      expect(serverPid).not.toBe(cli.pid);
      expect(await accepts(ready.address)).toBe(true);
      expect(await accepts(ready.rest)).toBe(true);
      cli.kill(signal);
      expect(await exited).toBe(code);
      await waitFor("the server to exit", async () => !alive(serverPid), 5_000);
      expect(await accepts(ready.address)).toBe(false);
      expect(await accepts(ready.rest)).toBe(false);
    } finally {
      cli.kill("SIGKILL");
      const pid = /"pid":(\d+)/.exec(output())?.[1];
      if (pid && alive(Number(pid))) process.kill(Number(pid), "SIGKILL");
    }
  });

  it("a child ended by a signal makes pangea exit with 128 + the signal's number; serving with no version answers predict with why (exit 1, not 'unreachable')", async () => {
    const base = mkdtempSync(join(tmpdir(), "pangea-cli-serve-"));
    const { cli, output, exited } = startServe(base);
    try {
      const ready = await waitFor("serving's ready line", async () => {
        const line = output().split("\n").find((l) => l.startsWith('{"ready":"serving"'));
        return line && /"pid":\d+/.test(output()) ? (JSON.parse(line) as { address: string }) : null;
      }, 20_000);
      const input = join(base, "..", `${base.split("/").at(-1)}-input.json`);
      writeFileSync(input, JSON.stringify({ instances: [{ dense_features: [1], feature_ids: [1] }] }));
      const none = await runNode(ENTRY.cli, ["predict", "--address", ready.address, "--input", input]);
      expect([none.code, none.stderr.trim()]).toEqual([1, `pangea predict: serving at ${ready.address}: UNAVAILABLE: SERVING_ERR_NOT_READY: model "pangea" has no version loaded yet (base path ${base} holds no numbered version)`]);
      process.kill(Number(/"pid":(\d+)/.exec(output())![1]), "SIGKILL");
      expect(await exited).toBe(137);
    } finally {
      cli.kill("SIGKILL");
    }
  });

  it.concurrent("export and --restore-from name a checkpoint path that does not exist as not found, exit 1", async ({ expect }) => {
    const missing = join(mkdtempSync(join(tmpdir(), "pangea-cli-ckpt-")), "step-500");
    const exp = await runNode(ENTRY.cli, ["export", "--checkpoint", missing, "--out", join(tmpdir(), "pangea-cli-never-written")]);
    expect(exp.code).toBe(1);
    expect(exp.stderr).toBe(`pangea export: error ORCH_ERR_CHECKPOINT_NOT_FOUND: checkpoint ${missing} not found\n`);
    const orch = await runNode(ENTRY.orchestrator, ["--port", "0", "--metrics-port", "0", "--restore-from", missing]);
    expect(orch.code).toBe(1);
    expect(orch.stderr.trim().split("\n").at(-1)).toBe(`pangea-orchestrator: error ORCH_ERR_CHECKPOINT_NOT_FOUND: checkpoint ${missing} not found`);
  });

  it.concurrent("a port in use or a file given for a directory: one line naming it, exit 1, no stack", async ({ expect }) => {
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, "127.0.0.1", r));
    const port = (busy.address() as AddressInfo).port;
    try {
      const base = mkdtempSync(join(tmpdir(), "pangea-cli-busy-"));
      const grpcBusy = await runNode(ENTRY.cli, ["serve", "--model-base-path", base, "--port", String(port), "--rest-port", "0"]);
      expect(grpcBusy.code).toBe(1);
      expect(grpcBusy.stderr.trim().split("\n").at(-1)).toBe(`pangea serve: error RPC_ERR_LISTEN: cannot serve gRPC on 127.0.0.1:${port}: address already in use (EADDRINUSE)`);
      // Said once: grpc-js's own log line of the failure ("E No address added ...") is not printed before it.
      expect(grpcBusy.stderr).not.toContain("No address added");
      const restBusy = await runNode(ENTRY.cli, ["serve", "--model-base-path", base, "--port", "0", "--rest-port", String(port)]);
      expect(restBusy.code).toBe(1);
      expect(restBusy.stderr.trim().split("\n").at(-1)).toBe(`pangea serve: error SERVING_ERR_LISTEN: cannot serve REST on 127.0.0.1:${port} (--rest-port): address already in use (EADDRINUSE)`);
      // A service's /metrics port (the orchestrator's dashboard too; trainer and compute on Node's own server).
      const metricsBusy = await runNode(ENTRY.orchestrator, ["--port", "0", "--metrics-port", String(port), "--checkpoint-dir", join(base, "ckpt")]);
      expect(metricsBusy.code).toBe(1);
      expect(metricsBusy.stderr.trim().split("\n").at(-1)).toBe(`pangea-orchestrator: error OBSERVE_ERR_LISTEN: cannot serve /metrics on 127.0.0.1:${port} (--metrics-port): address already in use (EADDRINUSE)`);
      const trainerBusy = await runNode(ENTRY.trainer, ["--port", "0", "--metrics-port", String(port), "--orchestrator", "127.0.0.1:1"]);
      expect(trainerBusy.stderr.trim().split("\n").at(-1)).toBe(`pangea-trainer: error OBSERVE_ERR_LISTEN: cannot serve /metrics on 127.0.0.1:${port} (--metrics-port): address already in use (EADDRINUSE)`);
      for (const r of [grpcBusy, restBusy, metricsBusy, trainerBusy]) expect(r.stderr).not.toMatch(/^\s+at /m);
      const file = join(base, "a-file");
      writeFileSync(file, "x");
      const notDir = await runNode(ENTRY.cli, ["serve", "--model-base-path", file, "--port", "0", "--rest-port", "0"]);
      expect(notDir.code).toBe(2);
      expect(notDir.stderr).toBe(`pangea serve: invalid --model-base-path: ${file} is not a directory (expected the directory pangea export writes numbered versions to)\nRun 'pangea serve --help' for usage.\n`);
    } finally {
      busy.close();
    }
  });

  it.concurrent("--export-dir or --checkpoint-dir that cannot be written stops the orchestrator at start, exit 2, instead of losing the work at the end", async ({ expect }) => {
    const dir = mkdtempSync(join(tmpdir(), "pangea-cli-export-"));
    const file = join(dir, "a-file");
    writeFileSync(file, "x");
    // A symbolic link to nothing: mkdir would fail there at the end.
    const dangling = join(dir, "dangling");
    symlinkSync(join(dir, "nowhere", "deeper"), dangling);
    // The checkpoints go in <checkpoint-dir>/<job-id>: checked there (the job id is "j" here).
    const job = (target: string, flag: string) => (flag === "--checkpoint-dir" ? join(target, "j") : target);
    for (const flag of ["--export-dir", "--checkpoint-dir"]) {
      const cases: [string, string][] = [
        [file, flag === "--checkpoint-dir" ? `${file} (in ${join(file, "j")}'s path) is not a directory` : `${file} is not a directory`],
        [join(file, "models"), `${file} (in ${job(join(file, "models"), flag)}'s path) is not a directory`],
        [dangling, `${dangling} is a symbolic link to ${join(dir, "nowhere", "deeper")}, which does not exist`],
      ];
      // Root passes access(2) on /proc, where nothing can be made (and Node's recursive mkdir spins forever): tried, not assumed.
      if (existsSync("/proc/self")) cases.push(["/proc/pangea-nope", `/proc, where ${job("/proc/pangea-nope", flag)} would be made, is not writable (ENOENT)`]);
      for (const [target, line] of cases) {
        const r = await runNode(ENTRY.orchestrator, ["--port", "0", "--metrics-port", "0", "--job-id", "j", flag, target], { cwd: dir });
        expect(r.code).toBe(2);
        expect(r.stderr).toBe(`pangea-orchestrator: ${flag}: ${line}\nRun 'pangea-orchestrator --help' for usage.\n`);
      }
    }
    // A file where the job's own checkpoint directory goes.
    const ckpt = join(dir, "ckpt");
    mkdirSync(ckpt);
    writeFileSync(join(ckpt, "j"), "x");
    const r = await runNode(ENTRY.orchestrator, ["--port", "0", "--metrics-port", "0", "--job-id", "j", "--checkpoint-dir", ckpt], { cwd: dir });
    expect([r.code, r.stderr]).toEqual([2, `pangea-orchestrator: --checkpoint-dir: ${join(ckpt, "j")} is not a directory\nRun 'pangea-orchestrator --help' for usage.\n`]);
    // Nothing was left behind by the checks.
    expect(readdirSync(dir).sort()).toEqual(["a-file", "ckpt", "dangling"]);
    expect(readdirSync(ckpt)).toEqual(["j"]);
  });

  it.concurrent("down stops only the processes up started: a pid reused since by another process is left alone", async ({ expect }) => {
    const cwd = mkdtempSync(join(tmpdir(), "pangea-cli-down-"));
    const other = spawn("sleep", ["60"], { stdio: "ignore" });
    try {
      const pid = other.pid!;
      mkdirSync(join(cwd, ".pangea/run"), { recursive: true });
      // A state file from an earlier cluster whose trainer had this pid: another start time.
      const state = (started: string | null) => JSON.stringify({ orchestrator: "127.0.0.1:1", compute: "127.0.0.1:2", processes: [{ name: "trainer-0", pid, log: "x", started }] });
      writeFileSync(join(cwd, ".pangea/run/cluster.json"), state("1"));
      const reused = await runNode(ENTRY.cli, ["down"], { cwd });
      expect(reused.code).toBe(0);
      expect(reused.stdout).toBe("nothing was running; trainer-0 had already exited\n");
      expect(alive(pid)).toBe(true);
      // The same pid with its own start time is the recorded process: stopped.
      writeFileSync(join(cwd, ".pangea/run/cluster.json"), state(processStartTime(pid)));
      const own = await runNode(ENTRY.cli, ["down"], { cwd });
      expect(own.stdout).toBe("stopped trainer-0\n");
      await waitFor("the recorded process to stop", async () => !alive(pid), 5_000);
    } finally {
      other.kill("SIGKILL");
    }
  });

  it.concurrent("a --best-task the data lacks fails the job at its start, exit 2 as a bad flag, its value escaped in the line (it reached the terminal raw)", async ({ expect }) => {
    const dir = mkdtempSync(join(tmpdir(), "pangea-cli-best-task-"));
    const r = await runNode(ENTRY.cli, ["run", "--steps", "2", "--trainers", "1", "--batch-size", "64", "--eval-records", "200", "--eval-every-steps", "1", "--keep-best", "--best-task", "c\x1b[31mred", "--log-dir", join(dir, "logs"), "--checkpoint-dir", join(dir, "ck")], { timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(2);
    expect(lastLine(r.stderr)).toBe("pangea run: job failed: ORCH_ERR_BAD_JOB_CONFIG: --best-task c\\x1b[31mred: the job's tasks are ctr");
    expect(r.stderr).not.toContain("\x1b");
    rmSync(dir, { recursive: true, force: true });
  });

  it.concurrent("an export that fails after training is in the summary and the exit code, with the command that writes it later", async ({ expect }) => {
    const dir = mkdtempSync(join(tmpdir(), "pangea-cli-export-fail-"));
    const models = join(dir, "models");
    const args = (name: string, steps: number, extra: string[] = []) => ["run", "--steps", String(steps), "--batch-size", "64", "--eval-records", "200", "--export-dir", models, "--log-dir", join(dir, name), "--checkpoint-dir", join(dir, `ck-${name}`), ...extra];
    // A feature list of other slots than the data's: the job fails when compute registers, before it trains.
    writeFileSync(join(dir, "features.txt"), "feature_name=f1 slot=99\n");
    const misfit = await runNode(ENTRY.cli, args("misfit", 2, ["--export-feature-list", join(dir, "features.txt")]), { timeoutMs: 120_000 });
    expect(misfit.code).toBe(2);
    expect(misfit.stderr).toMatch(/^pangea run: job failed: ORCH_ERR_BAD_JOB_CONFIG: --export-feature-list .*features\.txt does not fit the job's data: .*slots 99 are not the model's/m);
    // The trainers ended by the job's failure are not reported as lost ones the job goes on without.
    expect(misfit.stdout).not.toContain("the job goes on");
    // The export directory taken away while the job trains (a file in its place): the export at the end fails.
    const run = spawn(process.execPath, [ENTRY.cli, ...args("taken", 40)], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    run.stdout!.on("data", (d: Buffer) => (out += d));
    run.stderr!.on("data", (d: Buffer) => (out += d));
    const code = new Promise<number | null>((resolve) => run.once("exit", resolve));
    await waitFor("the job to start", async () => existsSync(join(dir, "taken", "orchestrator.log")) && readFileSync(join(dir, "taken", "orchestrator.log"), "utf8").includes('"msg":"job started"'), 60_000, 20);
    writeFileSync(models, "a file where the export directory was to be made\n");
    expect(await code).toBe(1);
    expect(out).toMatch(/^ {2}export +FAILED: export to .*models failed: .*; run pangea export --checkpoint .*step-40 --out .*models$/m);
    expect(out).toMatch(/^pangea run: the job completed, but export to .*models failed/m);
    rmSync(models);
    const ok = await runNode(ENTRY.cli, args("ok", 2), { timeoutMs: 120_000 });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout + ok.stderr).toContain(`  export            ${join(models, "1")}\n`);
  }, 240_000);

  it("up prints its addresses and returns; status --json shows compute alive while its session is open; down says what it stopped and what had exited", async () => {
    const cwd = mkdtempSync(join(tmpdir(), "pangea-cli-up-"));
    const metricsPort = await closedPort();
    const pids: number[] = [];
    try {
      // Long enough to be running when status first asks (a second after up returns); the test then waits for its end.
      // Compute within a 64 MB budget (its malloc thresholds scale to it); no malloc settings inherited from this process.
      const up = await runNode(ENTRY.cli, ["up", "--trainers", "2", "--steps", "200", "--batch-size", "64", "--eval-records", "500", "--max-memory-mb", "64", "--metrics-port", String(metricsPort)], {
        cwd,
        timeoutMs: 60_000,
        stopSignal: "SIGTERM",
        // PANGEA_METRICS_PORT, one port, does not reach the services (each would take it): run's --metrics-port is the orchestrator's.
        env: { ...Object.fromEntries(Object.keys(SERVICE_MALLOC_ENV).map((k) => [k, undefined])), PANGEA_METRICS_PORT: String(await closedPort()) },
      });
      const state = JSON.parse(readFileSync(join(cwd, ".pangea/run/cluster.json"), "utf8")) as { orchestrator: string; compute: string; processes: { name: string; pid: number }[] };
      pids.push(...state.processes.map((p) => p.pid));
      expect(up.code).toBe(0);
      expect(state.processes.map((p) => p.name)).toEqual(["orchestrator", "compute", "trainer-0", "trainer-1"]);
      expect(up.stdout).toBe(
        `cluster up: orchestrator ${state.orchestrator}, compute ${state.compute}, dashboard http://127.0.0.1:${metricsPort}/, metrics http://127.0.0.1:${metricsPort}/metrics, 2 trainers\n` +
          "follow with 'pangea status', stop with 'pangea down'; logs in .pangea/logs\n",
      );
      const metrics = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
      expect(metrics.status).toBe(200);
      // The services run with the malloc settings measured for them, compute's an eighth of its budget (8 MB), no huge pages.
      // The orchestrator and compute: both stay up until 'down', while the trainers may have finished already.
      const mallocEnv = (pid: number) => Object.fromEntries(readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]).filter(([k]) => k! in SERVICE_MALLOC_ENV));
      expect(mallocEnv(pids[0]!)).toEqual({ ...SERVICE_MALLOC_ENV });
      expect(mallocEnv(pids[1]!)).toEqual({ MALLOC_MMAP_THRESHOLD_: String(8 << 20), MALLOC_TRIM_THRESHOLD_: String(8 << 20) });
      expect(readFileSync(`/proc/${pids[1]}/environ`, "utf8")).not.toContain("PANGEA_METRICS_PORT=");

      type Status = { state: string; workers: { workerId: string; kind: string; alive: boolean }[] };
      const running = await waitFor("compute's session to open", async () => {
        const r = await runNode(ENTRY.cli, ["status", "--json"], { cwd });
        const s = JSON.parse(r.stdout) as Status;
        return s.state === "JOB_STATE_RUNNING" && s.workers.some((w) => w.kind === "WORKER_KIND_COMPUTE" && w.alive) ? s : null;
      }, 30_000, 300);
      // Trainers are listed in the order they registered.
      expect(running.workers.map((w) => [w.workerId, w.kind, w.alive]).sort()).toEqual([
        ["trainer-0", "WORKER_KIND_TRAINER", true],
        ["trainer-1", "WORKER_KIND_TRAINER", true],
        [running.workers.find((w) => w.kind === "WORKER_KIND_COMPUTE")!.workerId, "WORKER_KIND_COMPUTE", true],
      ].sort());

      // When the job ends the trainers exit; the orchestrator and compute stay up for status until 'down'.
      await waitFor("the trainers to exit after the job", async () => !alive(pids[2]!) && !alive(pids[3]!), 120_000, 500);
      const down = await runNode(ENTRY.cli, ["down"], { cwd });
      expect(down.code).toBe(0);
      expect(down.stdout).toBe("stopped orchestrator, compute; trainer-0, trainer-1 had already exited\n");
      expect(pids.filter(alive)).toEqual([]);
      const again = await runNode(ENTRY.cli, ["down"], { cwd });
      expect(again.stdout).toBe("no local cluster is up\n");
    } finally {
      for (const pid of pids) if (alive(pid)) process.kill(pid, "SIGKILL");
    }
  }, 200_000);

  it.each([
    ["SIGINT", 130],
    ["SIGKILL", null],
  ] as const)("up ended by %s while starting: nothing it started runs on unknown (stopped by up itself, or by down from the processes recorded as spawned)", async (signal, code) => {
    const cwd = mkdtempSync(join(tmpdir(), "pangea-cli-up-stopped-"));
    const state = join(cwd, ".pangea/run/cluster.json");
    const recorded = () => (existsSync(state) ? (JSON.parse(readFileSync(state, "utf8")) as { processes: { name: string; pid: number }[] }).processes : []);
    let pids: number[] = [];
    const up = spawn(process.execPath, [ENTRY.cli, "up", "--trainers", "2", "--steps", "5000", "--batch-size", "64"], { cwd, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    up.stdout!.on("data", (d: Buffer) => (out += d));
    up.stderr!.on("data", (d: Buffer) => (out += d));
    const exited = new Promise<number | null>((resolve) => up.once("exit", (c) => resolve(c)));
    try {
      // Every process spawned (the trainers are the last), none ready yet: up has not returned.
      await waitFor("up to spawn its trainers", async () => recorded().some((p) => p.name === "trainer-1"), 30_000, 20);
      pids = recorded().map((p) => p.pid);
      expect(out).not.toContain("cluster up:");
      up.kill(signal);
      expect(await exited).toBe(code);
      if (signal === "SIGINT") {
        expect(out).toBe("pangea up: interrupted by SIGINT while starting; stopped every process it had started\n");
        expect(existsSync(state)).toBe(false);
      } else {
        // Killed outright it stops nothing; the processes run on, recorded: status says why it has no address or
        // reports the job, and down stops them.
        expect(pids.filter(alive)).toEqual(pids);
        const down = await runNode(ENTRY.cli, ["down"], { cwd });
        expect(down.stdout).toBe("stopped orchestrator, compute, trainer-0, trainer-1\n");
      }
      await waitFor("every process up started to exit", async () => pids.every((pid) => !alive(pid)), 10_000, 100);
    } finally {
      up.kill("SIGKILL");
      // Those recorded since (a failure before the pids were read leaves detached processes otherwise).
      for (const pid of new Set([...pids, ...recorded().map((p) => p.pid)])) if (alive(pid)) process.kill(pid, "SIGKILL");
    }
  }, 60_000);

  it("a cluster.json that is not up's state: status, down and up each say so in one line naming it, exit 1", async () => {
    const cwd = mkdtempSync(join(tmpdir(), "pangea-cli-bad-state-"));
    mkdirSync(join(cwd, ".pangea/run"), { recursive: true });
    for (const text of ["{garbage", '{"orchestrator": "x", "processes": [{"name": "orchestrator", "pid": -1, "log": "l"}]}']) {
      writeFileSync(join(cwd, ".pangea/run/cluster.json"), text);
      for (const cmd of [["status"], ["down"], ["up", "--steps", "10"]]) {
        const r = await runNode(ENTRY.cli, cmd, { cwd });
        expect(r.code, r.stderr).toBe(1);
        expect(r.stderr).toMatch(/^pangea [a-z]+: \.pangea\/run\/cluster\.json is not the state 'pangea up' writes \(.+\): the processes it named cannot be known; stop any left by hand \(ps\) and delete \.pangea\/run\/cluster\.json\n$/);
      }
    }
  });

  it("up's orchestrator killed: status says it exited and how to continue from the job's checkpoints, and down then up --resume does", async () => {
    const cwd = mkdtempSync(join(tmpdir(), "pangea-cli-up-killed-"));
    const args = ["up", "--job-id", "upk", "--steps", "100000", "--batch-size", "64", "--eval-records", "500", "--checkpoint-every-steps", "5"];
    const pids: number[] = [];
    const statePids = () => (JSON.parse(readFileSync(join(cwd, ".pangea/run/cluster.json"), "utf8")) as { processes: { pid: number }[] }).processes.map((p) => p.pid);
    try {
      const up = await runNode(ENTRY.cli, args, { cwd, timeoutMs: 60_000, stopSignal: "SIGTERM" });
      expect(up.code, up.stderr).toBe(0);
      pids.push(...statePids());
      const log = join(cwd, ".pangea/logs/orchestrator.log");
      await waitFor("two checkpoints", async () => readFileSync(log, "utf8").split('"checkpoint saved"').length > 2, 60_000, 100);
      // Compute killed first: the job waits for a compute to register, and status says which process exited and where its log is.
      const computeArgv = readFileSync(`/proc/${pids[1]}/cmdline`, "utf8").split("\0").filter(Boolean);
      process.kill(pids[1]!, "SIGKILL");
      await waitFor("compute to exit", async () => !alive(pids[1]!), 10_000, 50);
      const waiting = await waitFor("status to see compute gone", async () => {
        const r = await runNode(ENTRY.cli, ["status"], { cwd, timeoutMs: 30_000 });
        return r.stdout.includes("  not connected") ? r : null;
      }, 30_000, 200);
      expect(waiting.code).toBe(0);
      expect(waiting.stdout).toMatch(/\n  state +running\n/);
      expect(waiting.stdout.split("\n").filter((l) => l.includes("has exited"))).toEqual([`compute (pid ${pids[1]}), which 'pangea up' started, has exited (log: ${join(cwd, ".pangea/logs/compute.log")})`]);
      // A compute started again by hand (the same command line) serves the job: the line says the job reads from it now.
      const byHand = spawn(computeArgv[0]!, computeArgv.slice(1), { cwd, stdio: "ignore" });
      pids.push(byHand.pid!);
      const replaced = await waitFor("status to see the compute started by hand", async () => {
        const r = await runNode(ENTRY.cli, ["status"], { cwd, timeoutMs: 30_000 });
        return r.stdout.includes("the job reads from") ? r : null;
      }, 60_000, 300);
      expect(replaced.stdout).not.toContain("  not connected");
      expect(replaced.stdout.split("\n").filter((l) => l.includes("has exited"))).toEqual([
        expect.stringMatching(new RegExp(`^compute \\(pid ${pids[1]}\\), which 'pangea up' started, has exited \\(log: .*compute\\.log\\); the job reads from compute \\S+ at \\S+:\\d+ now$`)),
      ]);
      process.kill(pids[0]!, "SIGKILL");
      await waitFor("the orchestrator to exit", async () => !alive(pids[0]!), 10_000, 50);
      const status = await runNode(ENTRY.cli, ["status"], { cwd, timeoutMs: 30_000 });
      expect(status.code).toBe(3);
      const line = lastLine(status.stderr);
      // The checkpoint directory as the orchestrator resolved it: relative to where up ran, as the state file is.
      const quoted = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      expect(line).toMatch(new RegExp(`^${quoted(`pangea status: cannot reach orchestrator at `)}\\S+${quoted(` within 5.0s: connection refused (nothing listens at that port); the orchestrator 'pangea up' started (pid ${pids[0]}) has exited (log: ${log}); checkpoints of job upk are in .pangea/checkpoints/upk (newest written: step-`)}\\d+${quoted(`); 'pangea down', then the same 'pangea up' with --resume --job-id upk, continues from the newest intact one`)}$`));
      const newest = Number(/step-(\d+)\)/.exec(line)![1]);
      // up again before down: not "already up", but what is left and what to do.
      const early = await runNode(ENTRY.cli, [...args, "--resume"], { cwd, timeoutMs: 30_000, stopSignal: "SIGTERM" });
      expect([early.code, lastLine(early.stderr)]).toEqual([1, expect.stringMatching(/^pangea up: the local cluster 'pangea up' started has lost its orchestrator \(pid \d+ has exited; log: .*orchestrator\.log\), and [a-z0-9, -]+ still run; 'pangea down' stops them, then 'pangea up' \(with --resume --job-id J to go on from the job's checkpoints\)$/)]);
      expect((await runNode(ENTRY.cli, ["down"], { cwd })).code).toBe(0);
      const again = await runNode(ENTRY.cli, [...args, "--resume"], { cwd, timeoutMs: 60_000, stopSignal: "SIGTERM" });
      expect(again.code, again.stderr).toBe(0);
      pids.push(...statePids());
      const s = await waitFor("the resumed job", async () => {
        const r = await runNode(ENTRY.cli, ["status", "--json"], { cwd });
        const j = r.code === 0 ? (JSON.parse(r.stdout) as { state: string; resumedFromStep: string }) : null;
        return j?.state === "JOB_STATE_RUNNING" ? j : null;
      }, 60_000, 300);
      expect(Number(s.resumedFromStep)).toBeGreaterThanOrEqual(newest);
      expect((await runNode(ENTRY.cli, ["down"], { cwd })).code).toBe(0);
    } finally {
      for (const pid of pids) if (alive(pid)) process.kill(pid, "SIGKILL");
    }
  }, 200_000);

  it.concurrent.for(["criteo", "instance", "parquet"])("gen-data --format %s to a path that cannot be written exits 2 naming it before any work, and writes nothing", async (format, { expect }) => {
    const tmp = mkdtempSync(join(tmpdir(), "pangea-cli-gen-"));
    writeFileSync(join(tmp, "a-file"), "x");
    symlinkSync(join(tmp, "gone", "data"), join(tmp, "link"));
    for (const [flag, path, line] of [
      ["--out", join(tmp, "link"), `--out ${join(tmp, "link")} is a symbolic link to ${join(tmp, "gone", "data")}, which does not exist`],
      ["--out", join(tmp, "a-file", "data"), `--out ${join(tmp, "a-file", "data")}: ${join(tmp, "a-file")} is not a directory`],
      ["--out", tmp, `--out ${tmp} is a directory; give a file path`],
      ["--out", "/proc/pangea-data", "--out /proc/pangea-data: /proc is not writable (ENOENT)"],
      ["--feature-list-out", "/proc/pangea-list.json", "--feature-list-out /proc/pangea-list.json: /proc is not writable (ENOENT)"],
    ] as const) {
      const out = flag === "--out" ? path : join(tmp, "data");
      const r = await runNode(ENTRY.cli, ["gen-data", "--out", out, "--records", "10", "--format", format, ...(flag === "--out" ? [] : [flag, path])]);
      expect([r.code, r.stdout, r.stderr]).toEqual([2, "", `pangea gen-data: ${line}\nRun 'pangea gen-data --help' for usage.\n`]);
    }
    expect(readdirSync(tmp).sort()).toEqual(["a-file", "link"]);
    // A directory that is not there yet is made, as the checkpoint and export directories are.
    const deep = join(tmp, "new", "dir", "data");
    const r = await runNode(ENTRY.cli, ["gen-data", "--out", deep, "--records", "10", "--format", format]);
    expect([r.code, r.stdout]).toEqual([0, `wrote 10 records to ${deep}\n`]);
  });

  it.for(["instance", "parquet"])("gen-data --format %s: the CLI killed with -9 takes its writer with it, which leaves neither --out nor its partial file", async (format, { expect }) => {
    const tmp = mkdtempSync(join(tmpdir(), "pangea-cli-gen-kill-"));
    const out = join(tmp, "big.data");
    const cli = spawn(process.execPath, [ENTRY.cli, "gen-data", "--out", out, "--records", "5000000", "--format", format], { stdio: "ignore" });
    await waitFor("the partial file", async () => readdirSync(tmp).some((f) => f.startsWith("big.data.partial-")), 30_000, 50);
    cli.kill("SIGKILL");
    // The writer is the CLI's child: gone within moments (5 s for Parquet, whose writer notices between row groups; over
    // 15 s once on a loaded CI machine), its partial file removed as it exits. 5 million records take minutes.
    const writers = () => spawnSync("pgrep", ["-f", out]).stdout.toString().trim();
    await waitFor("the writer to exit", async () => writers() === "", 45_000, 100);
    expect(readdirSync(tmp)).toEqual([]);
    rmSync(tmp, { recursive: true, force: true });
  }, 120_000);

  it.concurrent("a feature list slot the data never fills (fids of another slot number) and a dense feature it never holds (a misspelt name) are warnings in run's summary and status, and the job trains", async ({ expect }) => {
    const tmp = mkdtempSync(join(tmpdir(), "pangea-cli-empty-slot-"));
    const data = join(tmp, "train.pb");
    const list = join(tmp, "list.json");
    expect((await runNode(ENTRY.cli, ["gen-data", "--out", data, "--records", "1000", "--format", "instance", "--feature-list-out", list])).code).toBe(0);
    const config = JSON.parse(readFileSync(list, "utf8")) as { slots: { name: string; slot: number }[]; dense: { name: string }[] };
    config.slots.find((x) => x.name === "C5")!.slot = 905;
    config.dense.find((x) => x.name === "I2")!.name = "I2x";
    const other = join(tmp, "other.json");
    writeFileSync(other, JSON.stringify(config));
    const r = await runNode(
      ENTRY.cli,
      ["run", "--json", "--steps", "2", "--trainers", "1", "--batch-size", "64", "--data", data, "--format", "instance", "--feature-list", other, "--log-dir", join(tmp, "logs"), "--checkpoint-dir", join(tmp, "ckpt")],
      { timeoutMs: 120_000, stopSignal: "SIGTERM" },
    );
    expect(r.code, r.stderr).toBe(0);
    const warning = "slot 'C5' (slot 905) of the feature list holds no id in any of the 1000 records read: it trains on nothing and serving takes it as missing; check the features' names and the slot numbers of the fids against the feature list (1000 ids of slots it does not declare were dropped)";
    const dense = "dense feature 'I2x' of the feature list is 0 or missing in every one of the 1000 records read: it trains on nothing; check the names against the float features the records carry";
    expect((JSON.parse(r.stdout.trim().split("\n").at(-1)!) as { warnings: string[] }).warnings).toEqual([warning, dense]);
    expect(r.stderr.split("\n")).toContain(`  warning           ${warning}`);
    rmSync(tmp, { recursive: true, force: true });
  });

  it("run's summary says what parameter sync did: rows pushed and the version serving acknowledged", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "pangea-cli-sync-"));
    const small = ["--trainers", "1", "--batch-size", "64", "--eval-records", "200", "--checkpoint-dir", join(tmp, "ckpt"), "--log-dir", join(tmp, "logs")];
    const first = await runNode(ENTRY.cli, ["run", "--json", "--steps", "10", "--job-id", "base", ...small], { timeoutMs: 120_000, stopSignal: "SIGTERM" });
    expect(first.code, first.stderr).toBe(0);
    const checkpoint = (JSON.parse(first.stdout.trim().split("\n").at(-1)!) as { checkpointPath: string }).checkpointPath;
    // Without --serving-sync there is no sync line.
    expect(first.stderr).not.toContain("parameter sync");
    // Ten steps are all warm-up: no rate after it, in the status or the summary.
    const firstStatus = JSON.parse(first.stdout.trim().split("\n").at(-1)!) as { samplesPerSecondAfterWarmup: number; warmupSteps: string };
    expect([firstStatus.samplesPerSecondAfterWarmup, Number(firstStatus.warmupSteps)]).toEqual([0, 0]);
    expect(first.stderr).toMatch(/throughput +[\d,]+ samples\/s\n/);
    const base = join(tmp, "models");
    const exp = await runNode(ENTRY.cli, ["export", "--checkpoint", checkpoint, "--out", base]);
    expect(exp.code, exp.stderr).toBe(0);
    // What export's command line gets wrong: one line naming the flag, exit 2, before the checkpoint is read.
    mkdirSync(join(tmp, "full", String(Number.MAX_SAFE_INTEGER)), { recursive: true });
    const aFile = join(tmp, "a-file");
    writeFileSync(aFile, "x");
    for (const [args, line] of [
      [["--out", aFile], `--out: ${aFile} is not a directory`],
      [["--out", base, "--version", "1"], `--version: ${join(base, "1")} already exists and versions are immutable; pick another, or leave --version out for the next one (2)`],
      [["--out", base, "--feature-list", join(tmp, "none.json")], `--feature-list: feature list ${join(tmp, "none.json")} is missing`],
      // A device read whole would fill the memory (it grew to 5 GB).
      [["--out", base, "--feature-list", "/dev/zero"], "--feature-list: feature list /dev/zero is a device, not a regular file"],
      [["--out", join(tmp, "full")], `the newest version under ${join(tmp, "full")} is 9007199254740991, and no next version fits below 2^53; give --version a free number, or export to another --out`],
      // Inside the checkpoint (pruned with it, the model went too) or among the job's checkpoints.
      [["--out", checkpoint], `--out: ${checkpoint} is the checkpoint ${checkpoint}: pruning it would delete the model versions with it; give them a directory outside the job's checkpoints`],
      [["--out", join(checkpoint, "models")], `--out: ${join(checkpoint, "models")} is inside the checkpoint ${checkpoint}: pruning it would delete the model versions with it; give them a directory outside the job's checkpoints`],
      [["--out", dirname(checkpoint)], `--out: ${dirname(checkpoint)} is a job's checkpoint directory, ${dirname(checkpoint)}; give the model versions a directory outside the job's checkpoints`],
      [["--out", dirname(dirname(checkpoint))], `--out: ${dirname(dirname(checkpoint))} is a --checkpoint-dir (it holds the checkpoints of job base), where each directory is a job's; give the model versions a directory of their own`],
    ] as const) {
      const bad = await runNode(ENTRY.cli, ["export", "--checkpoint", checkpoint, ...args]);
      expect([bad.code, bad.stderr]).toEqual([2, `pangea export: ${line}\nRun 'pangea export --help' for usage.\n`]);
    }
    const { cli: serve, output, exited: served } = startServe(base);
    try {
      const ready = await waitFor("serving's ready line", async () => {
        const line = output().split("\n").find((l) => l.startsWith('{"ready":"serving"'));
        return line ? (JSON.parse(line) as { address: string; rest: string }) : null;
      }, 20_000);
      const r = await runNode(
        ENTRY.cli,
        ["run", "--steps", "40", "--job-id", "synced", "--restore-from", checkpoint, "--serving-sync", ready.address, "--sync-interval-seconds", "1", ...small],
        { timeoutMs: 120_000, stopSignal: "SIGTERM" },
      );
      expect(r.code, r.stderr).toBe(0);
      const line = r.stdout.split("\n").find((l) => l.startsWith("  parameter sync"));
      const m = /^  parameter sync {4}([\d,]+) embedding rows pushed to serving; serving acknowledged version (\d+)$/.exec(line ?? "");
      expect(m, r.stdout).not.toBeNull();
      expect(Number(m![1]!.replace(/,/g, ""))).toBeGreaterThan(0);
      const status = (await (await fetch(`http://${ready.rest}/v1/models/pangea`)).json()) as { model_version_status: { version: string }[] };
      expect(status.model_version_status.map((v) => v.version)).toContain(m![2]);
    } finally {
      serve.kill("SIGTERM");
      await Promise.race([served, new Promise((r) => setTimeout(r, 5_000))]);
      serve.kill("SIGKILL");
    }
  }, 300_000);
});
