import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { crc32c, maskedCrc32c } from "@pangea/kit";
import { TfRecordFraming, encodeTfRecords } from "../src/formats/tfrecord.js";
import { PbFraming, encodePbRecords, type PbFramingOptions } from "../src/formats/pb-framing.js";
import type { FrameEvent } from "../src/formats/framing.js";

const bytes = (s: string) => new TextEncoder().encode(s);
const collect = (it: Generator<FrameEvent>) => [...it];
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
  ])("%s is fatal for the rest of the file", (_what, damage, message, offset) => {
    let file = encodeTfRecords([bytes("hello")]);
    file = (damage(file) as Uint8Array | undefined) ?? file;
    const events = collect(new TfRecordFraming().frames(file));
    expect(events).toEqual([{ kind: "fatal", failure: { offset, message, lostBytes: file.length - offset } }]);
  });
});

const optionSets: PbFramingOptions[] = [];
for (const lagrangexHeader of [false, true]) for (const kafkaDumpPrefix of [false, true]) for (const hasSortId of [false, true]) for (const kafkaDump of [false, true]) optionSets.push({ lagrangexHeader, kafkaDumpPrefix, hasSortId, kafkaDump });

describe("Monolith pb framing", () => {
  it.each(optionSets.map((o) => [JSON.stringify(o), o] as const))("property: records round-trip with %s", (_n, opts) => {
    fc.assert(fc.property(fc.array(fc.tuple(fc.uint8Array({ maxLength: 200 }), fc.uint8Array({ maxLength: 20 })), { maxLength: 10 }), (rs) => {
      const file = encodePbRecords(rs.map(([r]) => r), opts, rs.map(([, s]) => s));
      const events = collect(new PbFraming(opts).frames(file));
      expect(records(events)).toEqual(rs.map(([r]) => Array.from(r)));
    }), { numRuns: 30 });
  });

  it("reads a sort id of any size (header = size + bytes) before the record", () => {
    const file = encodePbRecords([bytes("rec")], { lagrangexHeader: false, kafkaDumpPrefix: false, hasSortId: true, kafkaDump: false }, [bytes("sort-id-123")]);
    expect(file.length).toBe(8 + 11 + 8 + 3);
    expect(records(collect(new PbFraming({ lagrangexHeader: false, kafkaDumpPrefix: false, hasSortId: true, kafkaDump: false }).frames(file)))).toEqual([Array.from(bytes("rec"))]);
  });

  it("refuses Monolith's 0xfefefefe placeholder size", () => {
    const file = new Uint8Array(16);
    new DataView(file.buffer).setUint32(8, 0xfefefefe, true);
    const [e] = collect(new PbFraming({ lagrangexHeader: false, kafkaDumpPrefix: false, hasSortId: true, kafkaDump: false }).frames(file));
    expect(e).toMatchObject({ kind: "fatal", failure: { offset: 0, message: expect.stringContaining("0xfefefefe placeholder") } });
  });

  it("names the framing options when a size runs past the end (the usual sign of wrong options)", () => {
    const file = encodePbRecords([bytes("abc")], { lagrangexHeader: false, kafkaDumpPrefix: false, hasSortId: false, kafkaDump: false });
    const [e] = collect(new PbFraming({ lagrangexHeader: false, kafkaDumpPrefix: false, hasSortId: true, kafkaDump: false }).frames(file));
    // The record's own size (3) is taken for a sort id size, the 3 bytes for the sort id, and the size is then missing.
    expect(e).toMatchObject({
      kind: "fatal",
      failure: { offset: 0, message: "truncated record: the file ends inside the record size; check the framing options (sort id, kafka dump, lagrangex header)" },
    });
  });

  it("property: any byte string is framed without throwing or looping, for every option set", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), fc.constantFrom(...optionSets), (b, opts) => {
      const events = collect(new PbFraming(opts).frames(b));
      expect(events.filter((e) => e.kind === "fatal").length).toBeLessThanOrEqual(1);
    }), { numRuns: 3000 });
    fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), (b) => {
      collect(new TfRecordFraming().frames(b));
    }), { numRuns: 3000 });
  });
});
