import type * as grpc from "@grpc/grpc-js";
import type { Logger } from "@pangea/kit";
import { BatchStreamService, toServiceError } from "@pangea/rpc";
import { MessageType, Split, decodeMessage } from "@pangea/schema";
import { encodeBatch } from "../batching/batch-encoder.js";
import { shareBatches } from "../batching/shares.js";
import { RecordBlock, type DataSource } from "../sources/source.js";

/**
 * Serves BatchStream/StreamBatches: each call streams one worker's disjoint
 * share of a split. Batches are produced only as fast as the client reads
 * them: when gRPC's write buffer is full the handler waits for 'drain'.
 */
export class BatchStreamHandler {
  batchesServed = 0;
  recordsServed = 0;

  constructor(
    private readonly source: DataSource,
    private readonly sender: string,
    private readonly log: Logger,
  ) {}

  addToServer(server: grpc.Server): void {
    server.addService(BatchStreamService, {
      streamBatches: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
        void this.stream(call);
      },
    });
  }

  private async stream(call: grpc.ServerWritableStream<Buffer, Buffer>): Promise<void> {
    const peer = call.getPeer();
    try {
      const { payload: req, sender } = decodeMessage(call.request, MessageType.BATCH_REQUEST, `batch request from ${peer}`);
      const split = req.split === Split.EVAL ? "eval" : "train";
      const share = {
        workerRank: req.workerRank,
        worldSize: req.worldSize,
        batchSize: req.batchSize,
        maxBatches: Number(req.maxBatches),
        split,
      } as const;
      const info = this.source.info;
      const splitRecords = split === "train" ? info.trainRecords : info.evalRecords;
      this.log.info({ peer: sender, ...share }, "batch stream opened");
      const block = new RecordBlock(share.batchSize, info.numDense, info.slotIds.length);
      let sent = 0;
      for (const slice of shareBatches(share, splitRecords)) {
        if (call.cancelled) break;
        this.source.read(split, slice.start, slice.count, block);
        const bytes = encodeBatch(this.sender, block, info.slotIds, split, slice.batchIndex, slice.epoch);
        this.batchesServed++;
        this.recordsServed += slice.count;
        sent++;
        if (!call.write(bytes)) await drainedOrCancelled(call);
      }
      this.log.info({ peer: sender, batches: sent, cancelled: call.cancelled }, "batch stream closed");
      if (!call.cancelled) call.end();
    } catch (err) {
      this.log.warn({ peer, err: (err as Error).message }, "batch stream failed");
      if (!call.cancelled) call.emit("error", toServiceError(err));
    }
  }
}

function drainedOrCancelled(call: grpc.ServerWritableStream<Buffer, Buffer>): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      call.off("drain", done);
      call.off("cancelled", done);
      resolve();
    };
    call.on("drain", done);
    call.on("cancelled", done);
  });
}
