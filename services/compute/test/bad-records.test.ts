import { describe, expect, it } from "vitest";
import { BadRecords } from "../src/sources/bad-records.js";
import { ComputeErrors } from "../src/errors.js";

describe("BadRecords: what --on-bad-record skip tells", () => {
  it("bad records, damaged stretches and ignored bytes are counted apart; every file with any is named with its count", () => {
    const bad = new BadRecords("skip");
    bad.record("a.pb", ": record at byte 10", "not a valid instance: has 0 labels");
    bad.lost("a.pb", ": byte 900", "record size 5: its bytes are not a protobuf message", 412, "byte 1312");
    bad.lost("b.pb.gz", ": byte 77 (decompressed byte 4000)", "cannot gzip-decompress: unexpected end of file", 0, null);
    bad.streamDamage("c.pb.gz", "byte 50 (decompressed byte 9000)", { fileOffset: 50, outputOffset: 9000, message: "cannot gzip-decompress: trailing garbage", afterData: true, wrongOutput: false }, 150);
    expect([bad.records, bad.stretches, bad.lostBytes, bad.ignoredBytes, bad.skipped]).toEqual([1, 2, 412, 100, 3]);
    expect(bad.summary(5000)).toBe(
      "1 bad record skipped, 2 damaged stretches skipped (412 bytes; the records in them are not counted), 100 bytes of trailing garbage ignored, 5000 samples kept: " +
        "1 x record size 5: its bytes are not a protobuf message (412 bytes skipped to the next readable record at byte 1312); " +
        "1 x cannot gzip-decompress: unexpected end of file (the file ends there); 1 x cannot gzip-decompress: trailing garbage (100 bytes to the end ignored: every record before them was read); " +
        "1 x not a valid instance: has 0 labels; " +
        "in a.pb (1 bad record, 1 damaged stretch), b.pb.gz (1 damaged stretch), c.pb.gz (trailing garbage); first: a.pb: record at byte 10: not a valid instance: has 0 labels",
    );
  });

  it("damage to a file's bytes is listed before bad records, however many (a gzip file cut short after bad records of its own)", () => {
    const bad = new BadRecords("skip");
    bad.compressedAs("f.tsv.gz", "gzip");
    for (let i = 0; i < 12; i++) bad.record("f.tsv.gz", `:${100 + i} (byte ${5000 + i})`, `expected 40 tab-separated fields, got ${i}`);
    for (let i = 0; i < 9; i++) bad.record("f.tsv.gz", `:${200 + i}`, `reason kind ${String.fromCharCode(97 + i)}`);
    bad.streamDamage("f.tsv.gz", "byte 900 (decompressed byte 99000)", { fileOffset: 900, outputOffset: 99000, message: "cannot gzip-decompress: unexpected end of file", afterData: false, wrongOutput: false }, 910);
    bad.fileRead("f.tsv.gz", 10);
    expect([bad.records, bad.stretches, bad.wrongOutputRecords]).toEqual([21, 1, 0]);
    expect(bad.summary(10)).toMatch(/^21 bad records skipped, 1 damaged stretch skipped \(10 bytes; the records in it are not counted\), 10 samples kept: 1 x cannot gzip-decompress: unexpected end of file \(10 bytes to the end unreadable\); 12 x expected 40 tab-separated fields, got N; .*; first: f.tsv.gz:100 \(byte 5000\): expected 40 tab-separated fields, got 0$/);
  });

  it("a compressed file whose data fails its checksum: the records before it that did not parse are its wrong output, not bad records", () => {
    const bad = new BadRecords("skip");
    bad.compressedAs("a.tsv.gz", "gzip");
    bad.record("a.tsv.gz", ":3 (byte 40)", "label '2' must be 0 or 1");
    bad.fileRead("a.tsv.gz", 100);
    bad.compressedAs("b.tsv.gz", "gzip");
    for (let i = 0; i < 30; i++) bad.record("b.tsv.gz", `:${500 + i} (byte ${9000 + 80 * i})`, `expected 40 tab-separated fields, got ${i}`);
    const checksum = "cannot gzip-decompress: incorrect data check: the data's checksum fails";
    bad.streamDamage("b.tsv.gz", "byte 900 (decompressed byte 99000)", { fileOffset: 900, outputOffset: 99000, message: checksum, afterData: false, wrongOutput: true }, 910);
    bad.fileRead("b.tsv.gz", 499);
    bad.record("c.tsv", ":7 (byte 700)", "label '3' must be 0 or 1");
    bad.fileRead("c.tsv", 50);
    // a.tsv.gz's stream ended well: its record is a bad record, as is c.tsv's (uncompressed).
    expect([bad.records, bad.stretches, bad.lostBytes, bad.wrongOutputRecords]).toEqual([2, 1, 10, 30]);
    expect(bad.summary(649)).toBe(
      "2 bad records skipped, 1 damaged stretch skipped (10 bytes; 30 records of wrong output that did not parse, other records in it are not counted), 649 samples kept: " +
        `1 x ${checksum} (10 bytes to the end unreadable; the 30 records before it that did not parse (from b.tsv.gz:500 (byte 9000) on) are taken as its wrong output, not bad records); ` +
        "2 x label '…' must be 0 or 1; in a.tsv.gz (1 bad record), b.tsv.gz (1 damaged stretch), c.tsv (1 bad record); first: a.tsv.gz:3 (byte 40): label '2' must be 0 or 1",
    );
    // When the damaged file's records came first, the first event is the one after them, or the damage they are part of.
    const between = new BadRecords("skip");
    between.compressedAs("b.tsv.gz", "gzip");
    between.record("b.tsv.gz", ":5 (byte 90)", "label 'x' must be 0 or 1");
    between.lost("b.tsv.gz", ": byte 200 (line 9)", "a line longer than 1048576 bytes (skipped to its end)", 2_000_000, null);
    between.record("b.tsv.gz", ":12 (byte 2000300)", "label 'y' must be 0 or 1");
    between.streamDamage("b.tsv.gz", "byte 70 (decompressed byte 2000400)", { fileOffset: 70, outputOffset: 2000400, message: "cannot gzip-decompress: incorrect data check", afterData: false, wrongOutput: true }, 70);
    between.fileRead("b.tsv.gz", 4);
    expect(between.summary(4)).toMatch(/; first: b\.tsv\.gz: byte 200 \(line 9\): a line longer than 1048576 bytes \(skipped to its end\) \(2000000 bytes to the end unreadable\)$/);
    const alone = new BadRecords("skip");
    alone.compressedAs("b.tsv.gz", "zstd");
    alone.record("b.tsv.gz", ":5 (byte 90)", "label 'x' must be 0 or 1");
    alone.streamDamage("b.tsv.gz", "byte 70 (decompressed byte 400)", { fileOffset: 70, outputOffset: 400, message: "cannot zstd-decompress: invalid block type", afterData: false, wrongOutput: true }, 70);
    alone.fileRead("b.tsv.gz", 4);
    expect([alone.records, alone.stretches, alone.wrongOutputRecords]).toEqual([0, 1, 1]);
    expect(alone.summary(4)).toBe(
      "1 damaged stretch skipped (1 record of wrong output that did not parse, other records in it are not counted), 4 samples kept: " +
        "1 x cannot zstd-decompress: invalid block type (the file ends there; the record before it that did not parse (from b.tsv.gz:5 (byte 90) on) is taken as its wrong output, not bad records); " +
        "first: b.tsv.gz: byte 70 (decompressed byte 400): cannot zstd-decompress: invalid block type (the file ends there; the record before it that did not parse (from b.tsv.gz:5 (byte 90) on) is taken as its wrong output, not bad records)",
    );
  });

  it("fail mode: a bad record in a gzip file says the file's compressed data may be damaged, and how to check it", async () => {
    const bad = new BadRecords("fail");
    bad.compressedAs("plain.tsv", "none");
    bad.compressedAs("day.tsv.gz", "gzip");
    const hintOf = (file: string) => {
      try {
        bad.record(file, ":12 (byte 400)", "expected 40 tab-separated fields, got 24");
      } catch (err) {
        return (err as { hint?: string }).hint;
      }
      return "not refused";
    };
    expect(hintOf("plain.tsv")).toBe("--on-bad-record=skip counts and skips such records");
    expect(hintOf("day.tsv.gz")).toBe("--on-bad-record=skip counts and skips such records; if day.tsv.gz's gzip data is damaged, such records come before its checksum says so: check it first (gzip -t day.tsv.gz)");
  });

  it("a file read through with no sample kept is named as such", () => {
    const bad = new BadRecords("skip");
    bad.fileRead("a.pb", 500);
    bad.lost("b.pb", ": byte 0", "sort id size above 2^53 is more than a sort id holds", 1000, null);
    bad.fileRead("b.pb", 0);
    expect(bad.summary(500)).toBe(
      "1 damaged stretch skipped (1000 bytes; the records in it are not counted), 500 samples kept: 1 x sort id size above 2^53 is more than a sort id holds (1000 bytes to the end unreadable); " +
        "no sample kept from b.pb (is it in the format and framing given?); first: b.pb: byte 0: sort id size above 2^53 is more than a sort id holds (1000 bytes to the end unreadable)",
    );
  });

  it("more than eight files: the first eight named, then how many more", () => {
    const bad = new BadRecords("skip");
    for (let i = 0; i < 10; i++) {
      bad.record(`f${i}.tsv`, ":1 (byte 0)", "label '2' must be 0 or 1");
      bad.fileRead(`f${i}.tsv`, 0);
    }
    const text = bad.summary(0);
    expect(text).toContain("; in f0.tsv (1 bad record), f1.tsv (1 bad record), f2.tsv (1 bad record), f3.tsv (1 bad record), f4.tsv (1 bad record), f5.tsv (1 bad record), f6.tsv (1 bad record), f7.tsv (1 bad record) and 2 more files;");
    expect(text).toContain("; no sample kept from f0.tsv, f1.tsv, f2.tsv, f3.tsv, f4.tsv, f5.tsv, f6.tsv, f7.tsv and 2 more files (is each in the format and framing given?);");
  });

  it("one file: no list of files; nothing skipped: no summary", () => {
    const bad = new BadRecords("skip");
    expect(bad.summary(10)).toBe("");
    bad.record("a.tsv", ":3 (byte 40)", "label '2' must be 0 or 1");
    bad.record("a.tsv", ":9 (byte 400)", "label '7' must be 0 or 1");
    expect(bad.summary(10)).toBe("2 bad records skipped, 10 samples kept: 2 x label '…' must be 0 or 1; first: a.tsv:3 (byte 40): label '2' must be 0 or 1");
  });

  it("fail: the first of any kind is the error, naming file and place", () => {
    const bad = new BadRecords("fail");
    const err = (() => {
      try {
        bad.streamDamage("c.pb.gz", "byte 50", { fileOffset: 50, outputOffset: 9000, message: "cannot gzip-decompress: trailing garbage", afterData: true, wrongOutput: false }, 150);
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(ComputeErrors.is(err, "COMPUTE_ERR_BAD_FRAME")).toBe(true);
    expect((err as Error).message).toBe("c.pb.gz: byte 50: cannot gzip-decompress: trailing garbage");
  });
});
