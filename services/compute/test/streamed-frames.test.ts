import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { ByteStream } from "../src/formats/byte-stream.js";
import { type FrameEvent, type FrameWindow, type RecordFraming } from "../src/formats/framing.js";
import { PbFraming, encodePbRecords, PB_FILE_DEFAULTS } from "../src/formats/pb-framing.js";
import { forEachFrame, type FileFrameEvent } from "../src/formats/streamed-frames.js";
import { TfRecordFraming, encodeTfRecords } from "../src/formats/tfrecord.js";
import { WireWriter } from "@pangea/monolith";

const tmp = mkdtempSync(join(tmpdir(), "pangea-streamed-frames-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let files = 0;

/** A framing that remembers the largest window it was given. */
class Watched implements RecordFraming {
  readonly name: string;
  largest = 0;
  constructor(private readonly inner: RecordFraming) {
    this.name = inner.name;
  }
  *frames(data: Uint8Array, window?: FrameWindow): Generator<FrameEvent> {
    this.largest = Math.max(this.largest, data.length);
    yield* this.inner.frames(data, window);
  }
}

/** The events forEachFrame gives for a file, records as their bytes' length and first byte (their views do not outlive the call). */
async function streamed(data: Uint8Array, framing: RecordFraming, maxWindow = 256 << 20): Promise<unknown[]> {
  const path = join(tmp, `f${files++}`);
  writeFileSync(path, data);
  const stream = new ByteStream(path, "none", null);
  const out: unknown[] = [];
  try {
    await forEachFrame(stream, framing, maxWindow, (ev) => void out.push(summary(ev)));
  } finally {
    stream.close();
  }
  return out;
}

function summary(ev: FileFrameEvent): unknown {
  if (ev.kind === "record") return { record: ev.record.offset, length: ev.record.bytes.length, first: ev.record.bytes[0] };
  return ev;
}

const framings: [string, () => RecordFraming, (rs: Uint8Array[]) => Uint8Array][] = [
  ["tfrecord", () => new TfRecordFraming(), encodeTfRecords],
  // A pb frame must hold a protobuf message to be read as a record: each payload is one as field 1.
  ["pb", () => new PbFraming(PB_FILE_DEFAULTS), (rs) => encodePbRecords(rs.map((r) => new WireWriter().bytes(1, r).finish()), PB_FILE_DEFAULTS)],
];

describe("forEachFrame: a file framed a window at a time", () => {
  it.each(framings)("%s: gives the events of the whole file framed at once, records cut by windows and damage included", async (_name, framing, encode) => {
    // Records up to 300 KB laid across 1 MiB windows, with a few bytes overwritten (sizes, checksums, bodies).
    await fc.assert(fc.asyncProperty(
      fc.array(fc.nat(300_000), { minLength: 5, maxLength: 40 }),
      fc.array(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
      async (sizes, damage) => {
        const file = encode(sizes.map((n, i) => new Uint8Array(n).fill(i & 255)));
        for (const [where, value] of damage) file[Math.min(file.length - 1, Math.floor(where * file.length))] = value;
        const whole = [...framing().frames(file, { final: true, maxFrame: 256 << 20 })].map((ev) => summary(ev as FileFrameEvent));
        expect(await streamed(file, framing())).toEqual(whole);
      },
    ), { numRuns: 15, endOnFailure: true });
  });

  it.each([
    ...framings.slice(0, 1).map(([name, framing, encode]) => [name, framing, encode, 9, "its length checksum"] as const),
    ...framings.slice(1).map(([name, framing, encode]) => [name, framing, encode, 15, "the top byte of its size"] as const),
  ])("%s: one damaged header early in a 40 MB file keeps the window near 1 MiB (it held the whole file)", async (_name, framing, encode, damaged) => {
    const file = encode(Array.from({ length: 200_000 }, (_, i) => new Uint8Array(200).fill(i & 255)));
    const recordBytes = file.length / 200_000;
    // The fifth record's header: a length CRC that fails (TFRecord), a size running far past the file (pb).
    file[recordBytes * 5 + damaged] ^= 0xff;
    const watched = new Watched(framing());
    const events = await streamed(file, watched);
    expect(events.filter((e) => !(e as { record?: number }).record && (e as { record?: number }).record !== 0)).toHaveLength(1);
    expect(events.length).toBeGreaterThan(199_990);
    expect(watched.largest).toBeLessThan((1 << 20) + 4096);
  });

  it.each([
    ["the window grows to take it", 256 << 20],
    ["longer than a record may be: windows' losses joined", 1 << 20],
  ])("a garbage stretch longer than a window is one loss, resumed at the next record (%s)", async (_how, maxWindow) => {
    const good = encodeTfRecords([new Uint8Array(100).fill(1)]);
    const garbage = new Uint8Array(3 << 20).fill(0x5a);
    const file = new Uint8Array(good.length * 2 + garbage.length);
    file.set(good, 0);
    file.set(garbage, good.length);
    file.set(good, good.length + garbage.length);
    const events = await streamed(file, new TfRecordFraming(), maxWindow);
    expect(events).toEqual([
      { record: 0, length: 100, first: 1 },
      { kind: "lost", failure: { offset: good.length, message: "TFRecord length checksum mismatch", lostBytes: garbage.length, resumeAt: good.length + garbage.length } },
      { record: good.length + garbage.length, length: 100, first: 1 },
    ]);
  });

  it("a record said to be longer than the reader holds is damage named as such, and reading goes on after it", async () => {
    const records = encodeTfRecords([new Uint8Array(3 << 20).fill(7), new Uint8Array(10).fill(8)]);
    const events = await streamed(records, new TfRecordFraming(), 2 << 20);
    expect(events[0]).toMatchObject({ kind: "lost", failure: { offset: 0, message: `TFRecord length ${3 << 20} is more than the ${2 << 20} bytes compute holds of one record (taken for damage)`, resumeAt: (3 << 20) + 16 } });
    expect(events.slice(1)).toEqual([{ record: (3 << 20) + 16, length: 10, first: 8 }]);
  });
});
