@0x99c95f8f93964b88;
# Pangea's data plane: every hot-path payload (batches, embedding rows, gradients,
# dense parameters) is one of these messages. gRPC carries the serialized Message
# as its payload (see packages/rpc/src/hot-path.ts for the method table).
#
# Tensor layout: `data` holds the elements little-endian, row-major, with no
# padding; its length is product(shape) * size(dtype). Readers view `data` as a
# typed array (Float32Array, BigUint64Array, ...) instead of copying it.

enum DataType {
  float32 @0;
  float64 @1;
  int32 @2;
  uint32 @3;
  int64 @4;
  uint64 @5;
  uint8 @6;
  float16 @7;   # IEEE half precision: optional compressed transport of float32 values
}

struct Tensor {
  name @0 :Text;
  dtype @1 :DataType;
  shape @2 :List(UInt32);
  data @3 :Data;
}

enum Split {
  train @0;
  eval @1;
}

# A batch of B samples with numDense dense features and S categorical slots.
#
# Sparse features use a ragged (CSR) layout so that a slot may hold any number
# of ids per sample:
#
#   cell c = sample * S + slotIndex          (sample-major, slot-minor)
#   ids of cell c = featureIds[cellOffsets[c] .. cellOffsets[c + 1])
#
#   featureIds   uint64 [nnz]       v2 feature ids: bit 63 reserved (0),
#                                   bits 62..48 slot id, bits 47..0 hash
#   cellOffsets  uint32 [B * S + 1] cellOffsets[0] = 0, cellOffsets[B*S] = nnz
#
# Example, B = 2, S = 2, sample 0 has one id per slot, sample 1 has two ids in
# slot 0 and none in slot 1:
#   featureIds  = [a, b, c, d]
#   cellOffsets = [0, 1, 2, 4, 4]
struct TrainingBatch {
  batchIndex @0 :UInt64;     # position of this batch in the source's global order
  split @1 :Split;
  slotIds @2 :List(UInt16);  # the slot id of each of the S columns
  dense @3 :Tensor;          # float32 [B, numDense], already normalised
  labels @4 :Tensor;         # float32 [B] (one task) or [B, T] (T tasks, the
                             # job's task order): 0/1 for a binary task, the
                             # target for a regression task
  featureIds @5 :Tensor;     # uint64 [nnz]
  cellOffsets @6 :Tensor;    # uint32 [B * S + 1]
  epoch @7 :UInt32;
  weights @8 :Tensor;        # float32 [B], each sample's loss weight (Monolith's
                             # instance_weight); absent = every sample weighs 1
  # A train batch served to a registered trainer carries compute's seal on its
  # count of feature ids (nnz): the MAC of the batch index, the batch size asked
  # for and nnz under the key the orchestrator gave compute. The trainer's pulls
  # for the batch name nnz with the seal (ParameterRequest.batchIds), and a
  # parameter server makes at most that many rows for the batch. Empty from a
  # compute that holds no key yet (it serves while it registers; a trainer
  # asks for such a batch again, as the parameter servers refuse a pull
  # without the seal), and for held-out batches.
  idsSeal @9 :Text;
}

# Ask compute for this worker's share of a split: global batches k with
# k % worldSize == workerRank, at most maxBatches of them (0 = the whole split).
# The first message a client sends on BatchStream/StreamBatches.
#
# Flow control is by credit: compute sends at most `window` batches the client
# has not acknowledged yet (0 = compute's default), so a slow trainer holds
# back production instead of letting batches pile up in memory.
struct BatchRequest {
  workerRank @0 :UInt32;
  worldSize @1 :UInt32;
  batchSize @2 :UInt32;
  maxBatches @3 :UInt64;
  split @4 :Split;
  window @5 :UInt32;
  # true: compute sends nothing until the client names batches in BatchAck.want,
  # then exactly those global batch indices, in the order named (a stream source
  # such as Kafka sends its next batch for each index named). The orchestrator
  # hands out batch indices, so a dead trainer's share can be given to another.
  onDemand @6 :Bool;
  # The trainer's worker token (RegisterWorkerResponse.worker_token) and the
  # rank it was registered with. Compute, given the key tokens are bound to
  # their rank with (RegisterWorkerResponse.push_key), serves only a request
  # whose token was issued for tokenRank, and at most a few streams per rank.
  # tokenRank is the trainer's own rank, not the share's: on-demand and
  # evaluation streams ask for share 0 of 1 (workerRank 0) whatever their rank.
  workerToken @7 :Text;
  tokenRank @8 :UInt32;
}

# Sent by the client after the BatchRequest: it has consumed `consumed` more
# batches, so compute may send that many more.
struct BatchAck {
  consumed @0 :UInt32;
  want @1 :List(UInt64);     # onDemand streams: global batch indices to send next
}

# Ask a parameter server for parameters before a step.
struct ParameterRequest {
  workerRank @0 :UInt32;
  step @1 :UInt64;           # the step the worker is about to compute
  includeDense @2 :Bool;
  ids @3 :Tensor;            # uint64 [U], unique feature ids
  readOnly @4 :Bool;         # true: unknown ids read as zeros and create no row
  halfRows @5 :Bool;         # send the rows as float16 (gradient compression)
  # A pull sent ahead (sync/hybrid, shard 0 only): the global batches the
  # worker expects at `step`. It is held until that step is planned, then
  # served if those are exactly the worker's batches, else withdrawn.
  aheadBatches @6 :List(UInt64);
  # A pull sent ahead: the batches the worker holds at the current step. Given
  # any other (a dead trainer's), it must ask for work, so the pull is withdrawn.
  workingOn @7 :List(UInt64);
  # A trainer on the orchestrator's machine that has checked the exchange
  # directory (ParameterSet.exchangeDir): the dense parameters are to be written
  # there, ParameterSet.denseFile naming the file, instead of sent in `dense`.
  denseInFile @8 :Bool;
  # A training pull (not read-only, rows in float32) by such a trainer: the rows
  # are to be written to a file of the exchange directory instead, named by
  # ParameterSet.rowsFile; a server without the exchange sends them in
  # `embeddings` as usual.
  rowsInFile @9 :Bool;
  # A training pull (not read-only) carries the worker token of the trainer
  # holding workerRank (RegisterWorkerResponse gives it), as a push does: a
  # training pull counts its ids and makes their rows.
  workerToken @10 :Text;
  # A training pull carries the global batch it is for and that batch's ticket
  # (Work.batch_tickets), as its push will: a shard other than 0, which does
  # not know the plan, serves it only to the registration the batch was given
  # to (shard 0 checks its plan instead).
  batchIndex @11 :UInt64;
  batchTicket @12 :Text;
  # A training pull also names its batch's count of feature ids and compute's
  # seal on it (TrainingBatch.idsSeal): a parameter server checks the seal
  # against the job's batch size, refuses a pull naming more ids than that,
  # and one whose ids without a row would take the rows the batch's pulls
  # made past that count (ids with rows make none).
  batchIds @13 :UInt64;
  batchIdsSeal @14 :Text;
}

struct ParameterSet {
  step @0 :UInt64;           # number of optimizer steps applied so far
  dense @1 :List(Tensor);    # float32, in the model's parameter order; empty if not requested
  ids @2 :Tensor;            # uint64 [U], echoes the request
  embeddings @3 :Tensor;     # float32 [U, dim], row i belongs to ids[i]
  withdrawn @4 :Bool;        # a pull sent ahead that is not served (the work went otherwise): no rows; ask for work
  heldMicros @5 :UInt64;     # a pull sent ahead: how long it waited for its step before it was answered
  servedAhead @6 :Bool;      # a pull sent ahead, served: the batches it named are the worker's at `step`
  # The dense exchange (parameter servers holding dense parameters, when on):
  # a directory only processes of this user on this machine can open, and the
  # contents of its file `nonce`, so a trainer can tell it sees the same one.
  exchangeDir @7 :Text;
  exchangeNonce @8 :Text;
  # Asked for with denseInFile: the file of exchangeDir holding the dense
  # parameters (float32 in the machine's byte order, in `dense`'s order, one
  # after another); `dense` is then empty.
  denseFile @9 :Text;
  # Asked for with rowsInFile: the file of exchangeDir holding the rows
  # (float32, each id's row of its slot's width, in `ids` order, one after
  # another); `embeddings` is then empty. The file is this worker's, rewritten
  # by a later pull of the same worker: it is read before the next pull.
  rowsFile @10 :Text;
}

# One worker's gradients for one step. Gradients are of the worker's mean loss.
struct GradientUpdate {
  workerRank @0 :UInt32;
  step @1 :UInt64;
  batchSize @2 :UInt32;
  loss @3 :Float32;          # the batch's mean loss (several tasks: their weighted sum)
  dense @4 :List(Tensor);    # float32, same order and shapes as ParameterSet.dense
  sparseIds @5 :Tensor;      # uint64 [U]
  sparseGrads @6 :Tensor;    # float32 [U, dim], summed over the id's occurrences
  batchIndex @7 :UInt64;     # the global batch these gradients were computed on
  streamingAuc @8 :Float32;  # the trainer's AUC over its recent batches, scored before their updates (NaN = not yet)
  # Several tasks: each task's mean loss (loss is their weighted sum) and
  # streaming AUC (NaN for a regression task or not yet), in the job's task
  # order; empty for one task.
  taskLosses @9 :List(Float32);
  taskStreamingAuc @10 :List(Float32);
  # Instead of `dense` (then empty): the file the trainer wrote in the
  # parameter server's exchange directory, the dense gradients one after
  # another as float32; read by the parameter server before it answers (the
  # trainer recycles the file for a later push).
  denseFile @11 :Text;
  # With denseFile: the row gradients follow the dense gradients in that file
  # (float32, each of sparseIds' rows of its slot's width, one after another)
  # and `sparseGrads` is absent. Sent only to a server that has answered a
  # pull with a rowsFile (one that reads them there).
  sparseGradsInFile @12 :Bool;
  # The pushing trainer's registration token (RegisterWorkerResponse's
  # worker_token): shard 0 takes a push for a rank only with the token of the
  # trainer holding that rank, so a caller allowed to push (the shared trainer
  # certificate, or anyone in plaintext) cannot push as another trainer.
  workerToken @13 :Text;
  # The ticket the orchestrator gave with this batch (Work.batch_tickets): a
  # parameter-server shard takes a batch only with the ticket of the trainer
  # registration it was given to (its rank and workerToken).
  batchTicket @14 :Text;
}

struct StepAck {
  step @0 :UInt64;           # number of optimizer steps applied, after this one
  meanLoss @1 :Float32;      # loss averaged over the workers of this step
  workers @2 :UInt32;        # how many workers' gradients were averaged
  stale @3 :Bool;            # async mode: dropped, computed on parameters too old
  duplicate @4 :Bool;        # this batch's gradients had already arrived; ignored
}

# Table administration on the parameter server (ParameterServer/Assign,
# /Evict, /TableStats): set rows directly, drop rows, read the tables' size.
struct EmbeddingAssign {
  ids @0 :Tensor;            # uint64 [U]
  embeddings @1 :Tensor;     # float32 [U, dim]: each id's new row (optimizer state restarts)
}

struct EmbeddingEvict {
  ids @0 :Tensor;            # uint64 [U]
}

struct TableStatsRequest {
  slots @0 :List(UInt16);    # empty = every slot
}

struct SlotStats {
  slot @0 :UInt16;
  rows @1 :UInt64;
  bytes @2 :UInt64;
  evictedRows @3 :UInt64;
}

struct TableStats {
  rows @0 :UInt64;           # rows in all slots (or in the slots asked for)
  bytes @1 :UInt64;
  filteredLookups @2 :UInt64;
  admittedIds @3 :UInt64;
  evictedRows @4 :UInt64;
  rejectedGradients @5 :UInt64;
  slots @6 :List(SlotStats);
  changed @7 :UInt64;        # rows an Assign set or an Evict removed
  memoryLimitHits @8 :UInt64;  # rows refused at the memory limit
}

# Real-time parameter sync (Monolith's ParameterSync): a parameter server
# pushes to serving the embedding rows changed since its last push, the ids
# evicted since then (tombstones), and now and then the dense weights.
struct ParameterSyncUpdate {
  sequence @0 :UInt64;       # per sender run, increasing; serving ignores one not newer than the last it applied
  step @1 :UInt64;           # training step the values are from
  ids @2 :Tensor;            # uint64 [U]
  rows @3 :Tensor;           # float32 [U, dim]
  tombstones @4 :Tensor;     # uint64 [T]: ids to drop
  dense @5 :List(Tensor);    # float32, the model's dense parameters; empty = unchanged
  run @6 :Text;              # a fresh id each time a sender starts (a new job, a restart): sequences count within it; empty = an older sender, sequences per sender name
  model @7 :Text;            # modelIdentity() of the sender's model: serving refuses an update for another model; empty = an older sender, shapes checked only
}

struct ParameterSyncAck {
  modelVersion @0 :UInt64;   # the serving version the update was applied to
  rowsApplied @1 :UInt64;
  rowsRemoved @2 :UInt64;
  denseApplied @3 :Bool;
  ignored @4 :Bool;          # not newer than an update already applied from its sender run: nothing of it applied
  loadId @5 :Text;           # new each time serving loads a version (a restart, a version from disk): a sender whose earlier updates went to another load sends its whole table again; empty = an older serving
}

enum MessageType {
  trainingBatch @0;
  batchRequest @1;
  parameterRequest @2;
  parameterSet @3;
  gradientUpdate @4;
  stepAck @5;
  batchAck @6;
  embeddingAssign @7;
  embeddingEvict @8;
  tableStatsRequest @9;
  tableStats @10;
  parameterSyncUpdate @11;
  parameterSyncAck @12;
}

# The envelope of every hot-path gRPC payload. `type` must name the payload
# member that is set; a mismatch is refused as a malformed message.
struct Message {
  type @0 :MessageType;
  sender @1 :Text;
  sentAtMicros @2 :UInt64;
  payload :union {
    trainingBatch @3 :TrainingBatch;
    batchRequest @4 :BatchRequest;
    parameterRequest @5 :ParameterRequest;
    parameterSet @6 :ParameterSet;
    gradientUpdate @7 :GradientUpdate;
    stepAck @8 :StepAck;
    batchAck @9 :BatchAck;
    embeddingAssign @10 :EmbeddingAssign;
    embeddingEvict @11 :EmbeddingEvict;
    tableStatsRequest @12 :TableStatsRequest;
    tableStats @13 :TableStats;
    parameterSyncUpdate @14 :ParameterSyncUpdate;
    parameterSyncAck @15 :ParameterSyncAck;
  }
}
