/**
 * Whether a process of this pid exists on this machine (in this pid
 * namespace): signal 0 delivers nothing, and EPERM means it exists as
 * another user's.
 */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
