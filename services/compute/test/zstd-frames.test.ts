import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ByteStream } from "../src/formats/byte-stream.js";
import { ZstdFrames, type FrameEnd } from "../src/formats/zstd-frames.js";

/** Frames made by Debian's zstd tool (the independent encoder): its options set checksums, content sizes and block kinds. */
const haveZstd = spawnSync("zstd", ["--version"]).status === 0;
const dir = mkdtempSync(join(tmpdir(), "pangea-zstd-frames-"));

/** Bytes that do not compress (a xorshift stream): zstd stores them in raw blocks, whose damage still decodes. */
function noise(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}
const text = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => `${i}\t${(i * 2654435761) % 1000003}\tline\n`).join(""));

function zstd(data: Buffer, args: string[], stdin = false): Buffer {
  const path = join(dir, `in-${Math.random().toString(36).slice(2)}`);
  writeFileSync(path, data);
  // From stdin the frame header carries no content size.
  return stdin ? execFileSync("zstd", ["-q", "-c", ...args], { input: data, maxBuffer: 1 << 28 }) : execFileSync("zstd", ["-q", "-c", ...args, path], { maxBuffer: 1 << 28 });
}

/** A skippable frame (magic 0x184D2A5x, a size, that many bytes), as some tools write metadata. */
function skippable(payload: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt32LE(0x184d2a53, 0);
  h.writeUInt32LE(payload.length, 4);
  return Buffer.concat([h, payload]);
}

/** The frame ends, the stream fed in pieces of `step` bytes, as offsets in the whole stream. */
function endsOf(bytes: Buffer, step: number): (Omit<FrameEnd, "at"> & { end: number })[] {
  const w = new ZstdFrames();
  const out: (Omit<FrameEnd, "at"> & { end: number })[] = [];
  for (let at = 0; at < bytes.length; at += step) for (const e of w.feed(bytes.subarray(at, at + step))) out.push({ end: at + e.at, checksum: e.checksum, start: e.start });
  expect(w.following).toBe(true);
  return out;
}

async function readAll(bytes: Buffer): Promise<{ data: Buffer; damage: ByteStream["damage"] }> {
  const path = join(dir, `f-${Math.random().toString(36).slice(2)}.zst`);
  writeFileSync(path, bytes);
  const s = new ByteStream(path, "auto");
  const parts: Uint8Array[] = [];
  for (let p = await s.next(); p; p = await s.next()) parts.push(p);
  s.close();
  return { data: Buffer.concat(parts), damage: s.damage };
}

describe.runIf(haveZstd)("zstd frames (files from Debian's zstd tool)", () => {
  it("finds every frame's end and checksum, whatever the pieces it is fed in", () => {
    const a = zstd(text(30_000), []); // checksum on (the tool's default), content size in the header
    const b = zstd(noise(300_000, 7), ["--no-check"]); // raw blocks, no checksum
    const c = zstd(text(5), ["-19"], true); // one small block, no content size
    const meta = skippable(Buffer.from("pangea"));
    const stream = Buffer.concat([a, meta, b, c, skippable(Buffer.alloc(0))]);
    const expected = [
      { end: a.length, checksum: a.readUInt32LE(a.length - 4), start: 0 },
      { end: a.length + meta.length + b.length, checksum: null, start: a.length + meta.length },
      { end: stream.length - 8, checksum: c.readUInt32LE(c.length - 4), start: a.length + meta.length + b.length },
    ];
    for (const step of [1, 3, 4096, stream.length]) expect(endsOf(stream, step), `pieces of ${step}`).toEqual(expected);
  });

  it("stops following at bytes that are not a frame (the decoder names that damage)", () => {
    const w = new ZstdFrames();
    expect(w.feed(Buffer.from("not zstd at all"))).toEqual([]);
    expect(w.following).toBe(false);
  });

  it("a stream of several frames reads back whole; a damaged block that still decodes is caught by its frame's checksum", async () => {
    const first = noise(200_000, 3);
    const second = text(20_000);
    const good = Buffer.concat([zstd(first, []), zstd(second, [])]);
    const r = await readAll(good);
    expect(r.damage).toBeNull();
    expect(r.data.equals(Buffer.concat([first, second]))).toBe(true);
    // A byte inside the first frame's raw block: the decoder gives other bytes and no error of its own.
    const bad = Buffer.from(good);
    bad[150_000] = bad[150_000]! ^ 0x20;
    const frameEnd = zstd(first, []).length;
    const d = await readAll(bad);
    expect(d.damage).toEqual({
      fileOffset: frameEnd - 4,
      outputOffset: 200_000,
      message: `cannot zstd-decompress: the frame at bytes 0-${frameEnd - 1} decodes to data whose checksum (XXH64) is not the frame's: its compressed blocks are damaged, and the records read from it may hold wrong bytes`,
      afterData: false,
      wrongOutput: true,
    });
    // What came before the check is the damaged frame's (as with gzip, checked at its end); nothing after is read.
    expect(d.data.length).toBe(200_000);
    // Without checksums the same damage cannot be seen.
    const unchecked = Buffer.concat([zstd(first, ["--no-check"]), zstd(second, ["--no-check"])]);
    unchecked[150_000] = unchecked[150_000]! ^ 0x20;
    const u = await readAll(unchecked);
    expect(u.damage).toBeNull();
    expect(u.data.length).toBe(first.length + second.length);
    expect(u.data.equals(Buffer.concat([first, second]))).toBe(false);
  });
});

// The checksum the walker reports is the tool's: cross-checked against `zstd -lv`'s listing of a file.
describe.runIf(haveZstd)("zstd frames against the tool's own listing", () => {
  it("names the same checksum `zstd -lv` prints", () => {
    const path = join(dir, "listed.zst");
    writeFileSync(path, zstd(text(1000), []));
    const listing = execFileSync("zstd", ["-lv", path], { stdio: ["ignore", "pipe", "ignore"] }).toString();
    const shown = /Check: XXH64 ([0-9a-f]{8})/i.exec(listing);
    expect(shown, listing).not.toBeNull();
    const ends = endsOf(readFileSync(path), 4096);
    expect(ends).toHaveLength(1);
    expect(ends[0]!.checksum!.toString(16).padStart(8, "0")).toBe(shown![1]!.toLowerCase());
  });
});
