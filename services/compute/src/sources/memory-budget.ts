/** What a file source may hold in memory when no budget is given (--max-memory-mb's default), in MiB. */
export const DEFAULT_MEMORY_MB = 1024;
