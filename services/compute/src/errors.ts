import { defineErrors } from "@pangea/kit";

export const ComputeErrors = defineErrors({
  COMPUTE_ERR_SOURCE: { status: "FAILED_PRECONDITION", exit: 1, description: "the data source cannot be opened or is empty" },
  COMPUTE_ERR_WRITE: { status: "INTERNAL", exit: 1, description: "gen-data cannot write its output (a full disk, a path it may not write)" },
  COMPUTE_ERR_BAD_FRAME: { status: "DATA_LOSS", exit: 1, description: "a file's record framing is broken (truncated, bad length or checksum)" },
  COMPUTE_ERR_BAD_CONFIG: { status: "INVALID_ARGUMENT", exit: 2, description: "the feature list or reader options are invalid" },
  COMPUTE_ERR_BAD_RECORD: { status: "DATA_LOSS", exit: 1, description: "a record in the input does not parse" },
  COMPUTE_ERR_CACHE_CORRUPT: { status: "DATA_LOSS", exit: 1, description: "the record cache was damaged on disk after it was written (a chunk fails its checksum)" },
  COMPUTE_ERR_DATA_CHANGED: { status: "FAILED_PRECONDITION", exit: 1, description: "a data file changed after compute started, before or while its pass read it" },
  COMPUTE_ERR_BAD_REQUEST: { status: "INVALID_ARGUMENT", exit: 1, description: "a batch request is inconsistent" },
  COMPUTE_ERR_STREAM_LIMIT: { status: "RESOURCE_EXHAUSTED", exit: 1, description: "a batch stream past the number compute serves at once (--max-batch-streams)" },
  COMPUTE_ERR_STREAM_TOKEN: { status: "PERMISSION_DENIED", exit: 1, description: "a batch stream whose worker token was not issued for the rank it names (checked once compute holds the orchestrator's key)" },
  COMPUTE_ERR_STREAM_REPLACED: { status: "ABORTED", exit: 1, description: "a batch stream closed for a newer one of its trainer's rank, past --max-streams-per-rank" },
  COMPUTE_ERR_REFUSED: { status: "FAILED_PRECONDITION", exit: 2, description: "the orchestrator refused this compute's data: the job's checkpoint or the running job was trained on other data, or a flag of the job's contradicts it" },
  COMPUTE_ERR_ORCHESTRATOR_GONE: { status: "UNAVAILABLE", exit: 1, description: "the orchestrator went away and did not come back in time" },
});
