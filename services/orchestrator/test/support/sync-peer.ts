import * as grpc from "@grpc/grpc-js";
import { ParameterSyncService } from "@pangea/rpc";
import { MessageType, decodeMessage, encodeMessage, readIdWords } from "@pangea/schema";

/**
 * A parameter sync peer on a real gRPC server, recording how many rows each update carried (and its sequence) and acking each with the
 * load `loadOf` names for it (serving names one load for its life; a hostile plaintext peer may name a new one each
 * time), or refusing it while `refusing()` says so.
 */
export async function syncPeer(loadOf: (ack: number) => string, refusing: () => boolean = () => false): Promise<{ address: string; rowsPerUpdate: number[]; sequences: number[]; server: grpc.Server }> {
  const rowsPerUpdate: number[] = [];
  const sequences: number[] = [];
  const server = new grpc.Server();
  server.addService(ParameterSyncService, {
    push: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const { payload: u } = decodeMessage(call.request, MessageType.PARAMETER_SYNC_UPDATE, "push");
      rowsPerUpdate.push(readIdWords(u.ids, "ids").count);
      sequences.push(Number(u.sequence));
      // As a serving with no version loaded yet answers.
      if (refusing()) return cb({ code: grpc.status.UNAVAILABLE, details: "SERVING_ERR_NOT_READY: no version loaded yet" });
      cb(null, encodeMessage(MessageType.PARAMETER_SYNC_ACK, "serving", (a) => {
        a.modelVersion = 1n;
        a.rowsApplied = BigInt(rowsPerUpdate.at(-1)!);
        a.loadId = loadOf(rowsPerUpdate.length);
      }));
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return { address: `127.0.0.1:${port}`, rowsPerUpdate, sequences, server };
}
