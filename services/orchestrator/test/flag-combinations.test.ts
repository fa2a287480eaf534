import { describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.js";

describe("orchestrator flags that need another", () => {
  it.each([
    [["--fresh-start-if-unreadable"], "invalid --fresh-start-if-unreadable: applies to --resume (a job's checkpoints none of which can be read); give --resume too"],
    [["--shard-index", "1"], "invalid --shard-index: numbers a parameter-server shard; give --role shard too"],
    [["--role", "shard", "--shard-index", "2", "--ps-shards", "2", "--coordinator", "127.0.0.1:1"], 'invalid --shard-index: expected 1 .. --ps-shards - 1 (shard 0 is the orchestrator), got "2"'],
    [["--role", "shard", "--shard-index", "0", "--ps-shards", "2", "--coordinator", "127.0.0.1:1"], 'invalid --shard-index: expected a shard index of 1 or more: a whole number from 1 to 2^53 - 1, got "0"'],
    // A value that is part of a word of the message is still shown ("x" in "expected").
    [["--on-trainer-loss", "x"], 'invalid --on-trainer-loss: expected reassign or fail, got "x"'],
  ])("%j: %s", (argv, message) => {
    expect(() => loadConfig(argv, {})).toThrow(message);
  });

  it("accepts them together", () => {
    expect(loadConfig(["--resume", "--fresh-start-if-unreadable"], {})).toMatchObject({ resume: true, freshStartIfUnreadable: true });
    expect(loadConfig(["--role", "shard", "--shard-index", "1", "--ps-shards", "2", "--coordinator", "127.0.0.1:1"], {})).toMatchObject({ role: "shard", shardIndex: 1 });
  });
});
