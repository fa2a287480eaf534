import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { closedPort } from "../ports.js";

/**
 * A real etcd server (Debian's etcd-server; `.ci/run` installs it) on free
 * loopback ports, its data under `dir`, for the tests of etcd discovery.
 */
export interface EtcdServer {
  /** host:port of its client API (the JSON gateway at http://endpoint/v3/...). */
  endpoint: string;
  stop(): void;
}

/** Starts etcd and resolves once a put through its gateway succeeds; rejects after timeoutMs. */
export async function startEtcd(dir: string, timeoutMs = 20_000): Promise<EtcdServer> {
  if (spawnSync("sh", ["-c", "command -v etcd"]).status !== 0) throw new Error("etcd is not installed: apt-get install etcd-server (.ci/run does this)");
  const endpoint = `127.0.0.1:${await closedPort()}`;
  const peer = `http://127.0.0.1:${await closedPort()}`;
  const child: ChildProcess = spawn("etcd", [
    "--name", "test", "--data-dir", join(dir, "etcd"),
    "--listen-client-urls", `http://${endpoint}`, "--advertise-client-urls", `http://${endpoint}`,
    "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", `test=${peer}`,
  ], { stdio: "ignore" });
  const stop = () => void child.kill("SIGTERM");
  const put = JSON.stringify({ key: Buffer.from("/probe").toString("base64"), value: Buffer.from("1").toString("base64") });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await fetch(`http://${endpoint}/v3/kv/put`, { method: "POST", body: put, signal: AbortSignal.timeout(500) }).then((r) => r.ok, () => false);
    if (ok) return { endpoint, stop };
    if (child.exitCode !== null || Date.now() > deadline) {
      stop();
      throw new Error(child.exitCode !== null ? `etcd exited with code ${child.exitCode}` : `etcd did not serve at ${endpoint} within ${timeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
