import { RpcErrors } from "../errors.js";

/**
 * A small client for etcd's v3 API through its JSON gateway (POST /v3/...,
 * keys and values base64): enough for service registration with leases and
 * lookups. Endpoints are tried in turn, so one etcd member down is not fatal.
 */
export class EtcdClient {
  constructor(private readonly endpoints: readonly string[], private readonly timeoutMs = 3_000) {}

  private async call<T>(path: string, body: unknown): Promise<T> {
    let last = "";
    for (const ep of this.endpoints) {
      try {
        const res = await fetch(`http://${ep}${path}`, { method: "POST", body: JSON.stringify(body), signal: AbortSignal.timeout(this.timeoutMs) });
        const text = await res.text();
        if (!res.ok) {
          last = `etcd at ${ep}: HTTP ${res.status} on ${path}: ${text.slice(0, 200)}`;
          continue;
        }
        return JSON.parse(text) as T;
      } catch (err) {
        last = `etcd at ${ep}: ${(err as Error).message} on ${path}`;
      }
    }
    throw RpcErrors.create("RPC_ERR_REGISTRY", last || "no etcd endpoints");
  }

  async grantLease(ttlSeconds: number): Promise<string> {
    const r = await this.call<{ ID: string }>("/v3/lease/grant", { TTL: ttlSeconds });
    return r.ID;
  }

  /** Renews a lease; false if etcd no longer knows it (it expired). */
  async keepAlive(lease: string): Promise<boolean> {
    const r = await this.call<{ result?: { TTL?: string } }>("/v3/lease/keepalive", { ID: lease });
    return Number(r.result?.TTL ?? 0) > 0;
  }

  async revoke(lease: string): Promise<void> {
    await this.call("/v3/lease/revoke", { ID: lease });
  }

  async put(key: string, value: string, lease?: string): Promise<void> {
    await this.call("/v3/kv/put", { key: b64(key), value: b64(value), ...(lease ? { lease } : {}) });
  }

  async get(key: string): Promise<string | null> {
    return (await this.entry(key))?.value ?? null;
  }

  /** A key's value and the lease it is attached to ("0": none), or null if there is no such key. */
  async entry(key: string): Promise<{ value: string; lease: string } | null> {
    const r = await this.call<{ kvs?: { value?: string; lease?: string }[] }>("/v3/kv/range", { key: b64(key) });
    const kv = r.kvs?.[0];
    return kv ? { value: unb64(kv.value ?? ""), lease: kv.lease ?? "0" } : null;
  }

  /**
   * Puts `value` under `lease` only if the key is absent (`expected` null) or holds `expected`, in one transaction:
   * what another process writes meanwhile is not overwritten. True if it was put.
   */
  async putIf(key: string, value: string, lease: string, expected: string | null): Promise<boolean> {
    const compare = expected === null ? { key: b64(key), result: "EQUAL", target: "CREATE", create_revision: "0" } : { key: b64(key), result: "EQUAL", target: "VALUE", value: b64(expected) };
    const r = await this.call<{ succeeded?: boolean }>("/v3/kv/txn", { compare: [compare], success: [{ request_put: { key: b64(key), value: b64(value), lease } }] });
    return r.succeeded === true;
  }

  /** Every key under a prefix, with its value. */
  async list(prefix: string): Promise<Map<string, string>> {
    const r = await this.call<{ kvs?: { key: string; value?: string }[] }>("/v3/kv/range", { key: b64(prefix), range_end: b64(prefixEnd(prefix)) });
    return new Map((r.kvs ?? []).map((kv) => [unb64(kv.key), unb64(kv.value ?? "")]));
  }
}

const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");
const unb64 = (s: string) => Buffer.from(s, "base64").toString("utf8");

/** The smallest key after every key starting with `prefix` (etcd's range_end for a prefix scan). */
function prefixEnd(prefix: string): string {
  const b = Buffer.from(prefix, "utf8");
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i]! < 0xff) {
      const out = b.subarray(0, i + 1);
      out[i]!++;
      return out.toString("latin1");
    }
  }
  return "\0";
}
