import { readFileSync } from "node:fs";
import { UsageError } from "@pangea/kit";

/**
 * Reads the API token clients must present. A short token is refused: the
 * token is the only thing between any client that can reach the port and
 * the model's predictions.
 */
export function readApiToken(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new UsageError(`--api-token-file: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  const token = text.trim();
  if (token.length < 16 || !/^[\x21-\x7e]+$/.test(token)) {
    throw new UsageError(`--api-token-file: ${path} must hold one token of at least 16 printable characters without spaces (it has ${token.length}); e.g. openssl rand -hex 24`);
  }
  return token;
}
