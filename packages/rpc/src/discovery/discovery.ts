import { HOST_PORT_RE, printable, reasonKey, type Logger } from "@pangea/kit";
import { RpcErrors } from "../errors.js";
import { EtcdClient } from "./etcd-client.js";

/** A service's role in the cluster, as registries and TF_CONFIG name it. */
export type Role = "orchestrator" | "compute" | "trainer" | "ps" | "serving";

/**
 * How services find each other. Everything a worker needs beyond the
 * orchestrator's address it learns from the orchestrator, so discovery is:
 * find the orchestrator, and announce yourself.
 *
 * - static: the --orchestrator flag (or its environment variable).
 * - tf-config: the TF_CONFIG environment variable's cluster spec.
 * - etcd://host:port[,host:port]: an etcd registry; each service keeps its
 *   address under /pangea/<cluster>/<role>/<id> with a lease, so a crashed
 *   service disappears from it after the lease's TTL.
 */
export interface Discovery {
  readonly kind: "static" | "tf-config" | "etcd";
  /** The orchestrator's address; waits for it to appear (up to timeoutMs) where the registry can say. */
  orchestrator(timeoutMs: number): Promise<string>;
  /** Announces this service; the announcement lasts until close() (or, with etcd, the process dies and the lease runs out). */
  announce(role: Role, id: string, address: string): Promise<void>;
  /** The services of a role the registry knows, by id (static: only what this process announced; tf-config: the cluster spec's list, by index). */
  list(role: Role): Promise<Map<string, string>>;
  close(): Promise<void>;
}

export interface DiscoveryConfig {
  /** static, tf-config, or etcd://host:port[,host:port] */
  discovery: string;
  /** The static orchestrator address (--orchestrator). */
  orchestrator?: string;
  /** Namespace in the registry, so clusters can share one etcd. */
  clusterName: string;
  leaseSeconds?: number;
}

export function openDiscovery(c: DiscoveryConfig, log: Logger, env: NodeJS.ProcessEnv = process.env): Discovery {
  if (c.discovery === "static") return new StaticDiscovery(c.orchestrator);
  if (c.discovery === "tf-config") return new TfConfigDiscovery(parseTfConfig(env.TF_CONFIG));
  if (c.discovery.startsWith("etcd://")) {
    const endpoints = c.discovery.slice("etcd://".length).split(",");
    return new EtcdDiscovery(new EtcdClient(endpoints), c.clusterName, c.leaseSeconds ?? 10, log);
  }
  throw RpcErrors.create("RPC_ERR_DISCOVERY", `unknown discovery ${c.discovery}; expected static, tf-config or etcd://host:port`);
}

class StaticDiscovery implements Discovery {
  readonly kind: "static" | "tf-config" = "static";
  protected readonly own = new Map<Role, Map<string, string>>();
  constructor(private readonly address: string | undefined) {}
  orchestrator(): Promise<string> {
    if (!this.address) return Promise.reject(RpcErrors.create("RPC_ERR_DISCOVERY", "static discovery needs --orchestrator host:port"));
    return Promise.resolve(this.address);
  }
  async announce(role: Role, id: string, address: string): Promise<void> {
    if (!this.own.has(role)) this.own.set(role, new Map());
    this.own.get(role)!.set(id, address);
  }
  async list(role: Role): Promise<Map<string, string>> {
    const found = new Map(this.own.get(role) ?? []);
    if (role === "orchestrator" && this.address) found.set("main", this.address);
    return found;
  }
  async close(): Promise<void> {}
}

/** TensorFlow's TF_CONFIG: {"cluster": {"chief": [...], "worker": [...], "ps": [...]}, "task": {"type": ..., "index": ...}}. */
export interface TfConfig {
  cluster: Record<string, string[]>;
  task?: { type: string; index: number };
}

export function parseTfConfig(text: string | undefined): TfConfig {
  if (!text) throw RpcErrors.create("RPC_ERR_DISCOVERY", "--discovery tf-config needs the TF_CONFIG environment variable (a JSON cluster spec)");
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw RpcErrors.create("RPC_ERR_DISCOVERY", `TF_CONFIG is not valid JSON: ${printable((err as Error).message, 160)}`);
  }
  const cfg = v as TfConfig;
  if (typeof cfg !== "object" || cfg === null || typeof cfg.cluster !== "object" || cfg.cluster === null) {
    throw RpcErrors.create("RPC_ERR_DISCOVERY", 'TF_CONFIG has no "cluster" object');
  }
  for (const [role, addrs] of Object.entries(cfg.cluster)) {
    if (!Array.isArray(addrs) || !addrs.every((a) => typeof a === "string" && HOST_PORT_RE.test(a))) {
      throw RpcErrors.create("RPC_ERR_DISCOVERY", `TF_CONFIG cluster.${role} must be a list of host:port strings`);
    }
  }
  return cfg;
}

/** The orchestrator is TF_CONFIG's "orchestrator" entry, or TensorFlow's "chief"/"master" (the coordinating task). */
export function tfConfigOrchestrator(cfg: TfConfig): string {
  const a = cfg.cluster.orchestrator?.[0] ?? cfg.cluster.chief?.[0] ?? cfg.cluster.master?.[0];
  if (!a) throw RpcErrors.create("RPC_ERR_DISCOVERY", 'TF_CONFIG names no orchestrator: expected cluster.orchestrator (or chief/master) with one host:port');
  return a;
}

class TfConfigDiscovery extends StaticDiscovery {
  override readonly kind = "tf-config" as const;
  constructor(readonly config: TfConfig) {
    super(undefined);
  }
  override async orchestrator(): Promise<string> {
    return tfConfigOrchestrator(this.config);
  }
  override async list(role: Role): Promise<Map<string, string>> {
    const found = new Map(this.own.get(role) ?? []);
    if (role === "orchestrator") found.set("main", tfConfigOrchestrator(this.config));
    else (this.config.cluster[role] ?? []).forEach((a, i) => found.set(String(i), a));
    return found;
  }
}

class EtcdDiscovery implements Discovery {
  readonly kind = "etcd" as const;
  private lease: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  private renewing: Promise<void> | null = null;
  /** Why the last renewal failed (its numbers blanked), or null while renewals succeed. */
  private renewFailing: string | null = null;
  private announcing: Promise<void> | null = null;
  private closed = false;
  private readonly announced: { key: string; address: string }[] = [];
  /** Announced keys another process has rewritten, with the value last seen (said once per value). */
  private readonly takenBy = new Map<string, string>();
  /** Restorations already said (an entry deleted again and again is put back each time, said the first). */
  private readonly said = new Set<string>();

  constructor(
    private readonly etcd: EtcdClient,
    private readonly cluster: string,
    private readonly ttl: number,
    private readonly log: Logger,
  ) {}

  private key(role: Role, id: string): string {
    return `/pangea/${this.cluster}/${role}/${id}`;
  }

  async orchestrator(timeoutMs: number): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let why = "";
    for (;;) {
      try {
        const found = await this.etcd.list(`/pangea/${this.cluster}/orchestrator/`);
        const first = [...found.values()][0];
        if (first) return first;
        why = `no orchestrator registered under /pangea/${this.cluster}/orchestrator/`;
      } catch (err) {
        why = (err as Error).message;
      }
      if (Date.now() > deadline) throw RpcErrors.create("RPC_ERR_UNREACHABLE", `cannot find the orchestrator in etcd within ${(timeoutMs / 1000).toFixed(1)}s: ${why}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  async list(role: Role): Promise<Map<string, string>> {
    const prefix = `/pangea/${this.cluster}/${role}/`;
    const found = await this.etcd.list(prefix);
    return new Map([...found].map(([k, v]) => [k.slice(prefix.length), v]));
  }

  async announce(role: Role, id: string, address: string): Promise<void> {
    // close() waits for an announcement in flight, so it revokes the lease this one takes.
    const announcing = (this.announcing ?? Promise.resolve()).then(() => this.put(role, id, address));
    this.announcing = announcing.catch(() => undefined);
    return announcing;
  }

  private async put(role: Role, id: string, address: string): Promise<void> {
    if (this.closed) return;
    if (!this.lease) {
      this.lease = await this.etcd.grantLease(this.ttl);
      // Renew at a third of the TTL; if etcd forgot the lease (it was unreachable too long), take a new one and announce again.
      this.timer = setInterval(() => {
        if (!this.renewing) this.renewing = this.renew().finally(() => (this.renewing = null));
      }, (this.ttl * 1000) / 3);
      this.timer.unref();
    }
    const key = this.key(role, id);
    await this.etcd.put(key, address, this.lease);
    this.announced.push({ key, address });
    this.log.info({ key, address, leaseSeconds: this.ttl }, "announced in etcd");
  }

  private async renew(): Promise<void> {
    try {
      if (this.lease && (await this.etcd.keepAlive(this.lease))) {
        if (this.renewFailing !== null) this.log.info("etcd lease renewed again");
        this.renewFailing = null;
        await this.restoreEntries(this.lease);
        return;
      }
      // A renewal in flight when close() revoked the lease sees it gone: announcing again would leave the entries behind.
      if (this.closed) return;
      const lease = await this.etcd.grantLease(this.ttl);
      this.lease = lease;
      // The lost lease took the entries with it; one another process has written since is its own.
      for (const a of this.announced) await this.claim(a, lease);
      this.log.warn({ keys: this.announced.filter((a) => !this.takenBy.has(a.key)).map((a) => a.key) }, "etcd lease was lost; announced again");
      this.renewFailing = null;
    } catch (err) {
      // Said once per reason (reasonKey): renewals come every third of the lease, for as long as etcd is away.
      const why = (err as Error).message;
      const key = reasonKey(why);
      if (this.renewFailing !== key) this.log.warn({ err: why }, "etcd lease renewal failed; retrying every third of the lease, said again only if the reason changes");
      this.renewFailing = key;
    }
  }

  /**
   * An entry deleted while its lease lives (etcdctl del, a cleanup script)
   * would otherwise stay gone until the lease is lost, with clients never
   * finding this service; one written back by hand without the lease would
   * outlive the service. Each is put back under the lease. An entry another
   * process rewrote with its own address is that process's: left, said once.
   */
  private async restoreEntries(lease: string): Promise<void> {
    for (const a of this.announced) {
      const now = await this.etcd.entry(a.key);
      if (this.closed || this.lease !== lease) return;
      if (now && now.value !== a.address) this.leftTo(a, now.value);
      else if (now?.lease !== lease) {
        const why = now === null ? "deleted" : "written without its lease";
        if (await this.claim(a, lease)) this.sayOnce(`${a.key} ${why}`, { key: a.key, address: a.address }, `etcd entry was ${why} while the lease was valid; announced again under the lease (said once per entry)`);
      }
    }
  }

  /**
   * Puts an announced entry under `lease` if it is absent or holds this service's address, in one transaction: one
   * another process wrote in the meantime is not overwritten. False if another holds it.
   */
  private async claim(a: { key: string; address: string }, lease: string): Promise<boolean> {
    if ((await this.etcd.putIf(a.key, a.address, lease, null)) || (await this.etcd.putIf(a.key, a.address, lease, a.address))) {
      this.takenBy.delete(a.key);
      return true;
    }
    const now = await this.etcd.get(a.key);
    if (now !== null) this.leftTo(a, now);
    return false;
  }

  /** An announced entry another process holds: its own, said once per value. */
  private leftTo(a: { key: string; address: string }, now: string): void {
    if (this.takenBy.get(a.key) === now) return;
    this.takenBy.set(a.key, now);
    this.log.warn({ key: a.key, address: a.address, now: printable(now, 120) }, "etcd entry now holds another address; left to the process that wrote it");
  }

  private sayOnce(what: string, fields: Record<string, unknown>, message: string): void {
    if (this.said.has(what)) return;
    this.said.add(what);
    this.log.warn(fields, message);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.announcing;
    if (this.timer) clearInterval(this.timer);
    await this.renewing;
    const lease = this.lease;
    this.lease = null;
    if (!lease) return;
    // A busy etcd can miss one call's deadline; an entry left behind would point clients at a stopped service until its lease ran out.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.etcd.revoke(lease);
        return;
      } catch (err) {
        if (attempt === 3) {
          this.log.warn({ err: (err as Error).message, keys: this.announced.map((a) => a.key) }, "could not revoke the etcd lease; the entries go when it expires");
          return;
        }
        await new Promise((r) => setTimeout(r, 200 * attempt));
      }
    }
  }
}

/**
 * Runs `attempt` against the orchestrator discovery finds. With a registry
 * the address found may be stale (a dead orchestrator's entry lives until its
 * lease runs out), so an unreachable one is looked up again, in short tries,
 * until timeoutMs is spent; a fixed address gets one try of the full time.
 */
export async function withOrchestrator<T>(discovery: Discovery, timeoutMs: number, attempt: (address: string, attemptTimeoutMs: number) => Promise<T>): Promise<T> {
  if (discovery.kind !== "etcd") return attempt(await discovery.orchestrator(timeoutMs), timeoutMs);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const remaining = Math.max(1, deadline - Date.now());
    const address = await discovery.orchestrator(remaining);
    try {
      return await attempt(address, Math.min(remaining, 3_000));
    } catch (err) {
      if (!RpcErrors.is(err, "RPC_ERR_UNREACHABLE") || Date.now() >= deadline) throw err;
    }
  }
}
