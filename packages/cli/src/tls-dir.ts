import { PangeaError, UsageError } from "@pangea/kit";

/**
 * Runs what reads the certificates of --tls-dir: a missing or unreadable file
 * there is the usage error `invalid --tls-dir: ...` (exit 2, with the pointer
 * to --help), as any other bad flag.
 */
export function usableTlsDir<T>(read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof PangeaError && err.code === "RPC_ERR_TLS_FILES") throw new UsageError(`invalid --tls-dir: ${err.message.replace(/^--tls-dir: /, "")}`);
    throw err;
  }
}
