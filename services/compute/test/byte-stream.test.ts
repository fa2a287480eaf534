import { closeSync, mkdtempSync, openSync, renameSync, truncateSync, utimesSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deflateSync, gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { ByteStream } from "../src/formats/byte-stream.js";
import { ComputeErrors } from "../src/errors.js";
import type { Compression } from "../src/formats/compression.js";

const dir = mkdtempSync(join(tmpdir(), "pangea-byte-stream-"));

/** Everything a stream gives, and its damage; fails the test instead of hanging. */
async function readAll(bytes: Uint8Array, compression: Compression): Promise<{ text: string; damage: ByteStream["damage"] }> {
  const path = join(dir, `f-${Math.random().toString(36).slice(2)}`);
  writeFileSync(path, bytes);
  const s = new ByteStream(path, compression);
  const parts: Buffer[] = [];
  const read = (async () => {
    for (let p = await s.next(); p; p = await s.next()) parts.push(Buffer.from(p));
  })();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([read, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error("the stream hung")), 5_000)))]);
  clearTimeout(timer);
  s.close();
  return { text: Buffer.concat(parts).toString(), damage: s.damage };
}

// Text that does not compress to nothing: several 64 KiB read steps of input.
const text = Array.from({ length: 40_000 }, (_, i) => `${i}\t${(i * 2654435761) % 1000003}\tline`).join("\n");
const concat = (...parts: Uint8Array[]) => Buffer.concat(parts);

describe("ByteStream", () => {
  it.each([
    ["gzip + zero padding", concat(gzipSync(text), Buffer.alloc(4096)), "gzip"],
    ["zlib + zero padding", concat(deflateSync(text), Buffer.alloc(4096)), "zlib"],
    ["zlib + trailing text", concat(deflateSync(text), Buffer.from("trailing bytes of another tool")), "zlib"],
  ] as const)("%s: the data, then the end (bytes after the compressed data are ignored, as gzip(1) does), never a hang", async (_, bytes, compression) => {
    const r = await readAll(bytes, compression);
    expect(r.text).toBe(text);
    expect(r.damage).toBeNull();
  });

  // Stored (level 0) members have a size known in advance: the garbage can be put where the file's 64 KiB read steps meet.
  const storedOf = (n: number) => gzipSync(Buffer.from(text.slice(0, n)), { level: 0 });
  const storedEndingAt = (remainder: number) => {
    // A stored member grows with its text byte for byte, but for a block header now and then: a few steps reach it.
    let n = 150_000;
    for (let k = 0; k < 20; k++) {
      const off = (remainder - (storedOf(n).length % 65_536) + 65_536) % 65_536;
      if (off === 0) return n;
      n += off > 32_768 ? off - 65_536 : off;
    }
    throw new Error(`no stored member ends at ${remainder} mod 65536`);
  };
  it.each([
    ["one member", () => [text]],
    ["two members", () => [text.slice(0, 100_000), text.slice(100_000)]],
    ["a stored member whose garbage starts a read step", () => [text.slice(0, storedEndingAt(0))]],
    ["a stored member whose garbage's first byte ends a read step", () => [text.slice(0, storedEndingAt(65_535))]],
  ] as const)("gzip (%s) + trailing text: every byte of the members, then damage that says so and how to rewrite the file, at the garbage's first byte", async (_, parts) => {
    const texts = parts();
    const members = texts.map((t) => (texts.length === 1 && t !== text ? storedOf(t.length) : gzipSync(t)));
    const r = await readAll(concat(...members, Buffer.from("GARBAGE".repeat(20))), "gzip");
    expect(r.text).toBe(texts.join(""));
    expect(r.damage!.message).toBe("cannot gzip-decompress: bytes after a whole gzip member are not another member (trailing garbage, which gzip(1) ignores; rewrite the file without it, e.g. gzip -dc FILE | gzip > NEW.gz)");
    expect(r.damage!.fileOffset).toBe(members.reduce((n, m) => n + m.length, 0));
    expect(r.damage!.outputOffset).toBe(Buffer.byteLength(r.text));
    // Every record before the garbage was read: the job counts its bytes as ignored, not as a damaged stretch.
    expect(r.damage!.afterData).toBe(true);
  });

  it("a gzip file cut short gives every byte decompressed before the cut, then the damage at the right output offset", async () => {
    const whole = gzipSync(text);
    const r = await readAll(whole.subarray(0, Math.floor(whole.length * 0.7)), "gzip");
    expect(r.damage).not.toBeNull();
    expect(r.text.length).toBeGreaterThan(0);
    expect(text.startsWith(r.text)).toBe(true);
    expect(r.damage!.outputOffset).toBe(Buffer.byteLength(r.text));
    expect(r.damage!.message).toMatch(/cannot gzip-decompress/);
  });

  it("a gzip file damaged in its header: the damage is at byte 0, where decompressing failed (not as far as the file was read ahead)", async () => {
    // gzip's magic, then a compression method that is not deflate's (8).
    const r = await readAll(concat(Buffer.from([0x1f, 0x8b, 0x09, 0]), Buffer.from(text.repeat(4))), "gzip");
    expect(r.text).toBe("");
    expect(r.damage).toEqual({ fileOffset: 0, outputOffset: 0, message: "cannot gzip-decompress: unknown compression method", afterData: false, wrongOutput: false });
  });

  it("good output decoded from the same piece as the damage is handed out before the damage", async () => {
    // One read step holds a whole gzip member and a broken one after it: what the first decompressed still counts
    // (all but zlib's last unflushed output block).
    const first = text.slice(0, 150_000);
    const bytes = concat(gzipSync(first), Buffer.from([0x1f, 0x8b, 0x09, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3, 4]));
    expect(bytes.length).toBeLessThan(1 << 16);
    const r = await readAll(bytes, "gzip");
    expect(r.damage?.message).toMatch(/unknown compression method/);
    expect(r.text.length).toBeGreaterThan(100_000);
    expect(first.startsWith(r.text)).toBe(true);
    expect(r.damage!.outputOffset).toBe(Buffer.byteLength(r.text));
    // A later member's damaged header gave no wrong bytes: the records before it are the first member's, checked.
    expect(r.damage!.wrongOutput).toBe(false);
  });

  it("a bit flipped in a gzip member's compressed data: the damage says wrong output may have come before it", async () => {
    const whole = Buffer.from(gzipSync(text));
    whole[Math.floor(whole.length / 2)]! ^= 0x10;
    const r = await readAll(whole, "gzip");
    expect(r.damage?.message).toMatch(/^cannot gzip-decompress: /);
    expect([r.damage!.afterData, r.damage!.wrongOutput]).toEqual([false, true]);
    const cut = await readAll(gzipSync(text).subarray(0, 1000), "gzip");
    expect([cut.damage!.message, cut.damage!.wrongOutput]).toEqual(["cannot gzip-decompress: unexpected end of file", false]);
  });
});

describe("a file changed while its pass reads it", () => {
  /** Reads the first piece of a plain file, lets `change` act on it, reads on to the end. */
  async function changedMidway(change: (path: string) => void): Promise<ByteStream> {
    const path = join(dir, `changed-${Math.random().toString(36).slice(2)}`);
    writeFileSync(path, text);
    utimesSync(path, 1_700_000_000, 1_700_000_000);
    const s = new ByteStream(path, "none");
    expect(await s.next()).not.toBeNull();
    change(path);
    while (await s.next());
    s.close();
    return s;
  }

  it("rewritten in place (same size, a later time): COMPUTE_ERR_DATA_CHANGED, whatever the policy (its records are part old, part new)", async () => {
    const s = await changedMidway((path) => {
      const fd = openSync(path, "r+");
      writeSync(fd, Buffer.from("X".repeat(100)), 0, 100, 200_000);
      closeSync(fd);
    });
    expect(s.changed()?.rewritten).toBe(true);
    expect(() => s.assertNotRewritten()).toThrow(/^data file .* changed while its pass read it: modified at 2023-11-14T22:13:20\.000Z when its pass opened it, at .* at its end \(same size\)$/);
    try {
      s.assertNotRewritten();
    } catch (err) {
      expect(ComputeErrors.is(err, "COMPUTE_ERR_DATA_CHANGED")).toBe(true);
    }
  });

  it("replaced by another file of its name: COMPUTE_ERR_DATA_CHANGED", async () => {
    const s = await changedMidway((path) => {
      writeFileSync(`${path}.new`, text);
      renameSync(`${path}.new`, path);
    });
    expect(s.changed()).toEqual({ message: "another file took its name while it was read (it was replaced)", rewritten: true });
    expect(() => s.assertNotRewritten()).toThrow(/it was replaced/);
  });

  it("cut short: damage under the --on-bad-record policy (what was read before the cut is the file's), not a rewrite", async () => {
    const s = await changedMidway((path) => truncateSync(path, 100_000));
    expect(s.changed()).toEqual({ message: `the file shrank while being read (${text.length} bytes at the start, 100000 at the end)`, rewritten: false });
    expect(() => s.assertNotRewritten()).not.toThrow();
  });
});

describe("ByteStream: a file named compressed (--compression auto) that is not", () => {
  const named = (name: string, bytes: Uint8Array): string => {
    const path = join(dir, name);
    writeFileSync(path, bytes);
    return path;
  };

  it("is refused with what to give, not read as damage at byte 0 that costs the whole file", () => {
    const plainGz = named("plain.pb.gz", Buffer.from(text));
    expect(() => new ByteStream(plainGz, "auto")).toThrow(
      `data file ${plainGz} is named .gz, but it does not start with gzip's magic bytes (1f 8b), so it is not gzip-compressed or its first bytes are damaged: if it is uncompressed, name it without .gz, or give --compression none if every file given is uncompressed`,
    );
    const plainZst = named("plain.tfrecord.zstd", Buffer.from(text));
    expect(() => new ByteStream(plainZst, "auto")).toThrow(`data file ${plainZst} is named .zstd, but it does not start with zstd's magic bytes (28 b5 2f fd)`);
    const zstdGz = named("other.pb.gz", concat(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), Buffer.from(text)));
    expect(() => new ByteStream(zstdGz, "auto")).toThrow(`data file ${zstdGz} is named .gz, but it is zstd-compressed (it starts with zstd's magic bytes): name it ${join(dir, "other.pb.zst")}, or give --compression zstd if every file given is`);
    // --compression given: checked the same way, and the fix is not to give it for files of several compressions.
    expect(() => new ByteStream(plainZst, "gzip")).toThrow(
      `data file ${plainZst} is read as gzip (--compression gzip, which applies to every file given), but it does not start with gzip's magic bytes (1f 8b), so it is not gzip-compressed or its first bytes are damaged: give --compression auto and name each file by its compression (.gz, .zst, or no such ending when uncompressed)`,
    );
    const gzipFile = named("real.tsv.gz", gzipSync(text));
    expect(() => new ByteStream(gzipFile, "zstd")).toThrow(`data file ${gzipFile} is read as zstd (--compression zstd, which applies to every file given), but it is gzip-compressed (it starts with gzip's magic bytes): give --compression auto`);
    try {
      new ByteStream(plainGz, "auto");
    } catch (err) {
      expect(ComputeErrors.is(err) && err.code).toBe("COMPUTE_ERR_SOURCE");
    }
  });

  it("--compression none reads it as it is; an empty file named .gz is an empty file", async () => {
    expect((await readAll(Buffer.from(text), "none")).text).toBe(text);
    const s = new ByteStream(named("empty.pb.gz", new Uint8Array(0)), "auto");
    expect(await s.next()).toBeNull();
    expect(s.damage).toBeNull();
    s.close();
  });
});
