import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import * as http from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@pangea/kit";
import { EtcdClient, openDiscovery } from "../src/index.js";

/**
 * Discovery against Debian's etcd server (`.ci/run` installs etcd-server),
 * reached through a small HTTP relay that can hold a lease renewal back: the
 * race between a renewal in flight and close() is then certain, not a matter
 * of timing.
 */
const tmp = mkdtempSync(join(tmpdir(), "pangea-etcd-disc-"));
let etcd: ChildProcess | null = null;
let etcdAddress = "";

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

beforeAll(async () => {
  if (spawnSync("sh", ["-c", "command -v etcd"]).status !== 0) throw new Error("etcd is not installed: apt-get install etcd-server (.ci/run does this)");
  const client = await freePort();
  const peer = await freePort();
  etcdAddress = `127.0.0.1:${client}`;
  etcd = spawn("etcd", [
    "--name", "t", "--data-dir", join(tmp, "etcd"),
    "--listen-client-urls", `http://${etcdAddress}`, "--advertise-client-urls", `http://${etcdAddress}`,
    "--listen-peer-urls", `http://127.0.0.1:${peer}`, "--initial-advertise-peer-urls", `http://127.0.0.1:${peer}`,
    "--initial-cluster", `t=http://127.0.0.1:${peer}`,
  ], { stdio: "ignore" });
  const probe = new EtcdClient([etcdAddress], 500);
  const deadline = Date.now() + 20_000;
  while (!(await probe.put("/probe", "1").then(() => true, () => false))) {
    if (Date.now() > deadline) throw new Error("etcd did not serve within 20 s");
    await new Promise((r) => setTimeout(r, 200));
  }
}, 30_000);

afterAll(() => {
  etcd?.kill("SIGTERM");
});

/** Relays etcd's JSON gateway; a keepalive is held until `release()` and then forwarded. */
async function holdingRelay() {
  let held: (() => void)[] = [];
  let seenKeepAlive: () => void = () => {};
  const keepAliveSeen = new Promise<void>((r) => (seenKeepAlive = r));
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const forward = () => {
        fetch(`http://${etcdAddress}${req.url}`, { method: "POST", body: Buffer.concat(chunks) })
          .then(async (r) => res.writeHead(r.status).end(Buffer.from(await r.arrayBuffer())))
          .catch(() => res.writeHead(502).end());
      };
      if (req.url === "/v3/lease/keepalive") {
        held.push(forward);
        seenKeepAlive();
      } else forward();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    address: `127.0.0.1:${(server.address() as { port: number }).port}`,
    keepAliveSeen,
    release: () => {
      for (const f of held) f();
      held = [];
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe("etcd discovery", () => {
  it("close() during a lease renewal leaves no entry behind: the renewal does not announce again under a new lease", async () => {
    const relay = await holdingRelay();
    const discovery = openDiscovery({ discovery: `etcd://${relay.address}`, orchestrator: "", clusterName: "race", leaseSeconds: 3 }, createLogger("test"));
    await discovery.announce("trainer", "trainer-0", "127.0.0.1:1");
    const registry = new EtcdClient([etcdAddress]);
    expect([...(await registry.list("/pangea/race/")).keys()]).toEqual(["/pangea/race/trainer/trainer-0"]);
    // A renewal is on its way to etcd (held by the relay) when the service shuts down.
    await relay.keepAliveSeen;
    setTimeout(relay.release, 300);
    await discovery.close();
    // Give a renewal that saw its lease revoked time to grant a new one and put the entry back.
    await new Promise((r) => setTimeout(r, 500));
    expect([...(await registry.list("/pangea/race/")).keys()]).toEqual([]);
    await relay.close();
  }, 30_000);
});
