import { readFileSync } from "node:fs";
import { UsageError } from "@pangea/kit";

/** The longest token: clients send it in a header, and HTTP/2 servers refuse headers much above a few kilobytes. */
export const MAX_TOKEN_LENGTH = 1024;

/**
 * Reads a bearer token from the file a flag names (serving's
 * --api-token-file, the orchestrator's --serving-sync-token-file, pangea
 * predict's --token-file): one word of 16 to 1024 printable ASCII
 * characters. A short token is refused: it is the only thing between any
 * client that can reach the port and the model.
 */
export function readBearerToken(flag: string, path: string): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new UsageError(`${flag}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  const token = text.trim();
  if (!/^[\x21-\x7e]*$/.test(token)) {
    throw new UsageError(`${flag}: ${path} holds a space or a control character; the token must be one word of printable ASCII (e.g. openssl rand -hex 24)`);
  }
  if (token.length < 16 || token.length > MAX_TOKEN_LENGTH) {
    throw new UsageError(`${flag}: ${path} holds a token of ${token.length} characters; it must have 16 to ${MAX_TOKEN_LENGTH} (e.g. openssl rand -hex 24)`);
  }
  return token;
}

/** The token of a flag's file when the flag was given (readBearerToken), else undefined: a service's optional tokens. */
export function bearerTokenIfGiven(flag: string, path: string | undefined): string | undefined {
  return path === undefined ? undefined : readBearerToken(flag, path);
}
