import { statSync } from "node:fs";

/**
 * Call right before loading a module on demand (import(), require()).
 *
 * Node 20's realpath, which the module loaders use with a cache, reads the
 * result buffer its last number stat left behind for a cached path part, and
 * stops resolving symbolic links when that stat was of a FIFO or a socket.
 * pnpm's node_modules are symbolic links: after compute stat'ed a FIFO given
 * as --data (and in a trainer started with pipes), a module loaded on demand
 * came from the link's path, as a second copy whose own dependencies could
 * not be found ("Cannot find module 'pino-std-serializers'", "'seedrandom'").
 * A stat of a regular file leaves the buffer saying "regular file".
 */
export function refreshStatBuffer(): void {
  statSync(process.execPath);
}
