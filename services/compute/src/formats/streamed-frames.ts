import type { ByteStream } from "./byte-stream.js";
import { concatBytes, type FrameEvent, type RecordFraming } from "./framing.js";

/** Bytes gathered before framing a window: large enough that a window holds many records. */
const WINDOW_STEP = 1 << 20;

/**
 * A framing's events over a stream, given to `each` in order (a record's
 * bytes are valid only during the call, until its promise, if it returns
 * one, settles), framed a window at a time, so a pass
 * holds a window of the file, not the file. Offsets are in the whole
 * (decompressed) stream. A framing reports a record cut by the window's end
 * as lost (it runs past the end); unless the stream has ended, or the
 * window already holds `maxWindow` bytes from there (a length no real
 * record has: damage), the window is refilled from that record and framed
 * again instead.
 */
export async function forEachFrame(stream: ByteStream, framing: RecordFraming, maxWindow: number, each: (ev: FrameEvent) => void | Promise<void>): Promise<void> {
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
  while (window.length > 0) {
    let consumed = window.length;
    let cut = false;
    for (let ev of framing.frames(window)) {
      if (ev.kind === "lost" && !ended && window.length - ev.failure.offset < maxWindow) {
        consumed = ev.failure.offset;
        cut = true;
        break;
      }
      if (ev.kind === "lost" && !ended) ev = tooLong(ev, maxWindow);
      // A promise: the caller's backpressure (its parse threads are busy); the window stays as it is meanwhile.
      const waiting = each(shift(ev, base));
      if (waiting) await waiting;
    }
    window = window.subarray(consumed);
    base += consumed;
    // Refilled to hold more than before: a cut record gets the room it needs (up to maxWindow).
    await fill(cut ? Math.max(window.length * 2, WINDOW_STEP) : WINDOW_STEP);
  }
}

/** A record cut by a full window, not by the file's end: its length is more than a pass holds of one record, which the framing's words ("runs past the end of the file") would not say. */
function tooLong(ev: FrameEvent & { kind: "lost" }, maxWindow: number): FrameEvent {
  const message = ev.failure.message.replace(/runs past the end of the file \(\d+ bytes left\)/, `is more than the ${maxWindow} bytes compute holds of one record (taken for damage)`);
  return message === ev.failure.message ? ev : { kind: "lost", failure: { ...ev.failure, message } };
}

function shift(ev: FrameEvent, base: number): FrameEvent {
  if (base === 0) return ev;
  if (ev.kind === "record") return { kind: "record", record: { ...ev.record, offset: ev.record.offset + base } };
  if (ev.kind === "bad-record") return { kind: "bad-record", failure: { ...ev.failure, offset: ev.failure.offset + base } };
  const f = ev.failure;
  return { kind: "lost", failure: { ...f, offset: f.offset + base, resumeAt: f.resumeAt === null ? null : f.resumeAt + base } };
}
