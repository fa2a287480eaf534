import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { crc32c, maskedCrc32c } from "@pangea/kit";
import { TfRecordFraming, encodeTfRecords } from "../src/formats/tfrecord.js";
import { PbFraming, encodePbRecords, type PbFramingOptions } from "../src/formats/pb-framing.js";
import type { FrameEvent } from "../src/formats/framing.js";
import { WireWriter } from "@pangea/monolith";

const bytes = (s: string) => new TextEncoder().encode(s);
const collect = (it: Generator<FrameEvent>) => [...it];
/** A protobuf message holding `payload` as field 1: what a pb frame must hold to be read as a record. */
const message = (payload: Uint8Array) => new WireWriter().bytes(1, payload).finish();
const records = (events: FrameEvent[]) => events.filter((e) => e.kind === "record").map((e) => Array.from((e as { record: { bytes: Uint8Array } }).record.bytes));

describe("CRC-32C", () => {
  // Check values from RFC 3720 (iSCSI), appendix B.4, and the standard "123456789".
  it.each([
    ["123456789", 0xe3069283],
    ["", 0],
  ])("crc32c(%j) = %d", (s, crc) => expect(crc32c(bytes(s))).toBe(crc));

  it("matches RFC 3720's vectors for 32 zero bytes, 32 0xff bytes and an ascending sequence", () => {
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i))).toBe(0x46dd794e);
  });

  it("property: slicing-by-8 equals the bytewise definition at every length and offset", () => {
    const bytewise = (b: Uint8Array) => {
      let c = 0xffffffff;
      for (const x of b) {
        c ^= x;
        for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
      }
      return (c ^ 0xffffffff) >>> 0;
    };
    fc.assert(fc.property(fc.uint8Array({ maxLength: 100 }), fc.nat(5), (b, off) => {
      const padded = new Uint8Array(b.length + off);
      padded.set(b, off);
      expect(crc32c(padded, off)).toBe(bytewise(b));
    }));
  });
});

describe("TFRecord", () => {
  it("property: records round-trip", () => {
    fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 }), (rs) => {
      const events = collect(new TfRecordFraming().frames(encodeTfRecords(rs)));
      expect(events.every((e) => e.kind === "record")).toBe(true);
      expect(records(events)).toEqual(rs.map((r) => Array.from(r)));
    }));
  });

  it("writes the masked CRC of the length and of the data", () => {
    const file = encodeTfRecords([bytes("abc")]);
    expect(file.length).toBe(3 + 16);
    expect(new DataView(file.buffer).getUint32(8, true)).toBe(maskedCrc32c(file, 0, 8));
    expect(new DataView(file.buffer).getUint32(15, true)).toBe(maskedCrc32c(bytes("abc")));
  });

  it("a bad data CRC spoils only that record and names its offset", () => {
    const file = encodeTfRecords([bytes("first"), bytes("second"), bytes("third")]);
    file[21 + 12] ^= 1; // a data byte of the second record (it starts at 5 + 16 = 21)
    const events = collect(new TfRecordFraming().frames(file));
    expect(events.map((e) => e.kind)).toEqual(["record", "bad-record", "record"]);
    expect(events[1]).toEqual({ kind: "bad-record", failure: { offset: 21, message: "TFRecord data checksum mismatch" } });
  });

  it.each([
    ["a bad length CRC", (f: Uint8Array) => { f[8] ^= 1; }, "TFRecord length checksum mismatch", 0],
    ["a truncated header", (f: Uint8Array) => f.subarray(0, 7), "truncated TFRecord header: 7 of 12 bytes", 0],
    ["a truncated body", (f: Uint8Array) => f.subarray(0, f.length - 2), "TFRecord length 5 runs past the end of the file (3 bytes left)", 0],
  ])("%s with nothing readable after it loses the rest of the file", (_what, damage, message, offset) => {
    let file = encodeTfRecords([bytes("hello")]);
    file = (damage(file) as Uint8Array | undefined) ?? file;
    const events = collect(new TfRecordFraming().frames(file));
    expect(events).toEqual([{ kind: "lost", failure: { offset, message, lostBytes: file.length - offset, resumeAt: null } }]);
  });

  it("a bad length CRC resumes at the next record whose length CRC checks", () => {
    const file = encodeTfRecords([bytes("first"), bytes("second"), bytes("third")]);
    file[21 + 8] ^= 1; // the second record's length CRC (it starts at 5 + 16 = 21)
    const events = collect(new TfRecordFraming().frames(file));
    expect(events.map((e) => e.kind)).toEqual(["record", "lost", "record"]);
    expect(events[1]).toEqual({ kind: "lost", failure: { offset: 21, message: "TFRecord length checksum mismatch", lostBytes: 6 + 16, resumeAt: 43 } });
    expect(records(events)).toEqual([Array.from(bytes("first")), Array.from(bytes("third"))]);
  });

  it("4 KB of damage in the middle of a file: the records after it are read, the bytes skipped are counted", () => {
    const rs = Array.from({ length: 400 }, (_, i) => bytes(`record number ${i} `.repeat(1 + (i % 5))));
    const file = encodeTfRecords(rs);
    const from = Math.floor(file.length / 2);
    let seed = 7;
    for (let k = from; k < from + 4096; k++) file[k] = (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
    const events = collect(new TfRecordFraming().frames(file));
    const got = records(events).map((r) => new TextDecoder().decode(Uint8Array.from(r)));
    // Every record wholly outside the damage is read; the first after it included.
    const offsets: number[] = [];
    rs.reduce((at, r) => (offsets.push(at), at + r.length + 16), 0);
    const outside = rs.filter((_, i) => offsets[i]! + rs[i]!.length + 16 <= from || offsets[i]! >= from + 4096).map((r) => new TextDecoder().decode(r));
    expect(got).toEqual(outside);
    const lost = events.filter((e) => e.kind === "lost") as Extract<FrameEvent, { kind: "lost" }>[];
    expect(lost.length).toBeGreaterThanOrEqual(1);
    expect(lost.every((e) => e.failure.resumeAt !== null)).toBe(true);
    const lostBytes = lost.reduce((n, e) => n + e.failure.lostBytes, 0);
    expect(lostBytes).toBeGreaterThan(0);
    expect(lostBytes).toBeLessThanOrEqual(4096 + 2 * 200);
  });
});

const PB_OPTS: PbFramingOptions = { lagrangexHeader: false, kafkaDumpPrefix: false, hasSortId: true, kafkaDump: false };
const optionSets: PbFramingOptions[] = [];
for (const lagrangexHeader of [false, true]) for (const kafkaDumpPrefix of [false, true]) for (const hasSortId of [false, true]) for (const kafkaDump of [false, true]) optionSets.push({ lagrangexHeader, kafkaDumpPrefix, hasSortId, kafkaDump });

describe("Monolith pb framing", () => {
  it.each(optionSets.map((o) => [JSON.stringify(o), o] as const))("property: records round-trip with %s", (_n, opts) => {
    fc.assert(fc.property(fc.array(fc.tuple(fc.uint8Array({ maxLength: 200 }).map(message), fc.uint8Array({ maxLength: 20 })), { maxLength: 10 }), (rs) => {
      const file = encodePbRecords(rs.map(([r]) => r), opts, rs.map(([, s]) => s));
      const events = collect(new PbFraming(opts).frames(file));
      expect(records(events)).toEqual(rs.map(([r]) => Array.from(r)));
    }), { numRuns: 30 });
  });

  it("reads a sort id of any size (header = size + bytes) before the record", () => {
    const file = encodePbRecords([message(bytes("rec"))], { lagrangexHeader: false, kafkaDumpPrefix: false, hasSortId: true, kafkaDump: false }, [bytes("sort-id-123")]);
    expect(file.length).toBe(8 + 11 + 8 + 5);
    expect(records(collect(new PbFraming({ lagrangexHeader: false, kafkaDumpPrefix: false, hasSortId: true, kafkaDump: false }).frames(file)))).toEqual([Array.from(message(bytes("rec")))]);
  });

  it("refuses Monolith's 0xfefefefe placeholder size", () => {
    const file = new Uint8Array(16);
    new DataView(file.buffer).setUint32(8, 0xfefefefe, true);
    const [e] = collect(new PbFraming({ lagrangexHeader: false, kafkaDumpPrefix: false, hasSortId: true, kafkaDump: false }).frames(file));
    expect(e).toMatchObject({ kind: "lost", failure: { offset: 0, message: expect.stringContaining("0xfefefefe placeholder"), resumeAt: null } });
  });

  it("names the framing options when a size runs past the end (the usual sign of wrong options)", () => {
    const file = encodePbRecords([bytes("abc")], { lagrangexHeader: false, kafkaDumpPrefix: false, hasSortId: false, kafkaDump: false });
    const [e] = collect(new PbFraming({ lagrangexHeader: false, kafkaDumpPrefix: false, hasSortId: true, kafkaDump: false }).frames(file));
    // The record's own size (3) is taken for a sort id size, the 3 bytes for the sort id, and the size is then missing.
    expect(e).toMatchObject({
      kind: "lost",
      failure: { offset: 0, message: "truncated record: the file ends inside the record size", hint: "check the framing options (sort id, kafka dump, lagrangex header; or --framing tfrecord for a TFRecord file)" },
    });
  });

  it("bytes that damage stops (a window with an end of its own) are not said to end the file", () => {
    const file = encodePbRecords([bytes("abc")], { lagrangexHeader: false, kafkaDumpPrefix: false, hasSortId: false, kafkaDump: false });
    const framing = new PbFraming({ lagrangexHeader: false, kafkaDumpPrefix: false, hasSortId: true, kafkaDump: false });
    const [e] = collect(framing.frames(file, { final: true, maxFrame: Number.POSITIVE_INFINITY, end: "the end of the readable data" }));
    expect(e).toMatchObject({ kind: "lost", failure: { offset: 0, message: "truncated record: the record size runs past the end of the readable data" } });
    const [t] = collect(new TfRecordFraming().frames(encodeTfRecords([bytes("abcdef")]).subarray(0, 20), { final: true, maxFrame: Number.POSITIVE_INFINITY, end: "the end of the readable data" }));
    expect(t).toMatchObject({ kind: "lost", failure: { offset: 0, message: "TFRecord length 6 runs past the end of the readable data (4 bytes left)" } });
  });

  it("a size above 2^53 is said to be, not printed rounded", () => {
    const file = new Uint8Array(16);
    new DataView(file.buffer).setBigUint64(0, 2n ** 62n, true);
    const [e] = collect(new PbFraming({ lagrangexHeader: false, kafkaDumpPrefix: false, hasSortId: false, kafkaDump: false }).frames(file));
    expect(e).toMatchObject({ kind: "lost", failure: { offset: 0, message: expect.stringMatching(/^record size above 2\^53 runs past the end of the file \(8 bytes left\)/) } });
  });

  it("property: any byte string is framed without throwing or looping, every byte accounted for once, for every option set", () => {
    // Records, refused records and lost regions tile the input: each event starts where the previous one ended.
    const tiles = (b: Uint8Array, events: FrameEvent[], trailer: number) => {
      let at = 0;
      for (const e of events) {
        const offset = e.kind === "record" ? e.record.offset : e.failure.offset;
        expect(offset).toBe(at);
        if (e.kind === "lost") at = e.failure.resumeAt ?? b.length;
        else if (e.kind === "record") at = e.record.bytes.byteOffset - b.byteOffset + e.record.bytes.length + trailer;
        else return; // a bad TFRecord's extent is its trusted length; the next event checks it
      }
      expect(at).toBe(b.length);
    };
    fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), fc.constantFrom(...optionSets), (b, opts) => {
      tiles(b, collect(new PbFraming(opts).frames(b)), 0);
    }), { numRuns: 3000 });
    fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), (b) => {
      tiles(b, collect(new TfRecordFraming().frames(b)), 4);
    }), { numRuns: 3000 });
  });

  it("4 KB of damage in the middle of a file: the next plausible size is found and the records after it are read", () => {
    const opts = PB_OPTS;
    const rs = Array.from({ length: 400 }, (_, i) => message(bytes(`record number ${i} `.repeat(1 + (i % 5)))));
    const sortIds = rs.map((_, i) => bytes(`sid-${i}`));
    const file = encodePbRecords(rs, opts, sortIds);
    const from = Math.floor(file.length / 2);
    let seed = 11;
    for (let k = from; k < from + 4096; k++) file[k] = (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
    const events = collect(new PbFraming(opts).frames(file));
    const got = records(events).map((r) => new TextDecoder().decode(Uint8Array.from(r)));
    const offsets: number[] = [];
    rs.reduce((at, r, i) => (offsets.push(at), at + 16 + sortIds[i]!.length + r.length), 0);
    const end = (i: number) => offsets[i]! + 16 + sortIds[i]!.length + rs[i]!.length;
    const after = rs.filter((_, i) => offsets[i]! >= from + 4096).map((r) => new TextDecoder().decode(r));
    const before = rs.filter((_, i) => end(i) <= from).map((r) => new TextDecoder().decode(r));
    // Everything before the damage, then everything after it (damage inside a message is the decoder's to refuse).
    expect(got.slice(0, before.length)).toEqual(before);
    expect(got.slice(-after.length)).toEqual(after);
    const lost = events.filter((e) => e.kind === "lost") as Extract<FrameEvent, { kind: "lost" }>[];
    expect(lost.length).toBeGreaterThanOrEqual(1);
    expect(lost.reduce((n, e) => n + e.failure.lostBytes, 0)).toBeLessThanOrEqual(4096 + 2 * 200);
  });

  describe("a frame whose bytes are not a record is scanned from its start, so it costs only the records it touches", () => {
    const rs = Array.from({ length: 200 }, (_, i) => message(bytes(`record number ${i} `.repeat(1 + (i % 5)))));
    const sortIds = rs.map((_, i) => bytes(`sid-${i}`));
    const starts: number[] = [];
    rs.reduce((at, r, i) => (starts.push(at), at + 16 + sortIds[i]!.length + r.length), 0);
    const sizeAt = (i: number) => starts[i]! + 8 + sortIds[i]!.length;
    const frameLength = (i: number) => 16 + sortIds[i]!.length + rs[i]!.length;
    const without = (...lost: number[]) => rs.filter((_, i) => !lost.includes(i)).map((r) => Array.from(r));

    it("a record size made larger but still inside the file (it would read the next dozen records as one): only that record is lost, its bytes counted", () => {
      const file = encodePbRecords(rs, PB_OPTS, sortIds);
      file[sizeAt(50) + 1] ^= 0x10; // 4,096 bytes more or less: well inside the file, a dozen records and more
      const events = collect(new PbFraming(PB_OPTS).frames(file));
      expect(records(events)).toEqual(without(50));
      const lost = events.filter((e) => e.kind === "lost") as Extract<FrameEvent, { kind: "lost" }>[];
      expect(lost.map((e) => e.failure)).toEqual([
        { offset: starts[50], message: expect.stringMatching(/^record size \d+: its bytes are not a protobuf message: .* \(a damaged size or a damaged record\)$/), lostBytes: frameLength(50), resumeAt: starts[51] },
      ]);
    });

    it("a record size made smaller: only that record is lost", () => {
      const file = encodePbRecords(rs, PB_OPTS, sortIds);
      file[sizeAt(120)] -= 3;
      const events = collect(new PbFraming(PB_OPTS).frames(file));
      expect(records(events)).toEqual(without(120));
      expect(events.filter((e) => e.kind === "lost").map((e) => (e as Extract<FrameEvent, { kind: "lost" }>).failure.lostBytes)).toEqual([frameLength(120)]);
    });

    it("a record size made smaller that still frames a message (cut at a field's end): that record is lost, named, not kept cut short", () => {
      // Two fields: cut to the first, the record still walks as a message; its second field is then where a frame should start.
      const two = rs.map((r, i) => (i === 60 ? new WireWriter().bytes(1, bytes("first field")).bytes(2, bytes("second field, cut off")).finish() : r));
      const file = encodePbRecords(two, PB_OPTS, sortIds);
      const firstField = 2 + "first field".length;
      const whole = two[60]!.length;
      new DataView(file.buffer).setBigUint64(sizeAt(60), BigInt(firstField), true);
      const events = collect(new PbFraming(PB_OPTS).frames(file));
      expect(records(events)).toEqual(two.filter((_, i) => i !== 60).map((r) => Array.from(r)));
      const lost = events.filter((e) => e.kind === "lost") as Extract<FrameEvent, { kind: "lost" }>[];
      expect(lost.map((e) => e.failure)).toEqual([
        {
          offset: starts[60],
          message: `record size ${firstField} cuts its record short (a damaged size): the ${whole - firstField} bytes after it are no frame, and with them it walks as one message of ${whole} bytes`,
          lostBytes: 16 + sortIds[60]!.length + whole,
          resumeAt: starts[60]! + 16 + sortIds[60]!.length + whole,
        },
      ]);
      // The last record cut so: its tail runs to the end of the file.
      const lastCut = encodePbRecords([...rs.slice(0, 3), two[60]!], PB_OPTS, sortIds.slice(0, 4));
      new DataView(lastCut.buffer).setBigUint64(lastCut.length - whole - 8, BigInt(firstField), true);
      const tail = collect(new PbFraming(PB_OPTS).frames(lastCut));
      expect(records(tail)).toEqual(rs.slice(0, 3).map((r) => Array.from(r)));
      expect(tail.at(-1)).toMatchObject({ kind: "lost", failure: { lostBytes: 16 + sortIds[3]!.length + whole, resumeAt: null } });
    });

    it("damage in the frame after a record does not cost that record", () => {
      const file = encodePbRecords(rs, PB_OPTS, sortIds);
      file[sizeAt(31)] ^= 0x55;
      file[sizeAt(31) + 6] = 0x7f; // a size past the end of the file
      const events = collect(new PbFraming(PB_OPTS).frames(file));
      expect(records(events)).toEqual(without(31));
      expect(events.filter((e) => e.kind === "lost").map((e) => (e as Extract<FrameEvent, { kind: "lost" }>).failure.offset)).toEqual([starts[31]]);
    });

    it("a message whose own bytes are damaged (its tag zeroed): only that record is lost", () => {
      const file = encodePbRecords(rs, PB_OPTS, sortIds);
      file[sizeAt(7) + 8] = 0;
      expect(records(collect(new PbFraming(PB_OPTS).frames(file)))).toEqual(without(7));
    });

    it("zeroed bytes are one lost region, not an empty record every 16 bytes", () => {
      const file = encodePbRecords(rs, PB_OPTS, sortIds);
      file.fill(0, starts[80]! + 5, starts[90]! + 5);
      const events = collect(new PbFraming(PB_OPTS).frames(file));
      expect(records(events)).toEqual(without(...Array.from({ length: 11 }, (_, k) => 80 + k)));
      const lost = events.filter((e) => e.kind === "lost") as Extract<FrameEvent, { kind: "lost" }>[];
      expect(lost.map((e) => [e.failure.offset, e.failure.resumeAt])).toEqual([[starts[80], starts[91]]]);
    });
  });
});
