import { defineErrors } from "@pangea/kit";
import { SLOT_CONFIG_ERRORS } from "@pangea/service-flags";

export const OrchestratorErrors = defineErrors({
  ORCH_ERR_JOB_NOT_RUNNING: { status: "FAILED_PRECONDITION", exit: 1, description: "the call needs a running job" },
  ORCH_ERR_JOB_ABORTED: { status: "ABORTED", exit: 1, description: "the job failed while the call waited" },
  ORCH_ERR_WRONG_STEP: { status: "FAILED_PRECONDITION", exit: 1, description: "a worker's step does not match the job's step" },
  ORCH_ERR_DUPLICATE_PUSH: { status: "ALREADY_EXISTS", exit: 1, description: "a worker pushed twice for one step" },
  ORCH_ERR_UNKNOWN_WORKER: { status: "NOT_FOUND", exit: 1, description: "the worker id or rank is not registered" },
  ORCH_ERR_CLUSTER_FULL: { status: "RESOURCE_EXHAUSTED", exit: 1, description: "the job already has all the trainers it expects" },
  ORCH_ERR_BAD_GRADIENT: { status: "INVALID_ARGUMENT", exit: 1, description: "a gradient has the wrong shape or a non-finite value" },
  ORCH_ERR_BAD_DENSE_FILE: { status: "INVALID_ARGUMENT", exit: 1, description: "a push names a dense gradients file this parameter server will not read: not a trainer's name, missing, a link, not a regular file, of the wrong size, another rank's, or with no exchange directory (the trainer sends the gradients again in the message)" },
  ORCH_ERR_BAD_REGISTRATION: { status: "INVALID_ARGUMENT", exit: 1, description: "a registration is missing a required field" },
  ORCH_ERR_REGISTER_TIMEOUT: { status: "DEADLINE_EXCEEDED", exit: 1, description: "the expected workers did not all register in time" },
  ORCH_ERR_UNKNOWN_SLOT: { status: "INVALID_ARGUMENT", exit: 1, description: "a feature id's slot is not one the job's data declares" },
  ORCH_ERR_BAD_REQUEST: { status: "INVALID_ARGUMENT", exit: 1, description: "a request is inconsistent or lacks a field (a table request's dim or values, a GetWork without a worker id)" },
  ORCH_ERR_MEMORY_LIMIT: { status: "RESOURCE_EXHAUSTED", exit: 1, description: "the embedding tables reached the configured memory limit" },
  // The file is read where pangea run reads it too (@pangea/service-flags), so its code is declared there.
  ...SLOT_CONFIG_ERRORS,
  ORCH_ERR_CHECKPOINT_IO: { status: "INTERNAL", exit: 1, description: "a checkpoint could not be written" },
  ORCH_ERR_NOT_A_MEMBER: { status: "FAILED_PRECONDITION", exit: 1, description: "the trainer was declared dead (missed heartbeats) and must register again" },
  ORCH_ERR_NOT_ASSIGNED: { status: "FAILED_PRECONDITION", exit: 1, description: "gradients for a batch the trainer was not given (or no longer holds)" },
  ORCH_ERR_CHECKPOINT_NOT_FOUND: { status: "NOT_FOUND", exit: 1, description: "the checkpoint directory given does not exist" },
  ORCH_ERR_PERMISSION_DENIED: { status: "PERMISSION_DENIED", exit: 1, description: "the caller's certificate may not act for the worker its call names" },
  ORCH_ERR_WORKER_CONFLICT: { status: "ALREADY_EXISTS", exit: 1, description: "another process registered under a worker id (or as the compute) that is connected" },
  ORCH_ERR_RATE_LIMITED: { status: "RESOURCE_EXHAUSTED", exit: 1, description: "new trainer ids are registering faster than the limit" },
  ORCH_ERR_BAD_EVAL_REPORT: { status: "INVALID_ARGUMENT", exit: 1, description: "an evaluation report comes from a trainer not asked to evaluate, or holds impossible figures" },
  ORCH_ERR_BAD_JOB_CONFIG: { status: "FAILED_PRECONDITION", exit: 2, description: "a flag the job's data contradicts, found when compute registers (--best-task naming no binary task, --eval-every-steps on a source without a held-out split, an --export-feature-list of other slots, or encoding inputs otherwise than compute read the data)" },
  ORCH_ERR_CHECKPOINT_MISMATCH: { status: "FAILED_PRECONDITION", exit: 2, description: "the checkpoint holds another model or training setup than this job's" },
  ORCH_ERR_INTERNAL: { status: "INTERNAL", exit: 1, description: "an unexpected failure (a bug): the message says where" },
  ORCH_ERR_JOB_IN_USE: { status: "FAILED_PRECONDITION", exit: 1, description: "another orchestrator (alive) runs the same job: its checkpoint directory's orchestrator.lock names it" },
  ORCH_ERR_NOT_A_CHECKPOINT: { status: "INVALID_ARGUMENT", exit: 2, description: "the directory given for a checkpoint is another kind: a job's checkpoint directory (give one of its step-N directories) or an exported model (give the checkpoint it was exported from)" },
  ORCH_ERR_CHECKPOINT_CORRUPT: { status: "DATA_LOSS", exit: 1, description: "a checkpoint is incomplete or fails its checksums" },
});
