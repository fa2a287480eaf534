import { status } from "@grpc/grpc-js";
import { describeCallError, isStatus } from "@pangea/rpc";
import { TrainerErrors } from "../errors.js";

/**
 * A batch stream's failure as the trainer treats it: DATA_LOSS means compute
 * cannot read the job's records (a damaged record cache), which asking
 * again cannot mend, so the trainer fails with compute's words; anything
 * else is compute gone or restarting, and the same batches are asked for
 * again.
 */
export function batchStreamError(err: unknown, address: string): Error {
  const what = `batch stream ${describeCallError(err, `from compute at ${address}`)}`;
  return TrainerErrors.create(isStatus(err, status.DATA_LOSS) ? "TRAINER_ERR_BAD_DATA" : "TRAINER_ERR_LOST_PEER", what);
}
