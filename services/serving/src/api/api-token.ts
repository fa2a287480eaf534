import { readFileSync } from "node:fs";
import { UsageError } from "@pangea/kit";

/**
 * Reads the API token clients must present. A short token is refused: the
 * token is the only thing between any client that can reach the port and
 * the model's predictions.
 */
export const MAX_TOKEN_LENGTH = 1024;

export function readApiToken(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new UsageError(`--api-token-file: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  const token = text.trim();
  if (!/^[\x21-\x7e]*$/.test(token)) {
    throw new UsageError(`--api-token-file: ${path} holds a space or a control character; the token must be one word of printable ASCII (e.g. openssl rand -hex 24)`);
  }
  // Clients send it in a header; HTTP/2 servers refuse headers much above a few kilobytes.
  if (token.length < 16 || token.length > MAX_TOKEN_LENGTH) {
    throw new UsageError(`--api-token-file: ${path} holds a token of ${token.length} characters; it must have 16 to ${MAX_TOKEN_LENGTH} (e.g. openssl rand -hex 24)`);
  }
  return token;
}
