/** A failure of a command against the cluster, with the exit code it ends the CLI with (1 failed, 2 usage, 3 unreachable). */
export class ClusterError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
  }
}
