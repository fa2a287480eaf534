/** A key a request's JSON may not hold: "__proto__", or one given twice in its object. */
export interface RefusedKey {
  key: string;
  twice: boolean;
}

/**
 * The first key of a JSON text that is "__proto__" or given twice in one
 * object, or null. JSON.parse keeps the last of two without a word, so
 * `{"instances": [...], "instances": [...]}` would answer for half of what was
 * sent; a "__proto__" key is an own property after JSON.parse, but an object
 * built from it further on could get another prototype. The text must already
 * have parsed: this only walks its structure (strings jumped over, keys
 * collected per object), in about JSON.parse's own time (6-10 ms for a 2.3 MB
 * Predict body, measured; a regex finding the structure's characters took
 * twice that, and a JSON.parse reviver 3.6 times).
 */
export function refusedKey(text: string): RefusedKey | null {
  // Per open container: the keys seen so far (an object), or null (an array).
  const stack: (Set<string> | null)[] = [];
  let expectKey = false;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const end = closingQuote(text, i + 1);
      if (expectKey) {
        const raw = text.slice(i + 1, end);
        // Keys spelt with escapes are compared as the names they decode to ("a" and "\u0061" are one key).
        const key = raw.includes("\\") ? (JSON.parse(`"${raw}"`) as string) : raw;
        if (key === "__proto__") return { key, twice: false };
        const keys = stack[stack.length - 1]!;
        if (keys.has(key)) return { key, twice: true };
        keys.add(key);
        expectKey = false;
      }
      i = end;
    } else if (c === 0x7b /* { */) {
      stack.push(new Set());
      expectKey = true;
    } else if (c === 0x5b /* [ */) {
      stack.push(null);
      expectKey = false;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
      expectKey = false;
    } else if (c === 0x2c /* , */) {
      // The next string is a key inside an object, a value inside an array.
      expectKey = stack.length > 0 && stack[stack.length - 1] !== null;
    }
  }
  return null;
}

/** Where the string opened before `from` ends: the next quote not escaped (preceded by an even run of backslashes). */
function closingQuote(text: string, from: number): number {
  for (let q = text.indexOf('"', from); ; q = text.indexOf('"', q + 1)) {
    // Not in a text that parsed; ends the walk rather than loop.
    if (q < 0) return text.length;
    let slashes = 0;
    while (text.charCodeAt(q - 1 - slashes) === 0x5c) slashes++;
    if (slashes % 2 === 0) return q;
  }
}
