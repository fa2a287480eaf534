import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { writeVersion } from "../../services/serving/test/support/versions.js";
import { ROOT } from "./processes.js";
import { startService, type RunningService } from "./service.js";

export interface ServingProcess {
  serving: RunningService;
  /** A plain gRPC client of its port (call methods with makeUnaryRequest and the service's serializers). */
  client: grpc.Client;
  /** Stops the process and removes its model directory. */
  close(): Promise<void>;
}

/** A real serving process on port 0 (REST too) serving a one-version test model named ctr, with `args` added. */
export async function servingOfTestModel(tempPrefix: string, args: string[]): Promise<ServingProcess> {
  const tmp = mkdtempSync(join(tmpdir(), tempPrefix));
  writeVersion(join(tmp, "models"), 1);
  const serving = await startService(join(ROOT, "services/serving/dist/main.js"), ["--model-base-path", join(tmp, "models"), "--model-name", "ctr", "--port", "0", "--rest-port", "0", ...args]);
  const client = new grpc.Client(serving.address, grpc.credentials.createInsecure());
  return {
    serving,
    client,
    close: async () => {
      client.close();
      await serving.stop();
      rmSync(tmp, { recursive: true, force: true });
    },
  };
}
