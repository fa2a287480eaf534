import { spawnSync } from "node:child_process";
import { createWriteStream, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import { ENTRY, runNode } from "../../../test/support/processes.js";

const GEN = join(import.meta.dirname, "../dist/gen-data.js");

/*
 * Through a real job, as a user runs it: Node 20's number stat of a FIFO left
 * its shared result buffer saying "FIFO", and compute's first dynamic import()
 * of its parser then resolved @pangea/features through pnpm's symbolic link
 * without following it ("Cannot find module 'pino-std-serializers'"). Data
 * paths are stat'ed as BigInt stats now.
 */
it("a Criteo file given as a FIFO trains, as the same file does (on the cpu backend, which a trainer also loads on demand)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "pangea-fifo-"));
  const plain = join(dir, "plain.tsv");
  expect(spawnSync(process.execPath, [GEN, "--out", plain, "--records", "2000"]).status).toBe(0);
  const fifo = join(dir, "fifo.tsv");
  expect(spawnSync("mkfifo", [fifo]).status).toBe(0);
  const job = runNode(ENTRY.cli, ["run", "--data", fifo, "--steps", "2", "--trainers", "1", "--batch-size", "64", "--eval-fraction", "0.1", "--checkpoint-dir", join(dir, "ckpt"), "--log-dir", join(dir, "logs")], {
    cwd: dir,
    timeoutMs: 90_000,
    stopSignal: "SIGTERM",
  });
  createWriteStream(fifo).end(readFileSync(plain));
  const r = await job;
  expect(r.code, r.stderr).toBe(0);
  expect(r.stdout).toMatch(/held-out records +200 /);
}, 120_000);
