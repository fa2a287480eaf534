import { spawn, type ChildProcess } from "node:child_process";
import { execFileSync } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, statSync, truncateSync, utimesSync, openSync, readFileSync, readSync, readdirSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type * as grpc from "@grpc/grpc-js";
import { batchStreamClient, waitReady } from "@pangea/rpc";
import { MessageType, Split, encodeMessage } from "@pangea/schema";
import { SyntheticSource } from "../src/sources/synthetic.js";
import { CriteoTsvSource } from "../src/sources/criteo-tsv.js";
import { ENTRY, closedPort, lastLine, waitFor } from "../../../test/support/processes.js";

/**
 * What compute reads is what the data files held when it started: a record
 * cache damaged on disk is written again when compute finds it at start and
 * fails compute (and the trainer asking) with one line naming the cache
 * and byte offset when found while serving; a data file changed between
 * compute's start and its pass opening it fails the pass naming the file.
 * Real compute processes on real files.
 */
const dir = mkdtempSync(join(tmpdir(), "pangea-integrity-"));
const live: ChildProcess[] = [];
afterAll(() => {
  for (const c of live) c.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

const synthetic = new SyntheticSource({ seed: 5, evalRecords: 0 });
const tsvLines = (from: number, n: number) => Array.from({ length: n }, (_, i) => synthetic.tsvLine("train", from + i) + "\n").join("");

interface Compute {
  child: ChildProcess;
  stderr: () => string;
  exited: Promise<number | null>;
}

/** A compute on `data` whose orchestrator never answers: it reads its data and serves batches on `port` while it waits. */
async function startCompute(data: string, cacheDir: string, port: number, connectTimeoutMs = 60_000): Promise<Compute> {
  const orchestrator = `127.0.0.1:${await closedPort()}`;
  const args = ["--data", data, "--cache-dir", cacheDir, "--max-memory-mb", "16", "--parse-threads", "1", "--eval-fraction", "0", "--port", String(port), "--metrics-port", "0", "--orchestrator", orchestrator, "--connect-timeout-ms", String(connectTimeoutMs)];
  const child = spawn(process.execPath, [ENTRY.compute, ...args], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, PANGEA_LOG_FORMAT: "json" } });
  live.push(child);
  let err = "";
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, stderr: () => err, exited };
}

const ready = (c: Compute) => waitFor("compute's data source", async () => c.stderr().includes("data source ready") || c.child.exitCode !== null, 30_000, 50);

/** The first batch of 200 records, or the stream's error. */
async function firstBatch(port: number): Promise<{ batch: Buffer | null; error: grpc.ServiceError | null }> {
  const client = batchStreamClient(`127.0.0.1:${port}`);
  // "data source ready" is logged before compute's server listens.
  await waitReady(client, "compute", `127.0.0.1:${port}`, 10_000);
  const call = client.streamBatches();
  return new Promise((resolve) => {
    const done = (batch: Buffer | null, error: grpc.ServiceError | null) => {
      call.cancel();
      client.close();
      resolve({ batch, error });
    };
    call.on("data", (b: Buffer) => done(b, null));
    call.on("error", (e: grpc.ServiceError) => done(null, e));
    call.write(
      encodeMessage(MessageType.BATCH_REQUEST, "test", (r) => {
        r.workerRank = 0;
        r.worldSize = 1;
        r.batchSize = 200;
        r.maxBatches = 1n;
        r.split = Split.TRAIN;
      }),
    );
  });
}

/** Flips every bit of one byte of a file in place (the same inode: an open descriptor sees it). */
function flipByte(path: string, at: number): void {
  const fd = openSync(path, "r+");
  const b = Buffer.alloc(1);
  readSync(fd, b, 0, 1, at);
  b[0] = b[0]! ^ 0xff;
  writeSync(fd, b, 0, 1, at);
  closeSync(fd);
}

describe("a record cache damaged on disk", () => {
  const data = join(dir, "day.tsv");
  const cacheDir = join(dir, "cache");
  writeFileSync(data, tsvLines(0, 3000));
  let cachePath = "";
  let written: Buffer;

  it("found while serving: the trainer asking gets DATA_LOSS and compute exits 1, one line naming the cache file and byte offset", async () => {
    const port = await closedPort();
    const c = await startCompute(data, cacheDir, port);
    await ready(c);
    expect(c.stderr()).toContain("record cache written");
    const [name] = readdirSync(cacheDir);
    cachePath = join(cacheDir, name!);
    written = readFileSync(cachePath);
    // A byte of the first chunk's labels (after its 16-byte header): a flipped label trains silently unless it is checked.
    flipByte(cachePath, 16 + 4 * 5 + 3);
    const { batch, error } = await firstBatch(port);
    expect(batch).toBeNull();
    const line = `record cache ${cachePath} chunk 0 at byte 0 (`;
    expect(error?.details).toContain(line);
    expect(error?.code).toBe(15); // DATA_LOSS
    expect(await c.exited).toBe(1);
    expect(lastLine(c.stderr())).toMatch(new RegExp(`^pangea-compute: error COMPUTE_ERR_CACHE_CORRUPT: record cache ${cachePath} chunk 0 at byte 0 \\(\\d+ bytes\\) fails its checksum: it was damaged after it was written, and is removed \\(start compute again: it writes the cache anew from the data files\\)$`));
    // Removed: a compute started again cannot meet the same damage.
    expect(existsSync(cachePath)).toBe(false);
  });

  it("compute started again writes the cache anew from the data, byte for byte what was written first", async () => {
    const c = await startCompute(data, cacheDir, 0);
    await ready(c);
    c.child.kill("SIGKILL");
    expect(c.stderr()).toContain("record cache written");
    expect(readFileSync(cachePath).equals(written)).toBe(true);
  });

  it("an index damaged while compute was down: compute warns naming the file and writes the cache again", async () => {
    // The index (JSON) sits just before the 20-byte trailer.
    const size = statSync(cachePath).size;
    flipByte(cachePath, size - 20 - 10);
    const c = await startCompute(data, cacheDir, 0);
    await ready(c);
    c.child.kill("SIGKILL");
    const warning = c.stderr().split("\n").find((l) => l.includes("was damaged"));
    expect(warning, c.stderr()).toBeDefined();
    expect(JSON.parse(warning!).msg).toMatch(new RegExp(`^record cache ${cachePath} was damaged \\(its index \\(bytes \\d+\\.\\.\\d+\\) fails its checksum\\): written again from the data files$`));
    expect(JSON.parse(warning!).level).toBe(40); // warn
    expect(readFileSync(cachePath).equals(written)).toBe(true);
  });
  it("a cache cut short while compute was down: compute warns naming the file and writes the cache again", async () => {
    truncateSync(cachePath, 20_000);
    const c = await startCompute(data, cacheDir, 0);
    await ready(c);
    c.child.kill("SIGKILL");
    const warning = c.stderr().split("\n").find((l) => l.includes("was damaged"));
    expect(warning, c.stderr()).toBeDefined();
    expect(JSON.parse(warning!).msg).toBe(`record cache ${cachePath} was damaged (it does not end with its trailer (20000 bytes: cut short or overwritten)): written again from the data files`);
    expect(readFileSync(cachePath).equals(written)).toBe(true);
  });
});

describe("a data file changed between compute's start and its pass opening it", () => {
  /**
   * The first file is a named pipe: compute's pass waits in it until the test writes, so the second file is
   * replaced (by `replace`) after compute recorded it (at start, for the cache's key) and before the pass opens it.
   */
  async function replacedBeforeOpen(name: string, replace: (second: string) => void): Promise<{ line: string; code: number | null; second: string }> {
    const fifo = join(dir, `${name}-0.tsv`);
    const second = join(dir, `${name}-1.tsv`);
    execFileSync("mkfifo", [fifo]);
    writeFileSync(second, tsvLines(100, 500));
    // A whole second: a copy can be given exactly this time.
    utimesSync(second, WHOLE_SECOND, WHOLE_SECOND);
    const c = await startCompute(`${fifo},${second}`, join(dir, `cache-${name}`), 0, 5_000);
    // Resolves once compute's pass opened the pipe: compute has recorded both files by then.
    const pipe = await open(fifo, "w");
    replace(second);
    await pipe.write(tsvLines(0, 100));
    await pipe.close();
    const code = await c.exited;
    return { line: lastLine(c.stderr()), code, second };
  }
  const WHOLE_SECOND = 1_700_000_000;
  const HINT = "(compute keys its record cache by each file's size and time; start it again once the files are complete)";

  it("another size: fails the pass with one line naming the file and what changed, exit 1", async () => {
    let size = 0;
    const { line, code, second } = await replacedBeforeOpen("resized", (second) => {
      size = readFileSync(second).length;
      writeFileSync(`${second}.new`, tsvLines(100, 200));
      execFileSync("mv", [`${second}.new`, second]);
    });
    expect(line).toBe(`pangea-compute: error COMPUTE_ERR_DATA_CHANGED: data file ${second} changed after compute started: ${size} bytes then, ${readFileSync(second).length} bytes when its pass opened it ${HINT}`);
    expect(code).toBe(1);
  });

  it("a copy keeping size and time (cp -p) of other records: the same, naming the replacement", async () => {
    const { line, code, second } = await replacedBeforeOpen("copied", (second) => {
      // Other records of exactly the same length, given the old file's times.
      const other = readFileSync(second, "utf8").replace(/^1\t/gm, "X\t").replace(/^0\t/gm, "1\t").replace(/^X\t/gm, "0\t");
      writeFileSync(`${second}.new`, other);
      utimesSync(`${second}.new`, WHOLE_SECOND, WHOLE_SECOND);
      execFileSync("mv", [`${second}.new`, second]);
    });
    expect(line).toBe(`pangea-compute: error COMPUTE_ERR_DATA_CHANGED: data file ${second} changed after compute started: another file of the same size and time when its pass opened it (it was replaced) ${HINT}`);
    expect(code).toBe(1);
  });
});

describe("skipped records' summary", () => {
  it("groups reasons alike but for their values, showing the values all share; one entry per reason, the most frequent first", async () => {
    const good = tsvLines(0, 40).split("\n").filter(Boolean);
    const lines = good.map((l, i) => {
      const f = l.split("\t");
      if (i % 5 === 0) f[0] = String(2 + i);
      else if (i % 7 === 0) f[0] = `x${i}`;
      else if (i === 11) f[2] = "abc";
      return f.join("\t");
    });
    lines.push("1\t2\t3");
    const path = join(dir, "bad.tsv");
    writeFileSync(path, lines.join("\n") + "\n");
    const src = await CriteoTsvSource.open({ paths: [path], evalFraction: 0, onBadRecord: "skip", cacheDir: join(dir, "cache-bad") });
    expect(src.info.skippedSummary).toBe(`14 bad records skipped, 27 samples kept: 12 x label '…' must be 0 or 1; 1 x field I2 'abc' is not an integer; 1 x expected 40 tab-separated fields (label, I1-I13, C1-C26), got 3; first: ${path}:1 (byte 0): label '2' must be 0 or 1`);
  });
});
