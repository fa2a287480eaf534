/**
 * Text a peer or an input file supplied, made safe to print: control
 * characters (C0, DEL, C1 — ESC among them), line and paragraph separators,
 * bidirectional overrides and lone surrogates become visible escapes (`\n`,
 * `\x1b`, `\u{202e}`), so a worker id, a backend name or a bad record echoed
 * in an error can neither drive the terminal nor forge extra log lines.
 * Longer text is cut at `max` characters with a note of how much was cut.
 */
export function printable(text: string, max = 256): string {
  let out = "";
  let shown = 0;
  for (let i = 0; i < text.length; i++) {
    if (shown >= max) return `${out}… (${text.length - i} more chars)`;
    const c = text.charCodeAt(i);
    shown++;
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        out += text[i]! + text[i + 1]!;
        i++;
        continue;
      }
    }
    out += needsEscape(c) ? escapeUnit(c) : text[i]!;
  }
  return out;
}

/** Raw bytes (a field of a data file) as printable text: printable ASCII as is, every other byte as `\xNN`. */
export function printableBytes(bytes: Uint8Array, max = 64): string {
  const n = Math.min(bytes.length, max);
  let out = "";
  for (let i = 0; i < n; i++) {
    const b = bytes[i]!;
    out += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : escapeUnit(b);
  }
  return bytes.length > n ? `${out}… (${bytes.length - n} more bytes)` : out;
}

function needsEscape(c: number): boolean {
  return (
    c < 0x20 ||
    (c >= 0x7f && c <= 0x9f) ||
    c === 0x2028 ||
    c === 0x2029 ||
    (c >= 0x202a && c <= 0x202e) ||
    (c >= 0x2066 && c <= 0x2069) ||
    (c >= 0xd800 && c <= 0xdfff) ||
    c === 0xfeff
  );
}

const NAMED: Record<number, string> = { 0x0a: "\\n", 0x0d: "\\r", 0x09: "\\t" };

function escapeUnit(c: number): string {
  if (NAMED[c]) return NAMED[c]!;
  if (c <= 0xff) return `\\x${c.toString(16).padStart(2, "0")}`;
  return `\\u{${c.toString(16)}}`;
}
