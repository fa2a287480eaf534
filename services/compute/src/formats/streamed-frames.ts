import type { ByteStream } from "./byte-stream.js";
import { concatBytes, type FrameEvent, type FrameFailure, type RecordFraming } from "./framing.js";

/** Bytes gathered before framing a window: large enough that a window holds many records. */
const WINDOW_STEP = 1 << 20;

/** A framing's events in a whole file: a window's `short` is the reader's to handle, never its caller's. */
export type FileFrameEvent = Exclude<FrameEvent, { kind: "short" }>;

/**
 * A framing's events over a stream, given to `each` in order (a record's
 * bytes are valid only during the call, until its promise, if it returns
 * one, settles), framed a window at a time, so a pass holds a window of the
 * file, not the file. Offsets are in the whole (decompressed) stream. A frame
 * the window's end cuts is framed again from its start with the bytes it
 * needs; one said to need more than `maxWindow` bytes is damage the framing
 * reports, so damaged lengths never make the window grow past what a record
 * can take.
 */
export async function forEachFrame(stream: ByteStream, framing: RecordFraming, maxWindow: number, each: (ev: FileFrameEvent) => void | Promise<void>): Promise<void> {
  let window: Uint8Array = new Uint8Array(0);
  let base = 0;
  let ended = false;
  const fill = async (min: number) => {
    const parts = [window];
    let size = window.length;
    while (!ended && size < min) {
      const p = await stream.next();
      if (p === null) ended = true;
      else {
        parts.push(p);
        size += p.length;
      }
    }
    window = parts.length === 1 ? window : concatBytes(parts);
  };
  await fill(WINDOW_STEP);
  // A loss to the end of a window as large as a record may be (garbage, no frame found in it) goes on in the next window:
  // held here, one loss with what follows, resumed where the next frame is found.
  let held: Lost | null = null;
  const give = async (ev: FileFrameEvent) => {
    // A promise: the caller's backpressure (its parse threads are busy); the window stays as it is meanwhile.
    const waiting = each(ev);
    if (waiting) await waiting;
  };
  while (window.length > 0) {
    let consumed = window.length;
    let needs = 0;
    // A stream that damage stopped ends before the file does: a frame cut there is not cut by the file's end.
    const end = ended && stream.damage && !stream.damage.afterData ? "the end of the readable data" : undefined;
    for (const ev of framing.frames(window, { final: ended, maxFrame: maxWindow, ...(end ? { end } : {}) })) {
      if (ev.kind === "short") {
        consumed = ev.offset;
        needs = ev.needs;
        break;
      }
      let out = shift(ev, base);
      if (held) {
        const f: FrameFailure = held.failure;
        if (out.kind === "lost" && out.failure.offset === f.offset + f.lostBytes) out = { kind: "lost", failure: { ...f, lostBytes: f.lostBytes + out.failure.lostBytes, resumeAt: out.failure.resumeAt } };
        else await give({ kind: "lost", failure: { ...f, resumeAt: f.offset + f.lostBytes } });
        held = null;
      }
      if (out.kind === "lost" && out.failure.resumeAt === null && !ended) held = out;
      else await give(out);
    }
    window = window.subarray(consumed);
    base += consumed;
    await fill(Math.max(needs, WINDOW_STEP));
  }
  if (held) await give(held);
}

type Lost = Extract<FileFrameEvent, { kind: "lost" }>;

function shift(ev: FileFrameEvent, base: number): FileFrameEvent {
  if (base === 0) return ev;
  if (ev.kind === "record") return { kind: "record", record: { ...ev.record, offset: ev.record.offset + base } };
  if (ev.kind === "bad-record") return { kind: "bad-record", failure: { ...ev.failure, offset: ev.failure.offset + base } };
  const f = ev.failure;
  return { kind: "lost", failure: { ...f, offset: f.offset + base, resumeAt: f.resumeAt === null ? null : f.resumeAt + base } };
}
