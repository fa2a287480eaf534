/**
 * TEST FIXTURE — not a Kafka broker for production use.
 *
 * A single-node, in-memory server speaking enough of the Kafka wire protocol
 * for kafkajs's producer and consumer-group client: ApiVersions 0-2,
 * Metadata 1 (auto-creates topics), Produce 3 and Fetch 4 (RecordBatch v2,
 * CRC-32C checked), ListOffsets 1, FindCoordinator 0, JoinGroup 0,
 * SyncGroup 0, Heartbeat 0, LeaveGroup 0, OffsetCommit 2, OffsetFetch 1,
 * CreateTopics 0. No Kafka broker can be installed from the registries these
 * machines reach; tests drive the real kafkajs client over TCP against this,
 * and run unchanged against a real broker when KAFKA_BROKERS is set.
 */
import { createServer, type Server, type Socket } from "node:net";
import { randomUUID } from "node:crypto";
import { crc32c } from "@pangea/kit";
import { KafkaReader, KafkaWriter } from "./wire.js";

const ERR = {
  NONE: 0,
  CORRUPT_MESSAGE: 2,
  UNKNOWN_TOPIC_OR_PARTITION: 3,
  ILLEGAL_GENERATION: 22,
  UNKNOWN_MEMBER_ID: 25,
  REBALANCE_IN_PROGRESS: 27,
  UNSUPPORTED_VERSION: 35,
  TOPIC_ALREADY_EXISTS: 36,
} as const;

const NODE_ID = 0;
/** Api key -> highest version served (lowest is 0, or 1 where noted). */
const SUPPORTED: [number, number, number][] = [
  [0, 3, 3], // Produce
  [1, 4, 4], // Fetch
  [2, 1, 1], // ListOffsets
  [3, 1, 1], // Metadata
  [8, 2, 2], // OffsetCommit
  [9, 1, 1], // OffsetFetch
  [10, 0, 0], // FindCoordinator
  [11, 0, 0], // JoinGroup
  [12, 0, 0], // Heartbeat
  [13, 0, 0], // LeaveGroup
  [14, 0, 0], // SyncGroup
  [18, 0, 2], // ApiVersions
  [19, 0, 0], // CreateTopics
];

interface StoredBatch {
  base: bigint;
  last: bigint;
  bytes: Buffer;
}

interface PartitionLog {
  batches: StoredBatch[];
  end: bigint;
  waiters: (() => void)[];
}

interface Member {
  id: string;
  sessionTimeout: number;
  lastSeen: number;
  protocols: { name: string; metadata: Buffer }[];
}

class Group {
  generation = 0;
  state: "empty" | "joining" | "syncing" | "stable" = "empty";
  readonly members = new Map<string, Member>();
  leader = "";
  protocol = "";
  private joins = new Map<string, (b: Buffer) => void>();
  private syncs = new Map<string, (b: Buffer) => void>();
  private assignments = new Map<string, Buffer>();
  private timer: NodeJS.Timeout | null = null;
  readonly offsets = new Map<string, bigint>();

  constructor(private readonly rebalanceDelayMs: number) {}

  join(memberId: string, clientId: string, sessionTimeout: number, protocols: { name: string; metadata: Buffer }[]): Promise<Buffer> {
    const id = memberId || `${clientId}-${randomUUID()}`;
    this.members.set(id, { id, sessionTimeout, lastSeen: Date.now(), protocols });
    this.beginRebalance();
    return new Promise((resolve) => {
      this.joins.set(id, resolve);
      if ([...this.members.keys()].every((m) => this.joins.has(m))) this.completeJoin();
    });
  }

  private beginRebalance(): void {
    if (this.state !== "joining") {
      this.state = "joining";
      // Members still in a sync wait must rejoin.
      for (const [, resolve] of this.syncs) resolve(new KafkaWriter().int16(ERR.REBALANCE_IN_PROGRESS).bytes(Buffer.alloc(0)).finish());
      this.syncs.clear();
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.completeJoin(), this.rebalanceDelayMs);
  }

  private completeJoin(): void {
    if (this.state !== "joining" || this.joins.size === 0) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    // Members that did not rejoin in time leave the group.
    for (const id of [...this.members.keys()]) if (!this.joins.has(id)) this.members.delete(id);
    this.generation++;
    const ids = [...this.joins.keys()];
    this.leader = ids[0]!;
    this.protocol = this.members.get(this.leader)!.protocols[0]?.name ?? "";
    this.state = "syncing";
    this.assignments.clear();
    for (const [id, resolve] of this.joins) {
      const w = new KafkaWriter().int16(ERR.NONE).int32(this.generation).string(this.protocol).string(this.leader).string(id);
      const members = id === this.leader ? [...this.members.values()] : [];
      w.array(members, (x, m) => x.string(m.id).bytes(m.protocols.find((p) => p.name === this.protocol)?.metadata ?? Buffer.alloc(0)));
      resolve(w.finish());
    }
    this.joins.clear();
  }

  sync(memberId: string, generation: number, assignments: { member: string; assignment: Buffer }[]): Promise<Buffer> {
    const fail = (code: number) => Promise.resolve(new KafkaWriter().int16(code).bytes(Buffer.alloc(0)).finish());
    if (!this.members.has(memberId)) return fail(ERR.UNKNOWN_MEMBER_ID);
    if (generation !== this.generation) return fail(ERR.ILLEGAL_GENERATION);
    if (this.state === "joining") return fail(ERR.REBALANCE_IN_PROGRESS);
    this.touch(memberId);
    if (memberId === this.leader) {
      for (const a of assignments) this.assignments.set(a.member, a.assignment);
      this.state = "stable";
      for (const [id, resolve] of this.syncs) resolve(this.assignmentOf(id));
      this.syncs.clear();
    }
    if (this.state === "stable") return Promise.resolve(this.assignmentOf(memberId));
    return new Promise((resolve) => this.syncs.set(memberId, resolve));
  }

  private assignmentOf(id: string): Buffer {
    return new KafkaWriter().int16(ERR.NONE).bytes(this.assignments.get(id) ?? Buffer.alloc(0)).finish();
  }

  heartbeat(memberId: string, generation: number): number {
    if (!this.members.has(memberId)) return ERR.UNKNOWN_MEMBER_ID;
    this.touch(memberId);
    if (this.state !== "stable") return ERR.REBALANCE_IN_PROGRESS;
    if (generation !== this.generation) return ERR.ILLEGAL_GENERATION;
    return ERR.NONE;
  }

  leave(memberId: string): number {
    if (!this.members.delete(memberId)) return ERR.UNKNOWN_MEMBER_ID;
    if (this.members.size > 0) this.beginRebalance();
    else this.state = "empty";
    return ERR.NONE;
  }

  touch(memberId: string): void {
    const m = this.members.get(memberId);
    if (m) m.lastSeen = Date.now();
  }

  /** Drops members whose session timed out, as a broker does for a client that died. */
  expire(now: number): void {
    for (const m of [...this.members.values()]) {
      if (now - m.lastSeen > m.sessionTimeout && !this.joins.has(m.id)) {
        this.members.delete(m.id);
        if (this.members.size > 0) this.beginRebalance();
        else this.state = "empty";
      }
    }
  }

  commitCheck(memberId: string, generation: number): number {
    if (generation < 0) return ERR.NONE; // a commit outside group management
    if (!this.members.has(memberId)) return ERR.UNKNOWN_MEMBER_ID;
    if (generation !== this.generation) return ERR.ILLEGAL_GENERATION;
    return ERR.NONE;
  }
}

export interface FixtureBrokerOptions {
  defaultPartitions?: number;
  rebalanceDelayMs?: number;
}

export class KafkaFixtureBroker {
  readonly topics = new Map<string, PartitionLog[]>();
  readonly groups = new Map<string, Group>();
  private readonly sockets = new Set<Socket>();
  private readonly sweeper: NodeJS.Timeout;
  port = 0;

  private constructor(
    private readonly server: Server,
    private readonly opts: Required<FixtureBrokerOptions>,
  ) {
    this.sweeper = setInterval(() => {
      const now = Date.now();
      for (const g of this.groups.values()) g.expire(now);
    }, 200);
    this.sweeper.unref();
  }

  static async start(options: FixtureBrokerOptions = {}): Promise<KafkaFixtureBroker> {
    const server = createServer();
    const broker = new KafkaFixtureBroker(server, { defaultPartitions: options.defaultPartitions ?? 2, rebalanceDelayMs: options.rebalanceDelayMs ?? 300 });
    server.on("connection", (s) => broker.serve(s));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    broker.port = (server.address() as { port: number }).port;
    return broker;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  async stop(): Promise<void> {
    clearInterval(this.sweeper);
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  createTopic(name: string, partitions = this.opts.defaultPartitions): boolean {
    if (this.topics.has(name)) return false;
    this.topics.set(name, Array.from({ length: partitions }, () => ({ batches: [], end: 0n, waiters: [] })));
    return true;
  }

  /** Fetch requests served (tests check that a consumer that stopped reading does not fetch on). */
  fetches = 0;

  /** Committed offset of a group for a partition (tests inspect at-least-once behaviour). */
  committed(group: string, topic: string, partition: number): bigint | undefined {
    return this.groups.get(group)?.offsets.get(`${topic}/${partition}`);
  }

  private group(id: string): Group {
    let g = this.groups.get(id);
    if (!g) this.groups.set(id, (g = new Group(this.opts.rebalanceDelayMs)));
    return g;
  }

  private serve(socket: Socket): void {
    this.sockets.add(socket);
    socket.on("close", () => this.sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    let pending = Buffer.alloc(0);
    let chain = Promise.resolve();
    socket.on("data", (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 4) {
        const size = pending.readInt32BE(0);
        if (pending.length < 4 + size) break;
        const frame = pending.subarray(4, 4 + size);
        pending = pending.subarray(4 + size);
        // Responses go out in request order, as Kafka guarantees per connection.
        const response = this.handle(frame);
        chain = chain.then(async () => {
          const body = await response;
          if (body && !socket.destroyed) {
            const head = Buffer.alloc(4);
            head.writeInt32BE(body.length);
            socket.write(Buffer.concat([head, body]));
          }
        });
      }
    });
  }

  private async handle(frame: Buffer): Promise<Buffer | null> {
    const r = new KafkaReader(frame);
    const apiKey = r.int16();
    const version = r.int16();
    const correlationId = r.int32();
    const clientId = r.nullableString() ?? "client";
    const head = new KafkaWriter().int32(correlationId);
    const supported = SUPPORTED.find(([k]) => k === apiKey);
    if (!supported || version < supported[1] - (apiKey === 18 ? supported[1] : 0) || version > supported[2]) {
      // ApiVersions answers an unsupported version in its v0 form so the client can retry lower.
      if (apiKey === 18) return Buffer.concat([head.finish(), this.apiVersions(0, ERR.UNSUPPORTED_VERSION)]);
      return null;
    }
    const body = await this.dispatch(apiKey, version, r, clientId);
    return body ? Buffer.concat([head.finish(), body]) : null;
  }

  private async dispatch(apiKey: number, version: number, r: KafkaReader, clientId: string): Promise<Buffer | null> {
    switch (apiKey) {
      case 18:
        return this.apiVersions(version, ERR.NONE);
      case 3:
        return this.metadata(r);
      case 19:
        return this.createTopics(r);
      case 0:
        return this.produce(r);
      case 1:
        return this.fetch(r);
      case 2:
        return this.listOffsets(r);
      case 10: {
        r.string();
        return new KafkaWriter().int16(ERR.NONE).int32(NODE_ID).string("127.0.0.1").int32(this.port).finish();
      }
      case 11: {
        const groupId = r.string();
        const sessionTimeout = r.int32();
        const memberId = r.string();
        r.string(); // protocol type
        const protocols = r.array((x) => ({ name: x.string(), metadata: x.bytes() ?? Buffer.alloc(0) }));
        return this.group(groupId).join(memberId, clientId, sessionTimeout, protocols);
      }
      case 14: {
        const groupId = r.string();
        const generation = r.int32();
        const memberId = r.string();
        const assignments = r.array((x) => ({ member: x.string(), assignment: x.bytes() ?? Buffer.alloc(0) }));
        return this.group(groupId).sync(memberId, generation, assignments);
      }
      case 12: {
        const groupId = r.string();
        const generation = r.int32();
        const memberId = r.string();
        return new KafkaWriter().int16(this.group(groupId).heartbeat(memberId, generation)).finish();
      }
      case 13: {
        const groupId = r.string();
        const memberId = r.string();
        return new KafkaWriter().int16(this.group(groupId).leave(memberId)).finish();
      }
      case 8:
        return this.offsetCommit(r);
      case 9:
        return this.offsetFetch(r);
      default:
        return null;
    }
  }

  private apiVersions(version: number, error: number): Buffer {
    const w = new KafkaWriter().int16(error).array(SUPPORTED, (x, [k, lo, hi]) => x.int16(k).int16(lo).int16(hi));
    if (version >= 1) w.int32(0);
    return w.finish();
  }

  private metadata(r: KafkaReader): Buffer {
    const n = r.int32();
    const wanted: string[] = [];
    for (let i = 0; i < n; i++) wanted.push(r.string());
    for (const t of wanted) this.createTopic(t);
    const names = n < 0 ? [...this.topics.keys()] : wanted;
    return new KafkaWriter()
      .array([0], (w) => w.int32(NODE_ID).string("127.0.0.1").int32(this.port).string(null))
      .int32(NODE_ID)
      .array(names, (w, t) => {
        const parts = this.topics.get(t)!;
        w.int16(ERR.NONE).string(t).bool(false).array(parts.map((_, i) => i), (x, p) => x.int16(ERR.NONE).int32(p).int32(NODE_ID).array([NODE_ID], (y, id) => y.int32(id)).array([NODE_ID], (y, id) => y.int32(id)));
      })
      .finish();
  }

  private createTopics(r: KafkaReader): Buffer {
    const reqs = r.array((x) => {
      const name = x.string();
      const partitions = x.int32();
      x.int16();
      x.array((y) => [y.int32(), y.array((z) => z.int32())]);
      x.array((y) => [y.string(), y.nullableString()]);
      return { name, partitions };
    });
    r.int32();
    return new KafkaWriter()
      .array(reqs, (w, q) => w.string(q.name).int16(this.createTopic(q.name, q.partitions > 0 ? q.partitions : this.opts.defaultPartitions) ? ERR.NONE : ERR.TOPIC_ALREADY_EXISTS))
      .finish();
  }

  private log(topic: string, partition: number): PartitionLog | undefined {
    return this.topics.get(topic)?.[partition];
  }

  private produce(r: KafkaReader): Buffer | null {
    r.nullableString();
    const acks = r.int16();
    r.int32();
    const topics = r.array((x) => ({ topic: x.string(), data: x.array((y) => ({ partition: y.int32(), records: y.bytes() ?? Buffer.alloc(0) })) }));
    const w = new KafkaWriter().array(topics, (tw, t) => {
      tw.string(t.topic).array(t.data, (pw, d) => {
        const log = this.log(t.topic, d.partition);
        if (!log) {
          pw.int32(d.partition).int16(ERR.UNKNOWN_TOPIC_OR_PARTITION).int64(-1n).int64(-1n);
          return;
        }
        const base = log.end;
        const error = this.append(log, d.records);
        pw.int32(d.partition).int16(error).int64(error ? -1n : base).int64(-1n);
      });
    });
    w.int32(0);
    return acks === 0 ? null : w.finish();
  }

  /** Appends RecordBatches (magic 2), assigning offsets; refuses a batch whose CRC fails. */
  private append(log: PartitionLog, records: Buffer): number {
    const batches: Buffer[] = [];
    let at = 0;
    while (at + 61 <= records.length) {
      const length = records.readInt32BE(at + 8);
      const end = at + 12 + length;
      if (end > records.length) return ERR.CORRUPT_MESSAGE;
      const b = Buffer.from(records.subarray(at, end));
      if (b.readInt8(16) !== 2 || b.readUInt32BE(17) !== crc32c(b, 21, b.length)) return ERR.CORRUPT_MESSAGE;
      batches.push(b);
      at = end;
    }
    for (const b of batches) {
      const base = log.end;
      b.writeBigInt64BE(base, 0);
      const last = base + BigInt(b.readInt32BE(23));
      log.batches.push({ base, last, bytes: b });
      log.end = last + 1n;
    }
    for (const wake of log.waiters.splice(0)) wake();
    return ERR.NONE;
  }

  private async fetch(r: KafkaReader): Promise<Buffer> {
    this.fetches++;
    r.int32();
    const maxWait = r.int32();
    r.int32();
    r.int32();
    r.int8();
    const topics = r.array((x) => ({ topic: x.string(), partitions: x.array((y) => ({ partition: y.int32(), offset: y.int64(), maxBytes: y.int32() })) }));
    const hasData = () => topics.some((t) => t.partitions.some((p) => (this.log(t.topic, p.partition)?.end ?? 0n) > p.offset));
    if (!hasData() && maxWait > 0) {
      // Long poll: answer when data arrives or the wait is over.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(maxWait, 1000));
        const wake = () => {
          clearTimeout(timer);
          resolve();
        };
        for (const t of topics) for (const p of t.partitions) this.log(t.topic, p.partition)?.waiters.push(wake);
      });
    }
    const w = new KafkaWriter().int32(0);
    w.array(topics, (tw, t) => {
      tw.string(t.topic).array(t.partitions, (pw, p) => {
        const log = this.log(t.topic, p.partition);
        if (!log) {
          pw.int32(p.partition).int16(ERR.UNKNOWN_TOPIC_OR_PARTITION).int64(-1n).int64(-1n).array([], () => {}).bytes(Buffer.alloc(0));
          return;
        }
        const chosen: Buffer[] = [];
        let size = 0;
        for (const b of log.batches) {
          if (b.last < p.offset) continue;
          if (chosen.length > 0 && size + b.bytes.length > p.maxBytes) break;
          chosen.push(b.bytes);
          size += b.bytes.length;
        }
        pw.int32(p.partition).int16(ERR.NONE).int64(log.end).int64(log.end).array([], () => {}).bytes(Buffer.concat(chosen));
      });
    });
    return w.finish();
  }

  private listOffsets(r: KafkaReader): Buffer {
    r.int32();
    const topics = r.array((x) => ({ topic: x.string(), partitions: x.array((y) => ({ partition: y.int32(), timestamp: y.int64() })) }));
    return new KafkaWriter()
      .array(topics, (tw, t) =>
        tw.string(t.topic).array(t.partitions, (pw, p) => {
          const log = this.log(t.topic, p.partition);
          if (!log) pw.int32(p.partition).int16(ERR.UNKNOWN_TOPIC_OR_PARTITION).int64(-1n).int64(-1n);
          // -2 = earliest, -1 = latest; a real timestamp is answered with the latest offset.
          else pw.int32(p.partition).int16(ERR.NONE).int64(-1n).int64(p.timestamp === -2n ? (log.batches[0]?.base ?? log.end) : log.end);
        }),
      )
      .finish();
  }

  private offsetCommit(r: KafkaReader): Buffer {
    const group = this.group(r.string());
    const generation = r.int32();
    const memberId = r.string();
    r.int64();
    const topics = r.array((x) => ({ topic: x.string(), partitions: x.array((y) => ({ partition: y.int32(), offset: y.int64(), meta: y.nullableString() })) }));
    const error = group.commitCheck(memberId, generation);
    if (error === ERR.NONE) for (const t of topics) for (const p of t.partitions) group.offsets.set(`${t.topic}/${p.partition}`, p.offset);
    group.touch(memberId);
    return new KafkaWriter().array(topics, (tw, t) => tw.string(t.topic).array(t.partitions, (pw, p) => pw.int32(p.partition).int16(error))).finish();
  }

  private offsetFetch(r: KafkaReader): Buffer {
    const group = this.group(r.string());
    const topics = r.array((x) => ({ topic: x.string(), partitions: x.array((y) => y.int32()) }));
    return new KafkaWriter()
      .array(topics, (tw, t) => tw.string(t.topic).array(t.partitions, (pw, p) => pw.int32(p).int64(group.offsets.get(`${t.topic}/${p}`) ?? -1n).string("").int16(ERR.NONE)))
      .finish();
  }
}
