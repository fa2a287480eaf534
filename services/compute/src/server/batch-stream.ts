import type * as grpc from "@grpc/grpc-js";
import type { Logger } from "@pangea/kit";
import { BatchStreamService, toServiceError } from "@pangea/rpc";
import { MessageType, Split, decodeMessage } from "@pangea/schema";
import { encodeBatch } from "../batching/batch-encoder.js";
import { shareBatches, type ShareRequest } from "../batching/shares.js";
import { RecordBlock, type DataSource } from "../sources/source.js";
import { ComputeErrors } from "../errors.js";

type BatchCall = grpc.ServerDuplexStream<Buffer, Buffer>;

/** Batches compute may have sent and the client not yet acknowledged, unless the client asks for another window. */
export const DEFAULT_WINDOW = 4;
export const MAX_WINDOW = 64;

/**
 * Serves BatchStream/StreamBatches: each call streams one worker's disjoint
 * share of a split. The client's first message is a BatchRequest, each later
 * one a BatchAck; a batch is produced only while fewer than `window` sent
 * batches are unacknowledged, so a slow trainer slows compute down instead
 * of making it buffer without bound.
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
      streamBatches: (call: BatchCall) => this.attach(call),
    });
  }

  private attach(call: BatchCall): void {
    const peer = call.getPeer();
    let started = false;
    let credit = 0;
    let wake: (() => void) | null = null;
    let closed = false;
    const signal = () => {
      const w = wake;
      wake = null;
      w?.();
    };
    const fail = (err: unknown) => {
      this.log.warn({ peer, err: (err as Error).message }, "batch stream failed");
      closed = true;
      signal();
      if (!call.cancelled) call.emit("error", toServiceError(err));
    };
    call.on("data", (bytes: Buffer) => {
      try {
        if (!started) {
          started = true;
          const { payload: req, sender } = decodeMessage(bytes, MessageType.BATCH_REQUEST, `batch request from ${peer}`);
          const window = req.window === 0 ? DEFAULT_WINDOW : req.window;
          if (window > MAX_WINDOW) {
            throw ComputeErrors.create("COMPUTE_ERR_BAD_REQUEST", `batch request from ${sender}: window ${window} is above ${MAX_WINDOW}`);
          }
          credit = window;
          const share: ShareRequest = {
            workerRank: req.workerRank,
            worldSize: req.worldSize,
            batchSize: req.batchSize,
            maxBatches: Number(req.maxBatches),
            split: req.split === Split.EVAL ? "eval" : "train",
          };
          const waitForCredit = async () => {
            while (credit <= 0 && !closed) await new Promise<void>((r) => (wake = r));
          };
          this.produce(call, share, sender, waitForCredit, () => credit--, () => closed).catch(fail);
        } else {
          const { payload: ack } = decodeMessage(bytes, MessageType.BATCH_ACK, `batch ack from ${peer}`);
          credit += ack.consumed;
          signal();
        }
      } catch (err) {
        fail(err);
      }
    });
    const stop = () => {
      closed = true;
      signal();
    };
    call.on("cancelled", stop);
    call.on("error", stop);
  }

  private async produce(
    call: BatchCall,
    share: ShareRequest,
    sender: string,
    waitForCredit: () => Promise<void>,
    spend: () => void,
    isClosed: () => boolean,
  ): Promise<void> {
    const info = this.source.info;
    const splitRecords = share.split === "train" ? info.trainRecords : info.evalRecords;
    this.log.info({ peer: sender, ...share }, "batch stream opened");
    const block = new RecordBlock(share.batchSize, info.numDense, info.slotIds.length);
    let sent = 0;
    for (const slice of shareBatches(share, splitRecords)) {
      await waitForCredit();
      if (isClosed() || call.cancelled) break;
      this.source.read(share.split, slice.start, slice.count, block);
      call.write(encodeBatch(this.sender, block, info.slotIds, share.split, slice.batchIndex, slice.epoch));
      spend();
      this.batchesServed++;
      this.recordsServed += slice.count;
      sent++;
    }
    this.log.info({ peer: sender, batches: sent, cancelled: call.cancelled }, "batch stream closed");
    if (!call.cancelled && !isClosed()) call.end();
  }
}
