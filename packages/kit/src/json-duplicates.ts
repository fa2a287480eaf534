/** An open container of the walk: an object's keys so far and its latest key, or an array's index. */
type Frame = { keys: Set<string>; key: string } | { keys: null; index: number };

/** A key a JSON text may not hold: one given twice in its object, or (where refused) "__proto__"; `path` says where. */
export interface RefusedJsonKey {
  key: string;
  /** "slots.3.dim", "slots[2].pooling". */
  path: string;
  twice: boolean;
}

/**
 * The first key of this (valid) JSON text that an object gives twice, or,
 * with `refuseProto`, that is "__proto__"; null if none. JSON.parse keeps the
 * last of two silently: in a config file a key given twice is a mistake
 * whichever value was meant, and a request giving one twice would be answered
 * for part of what was sent; a "__proto__" key is an own property after
 * JSON.parse, but an object built from it further on could get another
 * prototype.
 */
export function refusedJsonKey(text: string, refuseProto = false): RefusedJsonKey | null {
  return walkJson(text, refuseProto, Number.POSITIVE_INFINITY).refusedKey;
}

/**
 * refusedJsonKey's walk, and whether the text nests arrays and objects more
 * than `maxDepth` deep (the walk then stops). Safe on text that is not JSON
 * (a request's body before JSON.parse): a body of two million nested
 * brackets, 4 MB, took JSON.parse 1.6 s, and is found here in about 30 ms.
 * Only the structure is walked (strings jumped over, keys collected per
 * object), in about JSON.parse's own time (6-10 ms for a 2.3 MB Predict
 * body, measured; a regex finding the structure's characters took twice that,
 * and a JSON.parse reviver 3.6 times).
 */
export function walkJson(text: string, refuseProto: boolean, maxDepth: number): { tooDeep: boolean; refusedKey: RefusedJsonKey | null } {
  const stack: Frame[] = [];
  let refusedKey: RefusedJsonKey | null = null;
  let expectKey = false;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const end = closingQuote(text, i + 1);
      if (expectKey) {
        const key = keyOf(text.slice(i + 1, end));
        const top = stack[stack.length - 1] as { keys: Set<string>; key: string };
        // The first refusal is kept; the walk goes on for the depth (a refused key must not let a deep body through).
        if (refusedKey === null && refuseProto && key === "__proto__") refusedKey = { key, path: pathOf(stack, key), twice: false };
        else if (refusedKey === null && top.keys.has(key)) refusedKey = { key, path: pathOf(stack, key), twice: true };
        top.keys.add(key);
        top.key = key;
        expectKey = false;
      }
      i = end;
    } else if (c === 0x7b /* { */) {
      if (stack.push({ keys: new Set(), key: "" }) > maxDepth) return { tooDeep: true, refusedKey };
      expectKey = true;
    } else if (c === 0x5b /* [ */) {
      if (stack.push({ keys: null, index: 0 }) > maxDepth) return { tooDeep: true, refusedKey };
      expectKey = false;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
      expectKey = false;
    } else if (c === 0x2c /* , */) {
      // The next string is a key inside an object, a value inside an array.
      const top = stack[stack.length - 1];
      if (top && top.keys === null) top.index++;
      expectKey = top !== undefined && top.keys !== null;
    }
  }
  return { tooDeep: false, refusedKey };
}

/** A key as the name it decodes to ("a" and "\u0061" are one key); as written when its escapes are not JSON's (JSON.parse then names the text's fault). */
function keyOf(raw: string): string {
  if (!raw.includes("\\")) return raw;
  try {
    return JSON.parse(`"${raw}"`) as string;
  } catch {
    return raw;
  }
}

/** The first key an object of this (valid) JSON text gives twice, as a path ("slots.3.dim", "slots[2].pooling"), or null. */
export function duplicateJsonKey(text: string): string | null {
  return refusedJsonKey(text)?.path ?? null;
}

/** Where the string opened before `from` ends: the next quote not escaped (preceded by an even run of backslashes). */
export function closingQuote(text: string, from: number): number {
  for (let q = text.indexOf('"', from); ; q = text.indexOf('"', q + 1)) {
    // Not in a text that parsed; ends the walk rather than loop.
    if (q < 0) return text.length;
    let slashes = 0;
    while (text.charCodeAt(q - 1 - slashes) === 0x5c) slashes++;
    if (slashes % 2 === 0) return q;
  }
}

/** The path of `key` in the innermost object of `stack`. */
function pathOf(stack: readonly Frame[], key: string): string {
  let path = "";
  for (const f of stack.slice(0, -1)) path = f.keys !== null ? (path ? `${path}.${f.key}` : f.key) : `${path}[${f.index}]`;
  return path ? `${path}.${key}` : key;
}
