import { closingQuote } from "./json-duplicates.js";

/**
 * Whether a JSON text nests arrays and objects more than `max` deep, found
 * by a walk over its brackets alone (strings jumped over), stopping at the
 * first level past `max`. Run before JSON.parse: a 4 MB body of two million
 * nested brackets took JSON.parse 1.6 s and the whole request 4.2 s of the
 * event loop, every other client's answer waiting behind it.
 */
export function jsonNestsBeyond(text: string, max: number): boolean {
  let depth = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) i = closingQuote(text, i + 1);
    else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (++depth > max) return true;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) depth--;
  }
  return false;
}
