import { mkdirSync, readdirSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { ROOT } from "./processes.js";

/**
 * Python message classes and gRPC stubs for TensorFlow Serving's protocol,
 * generated into `outDir` by grpc_tools' protoc (python3-grpc-tools, with
 * the well-known types it ships) from schemas/proto: what an external
 * client builds from the .proto files (those under `protoRoot`: the repo's,
 * or a changed copy of them). Returns protoc's exit status and stderr.
 */
export function generateTfServingStubs(outDir: string, protoRoot = join(ROOT, "schemas/proto")): { status: number | null; stderr: string } {
  const under = (dir: string) => readdirSync(join(protoRoot, dir)).filter((f) => f.endsWith(".proto")).map((f) => `${dir}/${f}`);
  const protos = [...under("tensorflow_serving/apis"), ...under("tensorflow/core/framework"), ...under("tensorflow/core/protobuf")];
  mkdirSync(outDir, { recursive: true });
  const gen = spawnSync(
    "/usr/bin/python3",
    ["-c", "import grpc_tools, os, sys; from grpc_tools import protoc; inc = os.path.join(os.path.dirname(grpc_tools.__file__), '_proto'); sys.exit(protoc.main(['protoc', '-I.', '-I' + inc, '--python_out=' + sys.argv[1], '--grpc_python_out=' + sys.argv[1]] + sys.argv[2:]))", outDir, ...protos],
    { cwd: protoRoot, encoding: "utf8" },
  );
  return { status: gen.status, stderr: gen.stderr };
}
