import { copyFileSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { JobStatus__Output } from "@pangea/schema";
import { ENTRY, runNode } from "../support/processes.js";

/**
 * A checkpoint's data position counts batches of the data it trained on, so
 * `--resume` on other data (a file of another length at the same path, or
 * another DATA) would continue at a position that means nothing there. It is
 * refused at the job's start with one line naming both; the same data resumes.
 */
describe("pangea run --resume on other data", () => {
  it("is refused, naming both record counts, and nothing trains; on the same data it resumes", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "pangea-resume-other-data-"));
    const data = join(tmp, "train.tsv");
    const ckpt = join(tmp, "ckpt");
    const gen = (records: number) => runNode(ENTRY.cli, ["gen-data", "--out", data, "--records", String(records)]);
    const run = (steps: number, extra: string[] = []) =>
      runNode(
        ENTRY.cli,
        ["run", "--json", "--job-id", "j", "--steps", String(steps), "--trainers", "1", "--batch-size", "64", "--data", data, "--format", "criteo", "--log-dir", join(tmp, "logs"), "--checkpoint-dir", ckpt, ...extra],
        { timeoutMs: 120_000, stopSignal: "SIGTERM" },
      );
    const statusOf = (stdout: string) => JSON.parse(stdout.trim().split("\n").at(-1)!) as JobStatus__Output;

    expect((await gen(4000)).code).toBe(0);
    const first = await run(2);
    expect(first.code, first.stderr).toBe(0);
    const trained = Number(statusOf(first.stdout).source!.trainRecords);
    expect(trained).toBeGreaterThan(0);

    expect((await gen(5000)).code).toBe(0);
    const other = await run(4, ["--resume"]);
    // A configuration the checkpoint contradicts: exit 2, as for a bad flag.
    expect(other.code, other.stderr).toBe(2);
    const line = other.stderr.trim().split("\n").find((l) => l.startsWith("pangea run: job failed:")) ?? other.stderr;
    expect(line).toMatch(
      new RegExp(`^pangea run: job failed: ORCH_ERR_CHECKPOINT_MISMATCH: cannot resume: the checkpoint trained on ${trained.toLocaleString("en-US")} training records \\(Criteo TSV .*\\), this job's data has [\\d,]+ training records \\(Criteo TSV .*\\); resume on the same data, or start a new job with --restore-from to take only the parameters`),
    );
    expect(readdirSync(join(ckpt, "j")).filter((d) => d.startsWith("step-"))).toEqual(["step-2"]);

    // The same data again (gen-data is deterministic): the job resumes from step 2.
    expect((await gen(4000)).code).toBe(0);
    const same = await run(4, ["--resume"]);
    expect(same.code, same.stderr).toBe(0);
    const s = statusOf(same.stdout);
    expect([s.state, Number(s.resumedFromStep), Number(s.step)]).toEqual(["JOB_STATE_COMPLETED", 2, 4]);
    expect(s.warnings).toEqual([]);
    // The same bytes under another name (copied): the same records, resumed without a word.
    const renamed = join(tmp, "renamed.tsv");
    copyFileSync(data, renamed);
    const moved = await run(6, ["--resume", "--data", renamed]);
    expect(moved.code, moved.stderr).toBe(0);
    expect(statusOf(moved.stdout).warnings).toEqual([]);
    // Other records of the same count, under another name: resumed, with a warning naming both (it went on without a word).
    const regen = (out: string, seed: number) => runNode(ENTRY.cli, ["gen-data", "--out", out, "--records", "4000", "--seed", String(seed)]);
    const elsewhere = join(tmp, "other.tsv");
    expect((await regen(elsewhere, 7)).code).toBe(0);
    const switched = await run(8, ["--resume", "--data", elsewhere]);
    expect(switched.code, switched.stderr).toBe(0);
    expect(statusOf(switched.stdout).warnings).toEqual([
      expect.stringMatching(new RegExp(`^--resume: the checkpoint trained on Criteo TSV ${renamed} \\(\\d+ records\\), this job reads Criteo TSV ${elsewhere} \\(\\d+ records\\); if these are other records, the job goes on at the checkpoint's position in them`)),
    ]);
    // Other records written over the same file, as many (the same name and record count): said too (it was not: the
    // description is the same).
    expect((await regen(elsewhere, 8)).code).toBe(0);
    const rewritten = await run(10, ["--resume", "--data", elsewhere]);
    expect(rewritten.code, rewritten.stderr).toBe(0);
    const rs = statusOf(rewritten.stdout);
    expect(Number(rs.resumedFromStep)).toBe(8);
    expect(rs.warnings).toEqual([
      expect.stringMatching(new RegExp(`^--resume: Criteo TSV ${elsewhere} \\(\\d+ records\\) holds other bytes than when the checkpoint trained on it \\(the same names and record count\\); if these are other records, the job goes on at the checkpoint's position in them`)),
    ]);
  }, 300_000);

  it("the same records read through a feature list that encodes them otherwise (a transform changed) are refused too", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "pangea-resume-other-list-"));
    const data = join(tmp, "train.parquet");
    const list = join(tmp, "list.json");
    expect((await runNode(ENTRY.cli, ["gen-data", "--out", data, "--records", "3000", "--format", "parquet", "--feature-list-out", list])).code).toBe(0);
    const run = (steps: number, features: string, extra: string[] = []) =>
      runNode(
        ENTRY.cli,
        ["run", "--json", "--job-id", "j", "--steps", String(steps), "--trainers", "1", "--batch-size", "64", "--data", data, "--format", "parquet", "--feature-list", features, "--log-dir", join(tmp, "logs"), "--checkpoint-dir", join(tmp, "ckpt"), ...extra],
        { timeoutMs: 120_000, stopSignal: "SIGTERM" },
      );
    const first = await run(2, list);
    expect(first.code, first.stderr).toBe(0);
    const changed = JSON.parse(readFileSync(list, "utf8")) as { dense: { name: string; transform?: string }[] };
    expect(changed.dense[0]!.transform).toBe("log1p");
    changed.dense[0]!.transform = "none";
    const other = join(tmp, "other.json");
    writeFileSync(other, JSON.stringify(changed));
    const refused = await run(4, other, ["--resume"]);
    expect(refused.code, refused.stderr).toBe(2);
    const line = refused.stderr.trim().split("\n").find((l) => l.startsWith("pangea run: job failed:")) ?? refused.stderr;
    expect(line).toBe(
      `pangea run: job failed: ORCH_ERR_CHECKPOINT_MISMATCH: cannot resume: compute reads the data with another feature list than the checkpoint's job did (dense feature '${changed.dense[0]!.name}' was read with transform log1p in training, the new list says none); resume with the same list, or start a new job with --restore-from to take only the parameters`,
    );
  }, 300_000);
});
