import { defineErrors } from "@pangea/kit";

export const TrainerErrors = defineErrors({
  TRAINER_ERR_BACKEND: { status: "FAILED_PRECONDITION", exit: 1, description: "the requested TensorFlow.js backend cannot be loaded" },
  TRAINER_ERR_JOB_FAILED: { status: "ABORTED", exit: 1, description: "the orchestrator ended the job as failed" },
  TRAINER_ERR_LOST_PEER: { status: "UNAVAILABLE", exit: 1, description: "a peer went away mid-job" },
  TRAINER_ERR_LOST_ORCHESTRATOR: { status: "UNAVAILABLE", exit: 1, description: "the orchestrator went away mid-job (the trainer registers again if it comes back)" },
  TRAINER_ERR_EVICTED: { status: "FAILED_PRECONDITION", exit: 1, description: "the orchestrator declared this trainer dead (missed heartbeats); it registers again" },
  TRAINER_ERR_BAD_DATA: { status: "DATA_LOSS", exit: 1, description: "compute cannot read the job's records (its record cache was damaged, or a Kafka message is a bad record under --on-bad-record fail)" },
  TRAINER_ERR_REFUSED: { status: "INVALID_ARGUMENT", exit: 1, description: "the orchestrator or a parameter-server shard refused a pull or push as invalid (e.g. ids of a slot the job does not declare) or not this trainer's to send (its token or certificate is not taken for its rank), or compute refused the batch stream as invalid (e.g. a Kafka topic of another message kind than --format): sending it again cannot help" },
  TRAINER_ERR_BAD_BATCH: { status: "INVALID_ARGUMENT", exit: 1, description: "a batch does not match the job's model" },
  TRAINER_ERR_NON_FINITE: { status: "INTERNAL", exit: 1, description: "training produced a NaN or infinite loss" },
});
