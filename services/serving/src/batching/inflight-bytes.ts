import { ServingErrors } from "../errors.js";

/**
 * The bytes of the Predict requests in flight, gRPC and REST together, from
 * the moment a request's bytes are in hand until its answer is sent: a budget
 * across callers. Decoding multiplies a request's size (one 32 MiB gRPC message
 * of int64 values, each a JS string once decoded, took serving to 3.5 GB; ten
 * at once exhausted the heap and killed the process), so what is decoded at once is bounded by
 * the bytes admitted, not by the number of callers. A request alone is taken
 * whatever its size (its size limit bounds it), so a budget below the size
 * limits never makes a request unservable; beside others, one that would take
 * the total past the budget is refused at once (SERVING_ERR_OVERLOADED),
 * unless it is small (ALWAYS_TAKEN_BYTES).
 */
/**
 * A request at most this large is always taken: it costs little to decode,
 * --max-queued-requests bounds how many wait, and one maximum-size request in
 * flight must not turn every small caller away.
 */
export const ALWAYS_TAKEN_BYTES = 64 * 1024;

export class InflightBytes {
  /** Bytes of the requests admitted and not yet answered. */
  held = 0;
  /** Requests refused because they would have taken `held` past the budget. */
  refused = 0;

  /** `maxBytes`: the budget (0 = no bound); `flag`: what sets it, named in the refusal. */
  constructor(private readonly maxBytes: number, private readonly flag = "--max-inflight-request-mb") {}

  /** Admits `bytes` until the returned release is called (once is enough; more calls do nothing), or throws SERVING_ERR_OVERLOADED. */
  take(bytes: number): () => void {
    if (this.maxBytes > 0 && this.held > 0 && bytes > ALWAYS_TAKEN_BYTES && this.held + bytes > this.maxBytes) {
      this.refused++;
      throw ServingErrors.create(
        "SERVING_ERR_OVERLOADED",
        `${mib(this.held)} of requests are in flight; this one's ${mib(bytes)} would pass ${this.flag} ${mib(this.maxBytes)}; retry later`,
      );
    }
    this.held += bytes;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.held -= bytes;
    };
  }
}

function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}
