import { mkdtempSync } from "node:fs";
import * as http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@pangea/kit";
import { startEtcd, type EtcdServer } from "@pangea/test-utils";
import { EtcdClient, openDiscovery } from "../src/index.js";

/**
 * Discovery against Debian's etcd server (`.ci/run` installs etcd-server),
 * reached through a small HTTP relay that can hold a lease renewal back: the
 * race between a renewal in flight and close() is then certain, not a matter
 * of timing.
 */
const tmp = mkdtempSync(join(tmpdir(), "pangea-etcd-disc-"));
let etcd: EtcdServer | null = null;
let etcdAddress = "";

beforeAll(async () => {
  etcd = await startEtcd(tmp);
  etcdAddress = etcd.endpoint;
}, 30_000);

afterAll(() => etcd?.stop());

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

  it("renewals that fail one after another are said once, and their end once", async () => {
    // A relay that answers the first three keepalives with 503, then relays.
    let refused = 0;
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        if (req.url === "/v3/lease/keepalive" && refused < 3) {
          refused++;
          res.writeHead(503).end("etcd is away");
          return;
        }
        fetch(`http://${etcdAddress}${req.url}`, { method: "POST", body: Buffer.concat(chunks) })
          .then(async (r) => res.writeHead(r.status).end(Buffer.from(await r.arrayBuffer())))
          .catch(() => res.writeHead(502).end());
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const lines: string[] = [];
    const say = (level: string) => (o: unknown, msg?: string) => lines.push(`${level}: ${msg ?? o}`);
    const log = { info: say("info"), warn: say("warn"), debug: () => {}, error: say("error") } as unknown as ReturnType<typeof createLogger>;
    const discovery = openDiscovery({ discovery: `etcd://127.0.0.1:${(server.address() as { port: number }).port}`, orchestrator: "", clusterName: "renewals", leaseSeconds: 3 }, log);
    await discovery.announce("trainer", "trainer-0", "127.0.0.1:1");
    const deadline = Date.now() + 15_000;
    while (!lines.some((l) => l.includes("renewed again") || l.includes("announced again")) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    await discovery.close();
    await new Promise<void>((r) => server.close(() => r()));
    expect(refused).toBe(3);
    expect(lines.filter((l) => l.includes("renewal failed"))).toEqual(["warn: etcd lease renewal failed; retrying every third of the lease, said again only if the reason changes"]);
    expect(lines.filter((l) => l.includes("renewed again") || l.includes("announced again"))).toHaveLength(1);
  }, 30_000);

  it("an entry deleted, or written back without its lease, is put back under the lease at the next renewal (said once); one another process rewrote is left to it, also after a lost lease", async () => {
    const lines: string[] = [];
    const say = (level: string) => (o: unknown, msg?: string) => lines.push(`${level}: ${msg ?? o}`);
    const log = { info: say("info"), warn: say("warn"), debug: () => {}, error: say("error") } as unknown as ReturnType<typeof createLogger>;
    const discovery = openDiscovery({ discovery: `etcd://${etcdAddress}`, orchestrator: "", clusterName: "deleted", leaseSeconds: 3 }, log);
    await discovery.announce("serving", "serving-0", "127.0.0.1:7");
    const registry = new EtcdClient([etcdAddress]);
    const key = "/pangea/deleted/serving/serving-0";
    const lease = (await registry.entry(key))!.lease;
    expect(lease).not.toBe("0");
    const until = async (what: () => Promise<boolean>) => {
      const deadline = Date.now() + 10_000;
      while (!(await what()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    };
    // etcdctl del, through the same JSON gateway; twice: put back each time, said once.
    const del = () => fetch(`http://${etcdAddress}/v3/kv/deleterange`, { method: "POST", body: JSON.stringify({ key: Buffer.from(key).toString("base64") }) });
    for (let i = 0; i < 2; i++) {
      await del();
      expect(await registry.get(key)).toBeNull();
      await until(async () => (await registry.get(key)) !== null);
      expect(await registry.entry(key)).toEqual({ value: "127.0.0.1:7", lease });
    }
    expect(lines.filter((l) => l.includes("was deleted"))).toEqual(["warn: etcd entry was deleted while the lease was valid; announced again under the lease (said once per entry)"]);
    // Written back by hand with the same address and no lease (it would outlive the service): attached to the lease again.
    await registry.put(key, "127.0.0.1:7");
    expect((await registry.entry(key))!.lease).toBe("0");
    await until(async () => (await registry.entry(key))!.lease !== "0");
    expect(await registry.entry(key)).toEqual({ value: "127.0.0.1:7", lease });
    expect(lines.filter((l) => l.includes("without its lease"))).toHaveLength(1);
    // Another process writes its own address there: not fought over, said once over several renewals.
    await registry.put(key, "127.0.0.1:8");
    await new Promise((r) => setTimeout(r, 3_500));
    expect(await registry.get(key)).toBe("127.0.0.1:8");
    expect(lines.filter((l) => l.includes("another address"))).toEqual(["warn: etcd entry now holds another address; left to the process that wrote it"]);
    // The lease lost (revoked under it): the service announces again under a new one, and still leaves that entry alone.
    await fetch(`http://${etcdAddress}/v3/lease/revoke`, { method: "POST", body: JSON.stringify({ ID: lease }) });
    await until(async () => lines.some((l) => l.includes("lease was lost")));
    expect(await registry.get(key)).toBe("127.0.0.1:8");
    await discovery.close();
    // The rewritten entry carries no lease of ours: closing leaves it.
    expect(await registry.get(key)).toBe("127.0.0.1:8");
  }, 40_000);
});
