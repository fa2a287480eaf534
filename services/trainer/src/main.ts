import { createLogger, runMain, usageText } from "@pangea/kit";
import { announceReady, startServer } from "@pangea/rpc";
import { validateSpec, type DlrmSpec } from "@pangea/model";
import { FLAGS, loadConfig } from "./config.js";
import { selectBackend } from "./backend/select-backend.js";
import { ClusterSession } from "./cluster/session.js";
import { BatchReader } from "./cluster/batches.js";
import { ShardedParameterClient } from "./cluster/sharded-parameters.js";
import { Dlrm } from "./model/dlrm.js";
import { trainLoop } from "./loop/train.js";
import { evaluate } from "./loop/evaluate.js";

const TRAINER_HEALTH_SERVICE = "pangea.v1.Trainer";

const usage = () => usageText("pangea-trainer", "Joins a job, trains the model on its share of the data, and (rank 0) evaluates it.", FLAGS);

runMain("pangea-trainer", async () => {
  const config = loadConfig(process.argv.slice(2), process.env);
  if (!config) {
    process.stdout.write(usage());
    return;
  }
  const log = createLogger("trainer").child({ worker: config.workerId });
  const backend = await selectBackend(config.backend);
  log.info({ backend: backend.name, detail: backend.detail }, `TensorFlow.js backend: ${backend.name}`);

  // A trainer serves only grpc.health.v1, so probes (Docker, Kubernetes) can watch it like any other service.
  const health = await startServer(config.host, config.port, () => {}, [TRAINER_HEALTH_SERVICE]);
  announceReady("trainer", health.address);
  const session = await ClusterSession.join(config.orchestrator, config.workerId, config.connectTimeoutMs, log);
  const { rank, worldSize } = session;
  log.info({ rank, worldSize }, "registered; waiting for the job to start");
  try {
    await session.reportBackend(backend.name);
    const job = await session.waitForStart();
    const m = job.model!;
    const spec: DlrmSpec = {
      numDense: m.numDense,
      numSlots: m.slotIds.length,
      embeddingDim: m.embeddingDim,
      bottomMlp: m.bottomMlp,
      topMlp: m.topMlp,
    };
    validateSpec(spec);
    const model = new Dlrm(spec);
    const shards = job.psShards.length > 0 ? job.psShards : [config.orchestrator];
    const params = new ShardedParameterClient(shards, config.workerId, rank, model.params, spec.embeddingDim, job.gradientCompression === "fp16");
    const train = new BatchReader(job.computeAddress, config.workerId);
    await train.open({ workerRank: rank, worldSize, batchSize: job.batchSize, maxBatches: job.steps, split: "train" }, config.connectTimeoutMs);
    log.info({ job: job.jobId, steps: job.steps, batchSize: job.batchSize, compute: job.computeAddress }, "training");
    const stats = await trainLoop(model, train, params, job.steps, log, config.logEvery);
    await train.finish();
    log.info({ ...stats, samplesPerSec: Math.round(stats.samples / stats.seconds) }, "training done");

    if (rank === 0) {
      const evalReader = new BatchReader(job.computeAddress, config.workerId);
      await evalReader.open({ workerRank: 0, worldSize: 1, batchSize: job.evalBatchSize, maxBatches: 0, split: "eval" }, config.connectTimeoutMs);
      const result = await evaluate(model, evalReader, params, job.steps);
      evalReader.close();
      log.info({ ...result }, "evaluation done");
      await session.reportEval({ workerId: config.workerId, step: job.steps, ...result });
    }
    params.close();
  } catch (err) {
    // The session's reason (e.g. another trainer died) explains a failed call better than the call's own status.
    throw session.failure ?? err;
  } finally {
    session.close();
    await health.shutdown(500);
  }
}, usage);
