import { status } from "@grpc/grpc-js";
import { describeCallError, isStatus, remoteCode } from "@pangea/rpc";
import { TrainerErrors } from "../errors.js";

/**
 * A batch stream's failure as the trainer treats it: DATA_LOSS means compute
 * cannot read the job's records (a damaged record cache, a Kafka message
 * that is a bad record under --on-bad-record fail), and
 * COMPUTE_ERR_BAD_CONFIG that its source is read with the wrong options (a
 * Kafka topic of another message kind than --format); asking again cannot
 * mend either, so the trainer fails with compute's words at once. Anything
 * else is compute gone or restarting (or a request refused in a stream's
 * reset), and the same batches are asked for again.
 */
export function batchStreamError(err: unknown, address: string): Error {
  const what = `batch stream ${describeCallError(err, `from compute at ${address}`)}`;
  if (isStatus(err, status.DATA_LOSS)) return TrainerErrors.create("TRAINER_ERR_BAD_DATA", what);
  return TrainerErrors.create(remoteCode(err) === "COMPUTE_ERR_BAD_CONFIG" ? "TRAINER_ERR_REFUSED" : "TRAINER_ERR_LOST_PEER", what);
}
