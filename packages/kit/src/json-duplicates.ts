type Frame = { kind: "object"; keys: Set<string>; key: string } | { kind: "array"; index: number };

/**
 * The first key an object of this (valid) JSON text gives twice, as a path
 * ("slots.3.dim", "slots[2].pooling"), or null. JSON.parse keeps the last
 * silently: in a config file a key given twice is a mistake whichever value
 * was meant, so callers refuse it naming the key.
 */
export function duplicateJsonKey(text: string): string | null {
  const stack: Frame[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    const top = stack.at(-1);
    if (c === '"') {
      let end = i + 1;
      while (end < text.length && text[end] !== '"') end += text[end] === "\\" ? 2 : 1;
      // Not valid JSON (the callers parse it first): an unterminated string ends the scan.
      if (end >= text.length) return null;
      let next = end + 1;
      while (next < text.length && /\s/.test(text[next]!)) next++;
      // In valid JSON only a key is followed by a colon.
      if (top?.kind === "object" && text[next] === ":") {
        const key = JSON.parse(text.slice(i, end + 1)) as string;
        if (top.keys.has(key)) return pathOf(stack.slice(0, -1), key);
        top.keys.add(key);
        top.key = key;
      }
      i = end + 1;
      continue;
    }
    if (c === "{") stack.push({ kind: "object", keys: new Set(), key: "" });
    else if (c === "[") stack.push({ kind: "array", index: 0 });
    else if (c === "}" || c === "]") stack.pop();
    else if (c === "," && top?.kind === "array") top.index++;
    i++;
  }
  return null;
}

function pathOf(frames: Frame[], key: string): string {
  let path = "";
  for (const f of frames) path = f.kind === "object" ? (path ? `${path}.${f.key}` : f.key) : `${path}[${f.index}]`;
  return path ? `${path}.${key}` : key;
}
