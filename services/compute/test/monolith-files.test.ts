import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync, deflateSync, inflateRawSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { SyntheticSource } from "../src/sources/synthetic.js";
import { RecordBlock } from "../src/sources/source.js";
import { expectSameRecords } from "./same-records.js";
import { MonolithFilesSource, type MessageKind } from "../src/sources/monolith-files.js";
import { PbFraming, PB_FILE_DEFAULTS, encodePbRecords } from "../src/formats/pb-framing.js";
import { TfRecordFraming, encodeTfRecords } from "../src/formats/tfrecord.js";
import { compressSnappyBlocks } from "../src/formats/compression.js";
import { SnappyBlockStream } from "../src/formats/snappy-stream.js";
import { ComputeErrors } from "../src/errors.js";
import { loadConfig } from "../src/config.js";
import { openSource } from "../src/sources/open-source.js";
import { compileFeatureList } from "@pangea/features";
import { createLogger } from "@pangea/kit";
import { encodeExample, encodeExampleBatch, encodeInstance, decodeExample, decodeExampleBatch, decodeInstance, SampleAssembler, WireError } from "@pangea/monolith";

const dir = mkdtempSync(join(tmpdir(), "pangea-monolith-"));
const N = 600;
const synthetic = new SyntheticSource({ seed: 11, evalRecords: 0 });
const samples = Array.from({ length: N }, (_, i) => synthetic.plainSample("train", i));

function messages(kind: MessageKind): Uint8Array[] {
  if (kind === "instance") return samples.map(encodeInstance);
  if (kind === "example") return samples.map(encodeExample);
  const out: Uint8Array[] = [];
  for (let i = 0; i < N; i += 128) out.push(encodeExampleBatch(samples.slice(i, i + 128)));
  return out;
}

function open(path: string, kind: MessageKind, framing: "pb" | "tfrecord", onBadRecord: "fail" | "skip" = "fail") {
  return MonolithFilesSource.open({
    paths: [path],
    message: kind,
    framing: framing === "tfrecord" ? new TfRecordFraming() : new PbFraming(PB_FILE_DEFAULTS),
    compression: "auto",
    featureList: compileFeatureList(synthetic.featureListConfig(kind === "instance" ? "fid_v1" : "fid_v2"), "test"),
    evalFraction: 0,
    onBadRecord,
  });
}

function expectSameAsSynthetic(src: MonolithFilesSource): void {
  expectSameRecords(src, synthetic, N);
}

describe("Monolith files: golden round trips through our writers and readers", () => {
  const cases: [MessageKind, "pb" | "tfrecord", "none" | "gzip" | "zlib" | "snappy"][] = [];
  for (const kind of ["instance", "example", "examplebatch"] as const) {
    for (const framing of ["pb", "tfrecord"] as const) for (const comp of ["none", "gzip", "zlib", "snappy"] as const) cases.push([kind, framing, comp]);
  }
  it.each(cases)("%s in %s framing, %s compression, reads back as the same samples", async (kind, framing, comp) => {
    const framed = framing === "tfrecord" ? encodeTfRecords(messages(kind)) : encodePbRecords(messages(kind), PB_FILE_DEFAULTS);
    const ext = { none: "", gzip: ".gz", zlib: ".zz", snappy: ".snappy" }[comp];
    const data = comp === "gzip" ? gzipSync(framed) : comp === "zlib" ? deflateSync(framed) : comp === "snappy" ? compressSnappyBlocks(framed, 1000) : framed;
    const path = join(dir, `${kind}-${framing}${ext}`);
    writeFileSync(path, data);
    const src = await open(path, kind, framing);
    expect(src.info.trainRecords).toBe(N);
    expect(src.info.skippedRecords).toBe(0);
    expect(src.info.dataWarnings).toBeUndefined(); // every declared slot got ids
    expectSameAsSynthetic(src);
  });

  it.runIf(spawnSync("zstd", ["--version"]).status === 0)("zstd input (compressed by Debian's zstd tool) reads back", async () => {
    const path = join(dir, "instance-zstd.pb");
    writeFileSync(path, encodePbRecords(messages("instance"), PB_FILE_DEFAULTS));
    execFileSync("zstd", ["-q", "-f", path, "-o", `${path}.zst`]);
    expectSameAsSynthetic(await open(`${path}.zst`, "instance", "pb"));
  });
});

describe("bad records", () => {
  function damagedExampleFile(): string {
    const msgs = messages("example");
    msgs[3] = Uint8Array.from([0x0a, 0x02, 0x00, 0x00]); // a named_feature holding field number 0: a protobuf message, but not an Example
    const path = join(dir, "damaged.pb");
    writeFileSync(path, encodePbRecords(msgs, PB_FILE_DEFAULTS));
    return path;
  }

  it("--on-bad-record=fail stops at the first bad record, naming file and byte offset", async () => {
    const path = damagedExampleFile();
    try {
      await open(path, "example", "pb", "fail");
      expect.unreachable();
    } catch (err) {
      expect(ComputeErrors.is(err, "COMPUTE_ERR_BAD_RECORD")).toBe(true);
      expect((err as Error).message).toMatch(new RegExp(`^${path}: record at byte \\d+: not a valid example: field number 0 at byte \\d+$`));
    }
  });

  it("--on-bad-record=skip counts the record, keeps the rest and says so", async () => {
    const src = await open(damagedExampleFile(), "example", "pb", "skip");
    expect(src.info.trainRecords).toBe(N - 1);
    expect(src.info.skippedRecords).toBe(1);
    expect(src.info.skippedSummary).toMatch(/^1 bad record skipped, 599 samples kept: 1 x not a valid example: field number 0 at byte \d+/);
  });

  it("a lost frame is skipped to the next record whose length checks, and its bytes are counted", async () => {
    const framed = encodeTfRecords(messages("instance"));
    framed[8 + 10 * 0] ^= 0xff; // the first record's length CRC
    const path = join(dir, "lost-frame.tfrecord");
    writeFileSync(path, framed);
    await expect(open(path, "instance", "tfrecord", "fail")).rejects.toThrow(`${path}: byte 0: TFRecord length checksum mismatch`);
    const src = await open(path, "instance", "tfrecord", "skip");
    expect(src.info.trainRecords).toBe(N - 1);
    expect(src.info.skippedSummary).toMatch(/^1 damaged stretch skipped \(\d+ bytes; the records in it are not counted\), 599 samples kept: 1 x TFRecord length checksum mismatch \(\d+ bytes skipped to the next readable record at byte \d+\)/);
  });

  it.each(["pb", "tfrecord"] as const)("%s: a file with 4 KB of damage in the middle still yields the records after it (skip)", async (framing) => {
    const msgs = messages("instance");
    const framed = framing === "pb" ? encodePbRecords(msgs, PB_FILE_DEFAULTS) : encodeTfRecords(msgs);
    const from = Math.floor(framed.length / 2);
    let seed = 5;
    for (let k = from; k < from + 4096; k++) framed[k] = (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
    const path = join(dir, `damaged-middle.${framing}`);
    writeFileSync(path, framed);
    const src = await open(path, "instance", framing, "skip");
    // Each record is a few hundred bytes: 4 KB of damage spoils a dozen or two of them, not the second half of the file.
    expect(src.info.trainRecords).toBeGreaterThan(N - 40);
    expect(src.info.trainRecords).toBeLessThan(N);
    expect(src.info.skippedSummary).toMatch(/damaged stretch(es)? skipped \(\d+ bytes; the records in/);
    expect(src.info.skippedBytes).toBeGreaterThan(0);
    expect(src.info.skippedBytes).toBeLessThanOrEqual(4096 + 2 * 400);
    // The last sample of the file is read, and equals the synthetic one.
    const a = new RecordBlock(1, 13, 26);
    const b = new RecordBlock(1, 13, 26);
    src.read("train", src.info.trainRecords - 1, 1, a);
    synthetic.read("train", N - 1, 1, b);
    expect(a.idWords.subarray(0, a.nnz * 2)).toEqual(b.idWords.subarray(0, b.nnz * 2));
  });

  describe("damage a pb file's framing cannot see by itself costs the records it touches, counted as a stretch of bytes", () => {
    const msgs = messages("instance");
    const framed = () => encodePbRecords(msgs, PB_FILE_DEFAULTS);
    const frameStart = (i: number) => msgs.slice(0, i).reduce((n, m) => n + 16 + m.length, 0);
    const readRecord = (src: MonolithFilesSource, i: number) => {
      const b = new RecordBlock(1, 13, 26);
      src.read("train", i, 1, b);
      return Array.from(b.idWords.subarray(0, b.nnz * 2));
    };
    const syntheticRecord = (i: number) => {
      const b = new RecordBlock(1, 13, 26);
      synthetic.read("train", i, 1, b);
      return Array.from(b.idWords.subarray(0, b.nnz * 2));
    };

    it("a record size made larger but still inside the file (it would read the next records as one): that record is lost, the ones it took in are read", async () => {
      const file = framed();
      file[frameStart(300) + 8 + 1] ^= 0x10; // 4,096 bytes more or less: about ten records
      const path = join(dir, "grown-size.pb");
      writeFileSync(path, file);
      await expect(open(path, "instance", "pb", "fail")).rejects.toThrow(new RegExp(`^${path}: byte ${frameStart(300)}: record size \\d+: its bytes are not a protobuf message: `));
      const src = await open(path, "instance", "pb", "skip");
      expect(src.info.trainRecords).toBe(N - 1);
      expect(src.info.skippedBytes).toBe(16 + msgs[300]!.length);
      expect(src.info.skippedSummary).toMatch(new RegExp(`^1 damaged stretch skipped \\(${16 + msgs[300]!.length} bytes; the records in it are not counted\\), ${N - 1} samples kept: `));
      expect(readRecord(src, 299)).toEqual(syntheticRecord(299));
      expect(readRecord(src, 300)).toEqual(syntheticRecord(301));
      expect(readRecord(src, N - 2)).toEqual(syntheticRecord(N - 1));
    });

    it("the file's first frame, damaged so, names the framing options to check; one later does not", async () => {
      for (const i of [0, 5]) {
        const file = framed();
        file[frameStart(i) + 8] += 1;
        const path = join(dir, `first-frame-${i}.pb`);
        writeFileSync(path, file);
        const err = await open(path, "instance", "pb", "fail").catch((e: unknown) => e as Error);
        expect(err.message).toMatch(new RegExp(`^${path}: byte ${frameStart(i)}: record size \\d+: its bytes are not a protobuf message: .*\\(a damaged size or a damaged record\\)${i === 0 ? "; check the framing options \\(sort id, kafka dump, lagrangex header; or --framing tfrecord for a TFRecord file\\)" : ""}$`));
      }
    });

    it("a file in another format among good ones: its damage counted, and named as giving no sample", async () => {
      const good = join(dir, "good-beside-other.pb");
      writeFileSync(good, framed());
      const other = join(dir, "other-format.pb");
      writeFileSync(other, synthetic.tsvLine("train", 0).repeat(50));
      const src = await MonolithFilesSource.open({
        paths: [good, other],
        message: "instance",
        framing: new PbFraming(PB_FILE_DEFAULTS),
        compression: "auto",
        featureList: compileFeatureList(synthetic.featureListConfig("fid_v1"), "test"),
        evalFraction: 0,
        onBadRecord: "skip",
      });
      expect(src.info.trainRecords).toBe(N);
      expect(src.info.skippedSummary).toMatch(new RegExp(`^1 damaged stretch skipped \\(\\d+ bytes; the records in it are not counted\\), ${N} samples kept: .*; no sample kept from ${other} \\(is it in the format and framing given, with the labels the feature list reads\\?\\); first: ${other}: byte 0: `));
    });

    it("zeroed bytes are one damaged stretch, not an empty record every 16 bytes", async () => {
      const file = framed();
      const from = frameStart(200) + 50;
      file.fill(0, from, from + 4096);
      const path = join(dir, "zeroed.pb");
      writeFileSync(path, file);
      const src = await open(path, "instance", "pb", "skip");
      const touched = msgs.filter((_, i) => frameStart(i + 1) > from && frameStart(i) < from + 4096).length;
      expect(src.info.trainRecords).toBe(N - touched);
      expect(src.info.skippedSummary).toMatch(/^1 damaged stretch skipped \(\d+ bytes; the records in it are not counted\), \d+ samples kept: 1 x record size \d+: /);
      expect(src.info.skippedSummary).not.toMatch(/has 0 labels/);
    });

    it("a gzip file cut short: the record the end cut and the decompressor's error are one stretch, its place a decompressed byte", async () => {
      const whole = gzipSync(framed());
      const path = join(dir, "cut.pb.gz");
      writeFileSync(path, whole.subarray(0, Math.floor(whole.length * 0.6)));
      const err = await open(path, "instance", "pb", "fail").catch((e: unknown) => e as Error);
      expect(err.message).toMatch(new RegExp(`^${path}: decompressed byte \\d+: .* then at byte \\d+ \\(decompressed byte \\d+\\): cannot gzip-decompress: unexpected end of file \\(the file ends there\\)$`));
      const src = await open(path, "instance", "pb", "skip");
      expect(src.info.skippedSummary).toMatch(new RegExp(`^1 damaged stretch skipped \\(\\d+ bytes; the records in it are not counted\\), ${src.info.trainRecords} samples kept: 1 x `));
      const cutAt = Number(/decompressed byte (\d+):/.exec(src.info.skippedSummary!)![1]);
      expect(cutAt).toBe(frameStart(src.info.trainRecords));
      expect(readRecord(src, src.info.trainRecords - 1)).toEqual(syntheticRecord(src.info.trainRecords - 1));
    });

    it("a gzip file with a bit flipped mid-way (wrong output from there on, seen only by the checksum at its end): the records from the wrong bytes on are counted lost with the checksum's error, not dropped unsaid", async () => {
      const original = framed();
      const whole = gzipSync(original);
      // A flip that garbles the rest of the output (most do: a Huffman code misread shifts every code after it), found
      // by decompressing without the checksum, as a reader does until the end.
      let flipped = Buffer.from(whole);
      let out = Buffer.alloc(0);
      for (let at = Math.floor(whole.length / 2); ; at++) {
        expect(at).toBeLessThan(whole.length / 2 + 200);
        flipped = Buffer.from(whole);
        flipped[at]! ^= 0x10;
        try {
          out = inflateRawSync(flipped.subarray(10, flipped.length - 8));
        } catch {
          continue; // an error mid-way, not wrong output: another test's case
        }
        if (out.length > original.length / 2 && !out.subarray(out.length - 1000).equals(original.subarray(out.length - 1000, out.length))) break;
      }
      let wrongFrom = 0;
      while (wrongFrom < out.length && out[wrongFrom] === original[wrongFrom]) wrongFrom++;
      const intact = msgs.findIndex((_, i) => frameStart(i + 1) > wrongFrom);
      const path = join(dir, "flipped.pb.gz");
      writeFileSync(path, flipped);
      const src = await open(path, "instance", "pb", "skip");
      // The records before the wrong bytes are kept in order; what came after them was not read as records, and says so.
      expect(src.info.trainRecords).toBeGreaterThanOrEqual(intact);
      expect(src.info.trainRecords).toBeLessThan(N - 10);
      expect(readRecord(src, intact - 1)).toEqual(syntheticRecord(intact - 1));
      const summary = src.info.skippedSummary!;
      expect(summary).toMatch(/ decompressed bytes to the end unreadable\), then at byte \d+ \(decompressed byte \d+\): cannot gzip-decompress: incorrect data check: the data's checksum fails, so the records read from it before here may hold wrong bytes /);
      expect(src.info.skippedBytes).toBeGreaterThan(original.length - frameStart(src.info.trainRecords + 20));
      expect(summary).toMatch(new RegExp(`first: ${path}: (record at )?decompressed byte \\d+: `));
    });

    it("trailing garbage after a whole gzip member: every record read, its bytes ignored, no record counted as skipped", async () => {
      const path = join(dir, "trailing.pb.gz");
      writeFileSync(path, Buffer.concat([gzipSync(framed()), Buffer.from("GARBAGE".repeat(600))]));
      await expect(open(path, "instance", "pb", "fail")).rejects.toThrow(/trailing garbage/);
      const src = await open(path, "instance", "pb", "skip");
      expect(src.info.trainRecords).toBe(N);
      expect(src.info.skippedRecords).toBe(0);
      expect(src.info.skippedSummary).toMatch(new RegExp(`^4200 bytes of trailing garbage ignored, ${N} samples kept: 1 x cannot gzip-decompress: bytes after a whole gzip member are not another member .* \\(4200 bytes to the end ignored: every record before them was read\\); first: ${path}: byte \\d+`));
      expectSameAsSynthetic(src);
    });
  });

  it("a sample without the configured label is bad", async () => {
    const bad = { ...samples[0]!, labels: [] };
    const asm = new SampleAssembler(compileFeatureList(synthetic.featureListConfig("fid_v2"), "t"));
    const msg = encodeExample(bad);
    asm.reset();
    decodeExample(msg, 0, msg.length, asm);
    expect(asm.labels).toEqual([]);
    const path = join(dir, "nolabel.pb");
    writeFileSync(path, encodePbRecords([msg, ...messages("example").slice(1)], PB_FILE_DEFAULTS));
    const src = await open(path, "example", "pb", "skip");
    expect(src.info.skippedSummary).toContain("has 0 labels, the feature list reads label 0 (ctr)");
  });

  it("a dense feature with more float values than its size is bad (Example and Instance); fewer leave 0s", () => {
    const list = compileFeatureList({ slots: [{ name: "C1", slot: 1, type: "fid_v2" }], dense: [{ name: "vec", size: 3, transform: "none" }], label: { index: 0, column: "label" } }, "t");
    const asm = new SampleAssembler(list);
    const sample = (v: number[]) => ({ ids: new Map([["C1", Uint32Array.from([5, 1 << 16])]]), floats: new Map([["vec", Float32Array.from(v)]]), labels: [1] });
    for (const encode of [encodeExample, encodeInstance]) {
      const short = encode(sample([1, 2]));
      asm.reset();
      (encode === encodeExample ? decodeExample : decodeInstance)(short, 0, short.length, asm);
      expect([...asm.dense]).toEqual([1, 2, 0]);
      const long = encode(sample([1, 2, 3, 4]));
      asm.reset();
      expect(() => (encode === encodeExample ? decodeExample : decodeInstance)(long, 0, long.length, asm)).toThrow(new WireError("dense feature 'vec' holds more than 3 values, the size the feature list declares"));
    }
  });

  it("a named feature's values of a kind its declaration cannot take are bad, naming it; int64 values of a dense feature are numbers", () => {
    const varint = (n: number): number[] => (n < 128 ? [n] : [(n & 127) | 128, ...varint(n >>> 7)]);
    const field = (no: number, bytes: number[]) => [...varint((no << 3) | 2), ...varint(bytes.length), ...bytes];
    const utf8 = (t: string) => [...Buffer.from(t)];
    // An Example with one named feature whose Feature message is `feature`, and label 1.
    const example = (name: string, feature: number[]) => Uint8Array.from([...field(1, [...field(1, utf8(name)), ...field(2, feature)]), ...field(101, [0, 0, 0x80, 0x3f])]);
    const bytesList = field(6, field(1, utf8("u17")));
    const int64List = field(5, [8, 42]); // Int64List { value: [42] } (packed would be field 1 LEN; unpacked varint works too)
    const floatList = field(3, [13, 0, 0, 0x40, 0x40]); // FloatList { value: [3] } unpacked
    const list = compileFeatureList({ slots: [{ name: "user", slot: 1, type: "int64" }, { name: "item", slot: 2, type: "bytes" }], dense: [{ name: "count", size: 1, transform: "none" }], label: { index: 0, column: "label" } }, "t");
    const asm = new SampleAssembler(list);
    const decode = (msg: Uint8Array) => {
      asm.reset();
      decodeExample(msg, 0, msg.length, asm);
    };
    expect(() => decode(example("user", bytesList))).toThrow(new WireError("feature 'user' holds bytes values; the feature list declares it a slot of type int64 (strings are type bytes)"));
    expect(() => decode(example("item", int64List))).toThrow(new WireError("feature 'item' holds int64 values; the feature list declares it a slot of type bytes (integers to hash are type int64)"));
    expect(() => decode(example("item", floatList))).toThrow(new WireError("feature 'item' holds float values; the feature list declares it a slot of type bytes (a float feature is dense)"));
    expect(() => decode(example("count", bytesList))).toThrow(new WireError("dense feature 'count' holds bytes values; it takes numbers (float, double or int64)"));
    decode(example("count", int64List));
    expect([...asm.dense]).toEqual([42]);
    decode(example("count", floatList));
    expect([...asm.dense]).toEqual([3]);
    // A feature the list does not name is read and ignored, whatever it holds.
    decode(example("other", bytesList));
    expect(asm.labels).toEqual([1]);
  });

  it("a value of another kind than declared in the pass's first record is the feature list's problem (exit 2); in a later record, a bad record", async () => {
    const varint = (n: number): number[] => (n < 128 ? [n] : [(n & 127) | 128, ...varint(n >>> 7)]);
    const field = (no: number, bytes: number[]) => [...varint((no << 3) | 2), ...varint(bytes.length), ...bytes];
    const example = (feature: number[]) => Uint8Array.from([...field(1, [...field(1, [...Buffer.from("user")]), ...field(2, feature)]), ...field(101, [0, 0, 0x80, 0x3f])]);
    const good = example(field(5, [8, 42]));
    const bad = example(field(6, field(1, [...Buffer.from("u17")])));
    const config = { slots: [{ name: "user", slot: 1, type: "int64" as const }], dense: [{ name: "count", size: 1, transform: "none" as const }], label: { index: 0, column: "label" } };
    const openFile = (name: string, records: Uint8Array[]) => {
      const path = join(dir, name);
      writeFileSync(path, encodeTfRecords(records));
      return { path, opened: MonolithFilesSource.open({ paths: [path], message: "example", framing: new TfRecordFraming(), compression: "auto", featureList: compileFeatureList(config, "t"), evalFraction: 0, onBadRecord: "fail" }).then(() => null, (e: unknown) => e) };
    };
    const first = openFile("misfit-first.tfrecord", [bad, good, good]);
    const err = (await first.opened) as { message: string; exitCode: number; hint?: string };
    expect(ComputeErrors.is(err, "COMPUTE_ERR_BAD_CONFIG")).toBe(true);
    expect(err.exitCode).toBe(2);
    // No framing hint: the record decoded; its value does not fit the list.
    expect(err.message).toBe(`${first.path}: record at byte 0: not a valid example: feature 'user' holds bytes values; the feature list declares it a slot of type int64 (strings are type bytes)`);
    expect(err.hint).toContain("the first record read does not fit --feature-list");
    const later = openFile("misfit-later.tfrecord", [good, good, bad]);
    const laterErr = (await later.opened) as { exitCode: number };
    expect(ComputeErrors.is(laterErr, "COMPUTE_ERR_BAD_RECORD")).toBe(true);
    expect(laterErr.exitCode).toBe(1);
    // A bad value of the first record's own (a NaN label) is the data's, not the list's: a bad record.
    const nanLabel = Uint8Array.from([...field(1, [...field(1, [...Buffer.from("user")]), ...field(2, field(5, [8, 42]))]), ...field(101, [0, 0, 0xc0, 0x7f])]);
    const own = openFile("own-value-first.tfrecord", [nanLabel, good]);
    const ownErr = (await own.opened) as { message: string; exitCode: number };
    expect([ComputeErrors.is(ownErr, "COMPUTE_ERR_BAD_RECORD"), ownErr.exitCode]).toEqual([true, 1]);
    expect(ownErr.message).toContain("record at byte 0: not a valid example: label 0 (ctr) is NaN");
  });

  it("a declared slot no record fills is a data warning naming it, with the ids of undeclared slots dropped", async () => {
    const path = join(dir, "other-slot.pb");
    writeFileSync(path, encodePbRecords(messages("instance"), PB_FILE_DEFAULTS));
    const config = synthetic.featureListConfig("fid_v1");
    config.slots = config.slots.map((s) => (s.name === "C3" || s.name === "C9" ? { ...s, slot: 900 + s.slot } : s));
    const src = await MonolithFilesSource.open({ paths: [path], message: "instance", framing: new PbFraming(PB_FILE_DEFAULTS), compression: "auto", featureList: compileFeatureList(config, "test"), evalFraction: 0, onBadRecord: "fail" });
    const block = new RecordBlock(N, 13, 26);
    src.read("train", 0, N, block);
    expect(src.info.dataWarnings).toEqual([
      expect.stringMatching(/^slots 'C3' \(slot 903\), 'C9' \(slot 909\) of the feature list hold no id in any of the 600 records read: they train on nothing and serving takes them as missing; check the features' names and the slot numbers of the fids against the feature list \((\d+) ids of slots it does not declare were dropped\)$/),
    ]);
    const full = new RecordBlock(N, 13, 26);
    synthetic.read("train", 0, N, full);
    // What was dropped is the two slots' ids: the warning's count is theirs.
    expect(full.nnz - block.nnz).toBeGreaterThan(0);
    expect(Number(/\((\d+) ids/.exec(src.info.dataWarnings![0]!)![1])).toBe(full.nnz - block.nnz);
  });

  it("an ExampleBatch larger than --max-memory-mb's read window (here 10+ MB under 64 MiB) is held whole and read, not taken for damage", async () => {
    const many = Array.from({ length: 20_000 }, (_, i) => samples[i % N]!);
    const record = encodeExampleBatch(many);
    expect(record.length).toBeGreaterThan(9 << 20);
    const path = join(dir, "one-large-batch.pb");
    writeFileSync(path, encodePbRecords([record, encodeExampleBatch(samples.slice(0, 10))], { ...PB_FILE_DEFAULTS, hasSortId: false }));
    const src = await MonolithFilesSource.open({ paths: [path], message: "examplebatch", framing: new PbFraming({ ...PB_FILE_DEFAULTS, hasSortId: false }), compression: "auto", featureList: compileFeatureList(synthetic.featureListConfig("fid_v2"), "test"), evalFraction: 0, onBadRecord: "fail", memoryMb: 64 });
    expect(src.info.trainRecords).toBe(20_010);
    expect(src.info.skippedRecords).toBe(0);
  });

  it("a record with a slot of more ids than a cell takes (4,096, serving's limit) is bad, naming the slot", async () => {
    const list = compileFeatureList(synthetic.featureListConfig("fid_v1"), "test");
    const ids = new Map(samples[0]!.ids);
    const slot3 = ids.get("C3")!;
    ids.set("C3", Uint32Array.from({ length: 2 * 5000 }, (_, i) => slot3[i % 2]! + (i % 2 === 0 ? i : 0)));
    const path = join(dir, "huge-cell.pb");
    writeFileSync(path, encodePbRecords([encodeInstance(samples[1]!), encodeInstance({ ...samples[0]!, ids }), encodeInstance(samples[2]!)], PB_FILE_DEFAULTS));
    const open = (onBadRecord: "fail" | "skip") => MonolithFilesSource.open({ paths: [path], message: "instance", framing: new PbFraming(PB_FILE_DEFAULTS), compression: "auto", featureList: list, evalFraction: 0, onBadRecord });
    await expect(open("fail")).rejects.toThrow(/huge-cell\.pb: record at byte \d+: not a valid instance: slot 'C3' holds 5000 ids in one record; a record's slot holds at most 4096 \(as serving takes\)$/);
    const skipped = await open("skip");
    expect([skipped.info.trainRecords, skipped.info.skippedRecords]).toEqual([2, 1]);
  });

  it("an empty file among the data is read as no records, with a data warning naming it", async () => {
    const sub = join(dir, "with-empty");
    mkdirSync(sub, { recursive: true });
    const empty = join(sub, "a-empty.pb");
    const good = join(sub, "b.pb");
    writeFileSync(empty, "");
    writeFileSync(good, encodePbRecords(messages("instance"), PB_FILE_DEFAULTS));
    const src = await MonolithFilesSource.open({ paths: [empty, good], message: "instance", framing: new PbFraming(PB_FILE_DEFAULTS), compression: "auto", featureList: compileFeatureList(synthetic.featureListConfig("fid_v1"), "test"), evalFraction: 0, onBadRecord: "fail" });
    expect(src.info.trainRecords).toBe(N);
    expect(src.info.dataWarnings).toEqual([`data file ${empty} is empty (0 bytes): nothing was read from it`]);
  });

  it("a v2 fid with the reserved bit set is bad", async () => {
    const s = { ids: new Map([["C1", Uint32Array.from([1, 0x80010000])]]), floats: new Map(), labels: [1] };
    const msg = encodeExample(s);
    const asm = new SampleAssembler(compileFeatureList(synthetic.featureListConfig("fid_v2"), "t"));
    expect(() => decodeExample(msg, 0, msg.length, asm)).toThrow(/has the reserved top bit set/);
  });

  it("an ExampleBatch whose batch_size is out of bounds is refused instead of expanded (SHARED lists do not bound it)", async () => {
    const asm = new SampleAssembler(compileFeatureList(synthetic.featureListConfig("fid_v2"), "t"));
    // field 1 (named feature list "C1", SHARED, one empty feature), field 3 batch_size = 2^28.
    const b = Uint8Array.from([0x0a, 0x08, 0x0a, 0x02, 0x43, 0x31, 0x12, 0x00, 0x18, 0x01, 0x18, 0x80, 0x80, 0x80, 0x80, 0x01]);
    const started = Date.now();
    expect(() => decodeExampleBatch(b, 0, b.length, asm, () => {})).toThrow("batch_size 268435456 is above the limit of 65536 examples per ExampleBatch");
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it("property: decoders given any bytes either decode or throw WireError", async () => {
    const asm = new SampleAssembler(compileFeatureList(synthetic.featureListConfig("fid_v2"), "t"));
    const seeds = [...messages("example").slice(0, 3), ...messages("instance").slice(0, 3), messages("examplebatch")[0]!.slice(0, 4000)];
    const check = (fn: () => void) => {
      try {
        fn();
      } catch (err) {
        if (!(err instanceof WireError)) throw err;
      }
    };
    const decodeAll = (b: Uint8Array) => {
      asm.reset();
      check(() => decodeInstance(b, 0, b.length, asm));
      asm.reset();
      check(() => decodeExample(b, 0, b.length, asm));
      check(() => decodeExampleBatch(b, 0, b.length, asm, () => {}));
    };
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), decodeAll), { numRuns: 3000 });
    fc.assert(fc.property(fc.constantFrom(...seeds), fc.nat(), fc.integer({ min: 0, max: 255 }), (seed, at, v) => {
      const b = seed.slice();
      b[at % b.length] = v;
      decodeAll(b);
    }), { numRuns: 3000 });
  });

  it("a snappy file damaged mid-stream: the record the damage cuts runs past the readable data, not the file's end", async () => {
    const data = compressSnappyBlocks(encodePbRecords(messages("instance"), PB_FILE_DEFAULTS), 1000);
    // Hadoop's block framing: [block's size] then [chunk's size][chunk]...; a chunk's size halfway made nonsense.
    const view = new DataView(data.buffer, data.byteOffset);
    let at = 4;
    while (at < data.length >> 1) at += 4 + view.getUint32(at);
    view.setUint32(at, 0xfffff);
    const path = join(dir, "damaged-mid.snappy");
    writeFileSync(path, data);
    const src = await open(path, "instance", "pb", "skip");
    expect(src.info.trainRecords).toBeGreaterThan(0);
    expect(src.info.trainRecords).toBeLessThan(N);
    expect(src.info.skippedSummary).toMatch(/runs past the end of the readable data \(\d+ bytes left\) \(\d+ decompressed bytes to the end unreadable\), then at byte \d+ \(decompressed byte \d+\): cannot snappy-decompress: /);
    expect(src.info.skippedSummary).not.toContain("end of the file");
  });

  it("a snappy chunk length beyond what snappy makes of its block is damage at once, not bytes to hold until the file ends", () => {
    expect(() => new SnappyBlockStream().push(Uint8Array.from([0, 0, 0, 9, 0, 0, 0, 50]), false)).toThrow("snappy stream at byte 4: a chunk of 50 compressed bytes, more than snappy makes of the block's 9 bytes left");
    expect(() => new SnappyBlockStream().push(Uint8Array.from([0, 0, 0, 9, 0, 0, 0, 20]), true)).toThrow("snappy stream at byte 8: truncated chunk");
  });
});

describe("a feature list compute cannot read", () => {
  it("is compute's configuration error (exit 2), with the list's own message", async () => {
    const path = join(dir, "bad-list.json");
    writeFileSync(path, '{"slots": []}');
    writeFileSync(join(dir, "none.pb"), "");
    const c = loadConfig(["--data", join(dir, "none.pb"), "--format", "instance", "--feature-list", path], {})!;
    const err = await openSource(c, createLogger("compute-test", "silent")).then(() => null, (e: unknown) => e);
    expect(ComputeErrors.is(err, "COMPUTE_ERR_BAD_CONFIG")).toBe(true);
    expect((err as { exitCode: number }).exitCode).toBe(2);
    expect((err as Error).message).toBe(`feature list ${path}: slots: declare at least one slot`);
  });

  it("a list without dense features (any feature_list.conf) is refused at start, not by the orchestrator after the pass", async () => {
    const path = join(dir, "feature_list.conf");
    writeFileSync(path, "feature_name=user slot=1 type=int64\nfeature_name=item slot=2 type=bytes\n");
    writeFileSync(join(dir, "none.pb"), "");
    const c = loadConfig(["--data", join(dir, "none.pb"), "--format", "example", "--feature-list", path], {})!;
    const err = await openSource(c, createLogger("compute-test", "silent")).then(() => null, (e: unknown) => e);
    expect(ComputeErrors.is(err, "COMPUTE_ERR_BAD_CONFIG")).toBe(true);
    expect((err as Error).message).toBe(`--feature-list ${path} declares no dense feature; every model takes at least one (a feature_list.conf declares slots only: the JSON form declares "dense")`);
  });
});

describe("the wrong message type", () => {
  it.each([
    ["example", "instance", /not a valid instance: /],
    ["instance", "examplebatch", /not a valid examplebatch: /],
  ] as const)("%s records read as %s are refused, naming the file and offset", async (written, readAs, message) => {
    const path = join(dir, `wrong-${written}-as-${readAs}.pb`);
    writeFileSync(path, encodePbRecords(messages(written), PB_FILE_DEFAULTS));
    try {
      await open(path, readAs, "pb", "fail");
      expect.unreachable();
    } catch (err) {
      expect(ComputeErrors.is(err)).toBe(true);
      expect((err as Error).message).toMatch(new RegExp(`^${path}: record at byte 0: `));
      expect((err as Error).message).toMatch(message);
    }
  });
});

describe("instance weights", () => {
  it("travel from Example and Instance records into the batch; absent means 1", async () => {
    for (const kind of ["example", "instance"] as const) {
      const weighted = samples.slice(0, 4).map((s, i) => ({ ...s, weight: [0.5, 2, 1, 0][i] }));
      const encode = kind === "example" ? encodeExample : encodeInstance;
      const path = join(dir, `weighted-${kind}.pb`);
      writeFileSync(path, encodePbRecords([...weighted.map(encode), ...samples.slice(4, 6).map(encode)], PB_FILE_DEFAULTS));
      const src = await open(path, kind, "pb");
      const block = new RecordBlock(6, 13, 26);
      src.read("train", 0, 6, block);
      // A weight written as 0 is kept (and removes the sample from the loss); one not written is 1.
      expect(Array.from(block.weights.subarray(0, 6))).toEqual([0.5, 2, 1, 0, 1, 1]);
    }
  });
});

describe("ExampleBatch feature lists", () => {
  it("a SHARED list gives every example its one value; INDIVIDUAL lists give one each", async () => {
    const { WireWriter } = await import("@pangea/monolith");
    const idOf = (slot: number, h: number) => Uint32Array.from([h, (slot << 16) >>> 0]);
    const w = new WireWriter();
    // C1: SHARED, one fid for all 3 examples
    w.message(1, (l) => l.string(1, "C1").message(2, (f) => f.message(2, (x) => x.packedFixed64(1, idOf(1, 77), 1))).tag(3, 0).varint(1));
    // C2: INDIVIDUAL, one fid each
    w.message(1, (l) => {
      l.string(1, "C2");
      for (const h of [1, 2, 3]) l.message(2, (f) => f.message(2, (x) => x.packedFixed64(1, idOf(2, h), 1)));
    });
    w.message(1, (l) => {
      l.string(1, "__LABEL__");
      for (const y of [1, 0, 1]) l.message(2, (f) => f.message(3, (x) => x.packedFloat(1, [y])));
    });
    w.tag(3, 0).varint(3);
    const batch = w.finish();
    const asm = new SampleAssembler(compileFeatureList({ slots: [{ name: "C1", slot: 1, type: "fid_v2", dim: 16 }, { name: "C2", slot: 2, type: "fid_v2", dim: 16 }], dense: [], label: { index: 0, column: "label" } }, "t"));
    const seen: { ids: number[]; label: number }[] = [];
    const n = decodeExampleBatch(batch, 0, batch.length, asm, () => seen.push({ ids: Array.from(asm.words.subarray(0, asm.count * 2)).filter((_, i) => i % 2 === 0), label: asm.labels[0]! }));
    expect(n).toBe(3);
    expect(seen).toEqual([
      { ids: [77, 1], label: 1 },
      { ids: [77, 2], label: 0 },
      { ids: [77, 3], label: 1 },
    ]);
  });

  it("an INDIVIDUAL list with the wrong number of features is refused", async () => {
    const { WireWriter } = await import("@pangea/monolith");
    const w = new WireWriter();
    w.message(1, (l) => l.string(1, "C2").message(2, (f) => f.message(2, (x) => x.packedFixed64(1, Uint32Array.from([1, 0x20000]), 1))));
    w.tag(3, 0).varint(2);
    const b = w.finish();
    const asm = new SampleAssembler(compileFeatureList(synthetic.featureListConfig("fid_v2"), "t"));
    expect(() => decodeExampleBatch(b, 0, b.length, asm, () => {})).toThrow("feature list 'C2' holds 1 features, expected 2 (INDIVIDUAL, batch_size 2)");
  });
});
