/**
 * Whether two content samples (SourceInfo.content_sample) say the files hold other bytes. Only two samples can differ:
 * none ("") is data without one (a FIFO, a file gone since its pass, a compute or checkpoint of an older version).
 */
export function samplesDiffer(a: string | undefined, b: string | undefined): boolean {
  return !!a && !!b && a !== b;
}
