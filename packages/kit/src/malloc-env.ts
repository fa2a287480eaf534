/**
 * The glibc malloc settings every Pangea service runs with (`pangea run`,
 * `pangea serve`, the images, the benchmarks), as environment variables
 * glibc reads when a process starts.
 *
 * The services move messages of several megabytes each step (a pull's rows
 * and dense weights, a push's gradients, a batch), and gRPC and the Cap'n
 * Proto codec copy each into fresh buffers a few times on the way. With
 * glibc's defaults a buffer that large is often a fresh mapping, and memory
 * freed at the heap's top goes back to the kernel, so a copy pays a page
 * fault and the kernel's zeroing per 4 KB: copying into a fresh 4.8 MB
 * buffer ran at 0.4-0.8 GB/s on the development machine, into a reused one
 * at 8-14 GB/s. Pinning both thresholds (which also turns off glibc's
 * moving threshold) serves buffers up to 32 MB (glibc's largest allowed
 * threshold) from the heap and keeps up to 128 MB of freed memory at the
 * heap's top mapped for the next step (README, Training speed, has the
 * cluster's figures).
 *
 * `glibc.malloc.hugetlb=1` has malloc ask for transparent huge pages
 * (madvise) on the memory it maps, where the kernel offers them in madvise
 * mode (Debian's default); elsewhere glibc ignores it. The first pass over
 * fresh heap then faults 2 MB at a time instead of 4 KB, and large copies
 * and BLAS miss the TLB less: a Wide&Deep cluster job used 8% less CPU and
 * ran 1.17x faster, DLRM's 1.06x (README, "Where the cluster's communication
 * time goes"), for about 10% more resident memory. Compute under a small
 * --max-memory-mb gets smaller thresholds and no huge pages
 * (mallocEnvForBudget).
 */
const MMAP_THRESHOLD = 32 << 20;
const TRIM_THRESHOLD = 128 << 20;
const HUGE_PAGES = "glibc.malloc.hugetlb=1";

export const SERVICE_MALLOC_ENV: Readonly<Record<string, string>> = Object.freeze({
  MALLOC_MMAP_THRESHOLD_: String(MMAP_THRESHOLD),
  MALLOC_TRIM_THRESHOLD_: String(TRIM_THRESHOLD),
  GLIBC_TUNABLES: HUGE_PAGES,
});

/**
 * SERVICE_MALLOC_ENV within a memory budget of `budgetMb`: both thresholds
 * at most an eighth of it (at least 1 MB), so the freed memory glibc keeps
 * at the heap's top stays a small part of what the process may use; huge
 * pages only where both thresholds fit whole (a budget of 1 GB or more),
 * since a 2 MB page per touched region counts against a small budget.
 */
export function mallocEnvForBudget(budgetMb: number): Readonly<Record<string, string>> {
  const cap = Math.max(1 << 20, Math.floor((budgetMb * (1 << 20)) / 8));
  return Object.freeze({
    MALLOC_MMAP_THRESHOLD_: String(Math.min(MMAP_THRESHOLD, cap)),
    MALLOC_TRIM_THRESHOLD_: String(Math.min(TRIM_THRESHOLD, cap)),
    ...(cap >= TRIM_THRESHOLD ? { GLIBC_TUNABLES: HUGE_PAGES } : {}),
  });
}
