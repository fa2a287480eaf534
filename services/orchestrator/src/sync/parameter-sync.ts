import { randomUUID } from "node:crypto";
import { HOST_PORT_RE, printable, reasonKey, type Logger } from "@pangea/kit";
import { describeCallError, parameterSyncClient, unary, type ParameterSyncClient } from "@pangea/rpc";
import { DataType, MessageType, decodeMessage, encodeMessage, sizeHint, writeTensor } from "@pangea/schema";
import type { EmbeddingStore } from "../embeddings/embedding-store.js";
import type { DenseStore } from "../params/dense-store.js";
import { compactRounds, joinRounds, splitRound, type SyncRound } from "./sync-backlog.js";
import { wholeTableParts } from "./whole-table.js";

export interface SyncSource {
  store: EmbeddingStore;
  /** null on a parameter-server shard other than 0. */
  dense: DenseStore | null;
  step(): number;
}

/** Row values in one push at most (64 MB of them): a bigger round goes as several, under serving's 256 MiB message limit. */
const MAX_PUSH_VALUES = 16 << 20;

/**
 * Whole-table sends to one replica start this far apart at least (but the final push's): a peer on a sync address
 * that names a new load in every ack (in plaintext nothing proves it is serving) would otherwise make every
 * interval's push a copy and send of the whole table. A real serving changes its load at a restart or a version
 * load; a second within this time gets its rows a little later, the interval pushes between still applied.
 */
export const MIN_RESEND_GAP_MS = 30_000;

/** Replicas --serving-sync discovery pushes to at most: each holds a backlog and a connection, and etcd's list is whatever was put there. */
export const MAX_DISCOVERED_REPLICAS = 64;

const EMPTY_ROUND: SyncRound = { ids: new Uint32Array(0), rows: new Float32Array(0), tombstones: new Uint32Array(0), width: null, dense: null };

interface Replica {
  address: string;
  client: ParameterSyncClient;
  /** What the replica has not acknowledged (rounds it missed are compacted into one), or null. */
  pending: SyncRound | null;
  /** The run's sequence to this address, shared with any earlier Replica of it (one that left etcd and came back). */
  sequence: { n: number };
  /** Why the last push failed (null while pushes succeed), and how many in a row did. */
  failing: string | null;
  failedPushes: number;
  /** The failure's reason with its numbers blanked (a deadline's elapsed time, a timestamp): what "the reason changed" compares. */
  failingKey: string;
  /** A send to it is out: a round meanwhile joins its backlog instead of waiting behind it. */
  busy: boolean;
  /** An ack during the current delivery named another load than the one before. */
  loadChanged: boolean;
  /** The load of its model version the replica's last ack came from ("" before one, or from an older serving). */
  loadId: string;
  /** The replica holds another load than the one earlier pushes went to: the next push sends every row and the dense weights. */
  resend: boolean;
  /** When its last whole-table send started (ms since the epoch; 0 = never), and whether one waits for MIN_RESEND_GAP_MS. */
  lastResendAt: number;
  resendDeferred: boolean;
  /** The replica's send in flight: the next waits for it (see send). */
  queue: Promise<void>;
}

/**
 * Monolith's ParameterSync from the training side: every `intervalMs` the
 * embedding rows changed since the last push and the ids evicted since then
 * go to each serving replica; the dense weights go every `denseIntervalMs`.
 * A replica that cannot be reached gets what it missed with the next push
 * (per replica, nothing is dropped), so it catches up when it comes back.
 * Each pusher is a sender run of its own (a fresh run id, sequences from
 * 1), so serving applies a new job's or a restarted process's pushes
 * whatever an earlier run under the same sender name had sent; each push
 * names the model (modelIdentity), so serving refuses it for another one.
 * Serving's ack names the load of the version it applied a push to; a
 * replica whose load changed (it restarted, or loaded a version from disk)
 * holds none of the pushes before, and is sent every row and the dense
 * weights again at once. A round too big for one message goes as several.
 */
export class ParameterSyncPusher {
  private replicas: Replica[];
  /** Why the replicas' list could not be read (said once until it can be again), or null. */
  private listFailing: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  private lastDense = 0;
  /** The final push has begun: an interval's push after it has nothing to add. */
  private finalBegun = false;
  /** The replicas' list being read (one read at a time: two pushes must not each add the same new replica). */
  private refreshing: Promise<void> | null = null;
  /** Listed values that are no host:port, said once each; and whether the list was said to be cut to MAX_DISCOVERED_REPLICAS. */
  private readonly badEntries = new Set<string>();
  private saidTooMany = false;
  /** Each address's sequence in this run (see replica()). */
  private readonly sequences = new Map<string, { n: number }>();
  pushes = 0;
  rowsSent = 0;
  /** When a replica last applied a push (ms since the epoch; 0 = never), and the serving version it applied it to. */
  lastAckAt = 0;
  servingVersion = 0;
  /** Pushes a replica acknowledged but ignored as not newer than one it had applied from this run (none expected: they mean a replay). */
  ignored = 0;
  private readonly run = randomUUID();

  /** Why the last push to a replica failed, while one still fails (null once every replica has what it was sent). */
  get failing(): string | null {
    return this.replicas.find((r) => r.failing !== null)?.failing ?? null;
  }

  constructor(
    targets: readonly string[],
    private readonly source: SyncSource,
    private readonly intervalMs: number,
    private readonly denseIntervalMs: number,
    private readonly sender: string,
    /** modelIdentity() of the model the pushes are from. */
    private readonly model: string,
    private readonly log: Logger,
    /** Serving's API token, presented on each push (a serving with --api-token-file requires it in plaintext). */
    private readonly token?: string,
    private readonly now: () => number = Date.now,
    /** The replicas as they are now (--serving-sync discovery: etcd's list), read before each push; `targets` then start it. */
    private readonly listReplicas: (() => Promise<readonly string[]>) | null = null,
  ) {
    this.replicas = targets.map((address) => this.replica(address, false));
    source.store.trackChanges();
  }

  private replica(address: string, joined: boolean): Replica {
    // One that joins later holds only its version from disk: it is sent every row and the dense weights first.
    // Serving remembers the highest sequence it applied from this run: a replica found again at an address (its lease
    // lost and announced again) goes on from there, or it would ignore every push until the count caught up.
    let sequence = this.sequences.get(address);
    if (!sequence) this.sequences.set(address, (sequence = { n: 0 }));
    return { address, client: parameterSyncClient(address), pending: null, sequence, failing: null, failedPushes: 0, failingKey: "", busy: false, loadChanged: false, loadId: "", resend: joined, lastResendAt: 0, resendDeferred: false, queue: Promise.resolve() };
  }

  /**
   * The replicas listed now: a new one is pushed to from here on, starting with every row; one no longer listed
   * (its lease expired: it stopped, or lost etcd) is pushed to no more. A list that cannot be read keeps the replicas
   * as they were.
   */
  private refreshReplicas(): Promise<void> {
    this.refreshing ??= this.readReplicas().finally(() => (this.refreshing = null));
    return this.refreshing;
  }

  /** The listed values that are addresses, at most MAX_DISCOVERED_REPLICAS of them; the others said once each. */
  private usable(listed: readonly string[]): string[] {
    const ok: string[] = [];
    for (const a of listed) {
      if (HOST_PORT_RE.test(a)) ok.push(a);
      else if (!this.badEntries.has(a) && this.badEntries.size < MAX_DISCOVERED_REPLICAS) {
        this.badEntries.add(a);
        this.log.warn({ entry: printable(a, 200) }, "a serving entry in etcd is no host:port; parameter sync passes it over");
      }
    }
    const unique = [...new Set(ok)];
    if (unique.length <= MAX_DISCOVERED_REPLICAS) return unique;
    if (!this.saidTooMany) {
      this.saidTooMany = true;
      this.log.warn({ listed: unique.length, max: MAX_DISCOVERED_REPLICAS }, `etcd lists more serving replicas than parameter sync pushes to (${MAX_DISCOVERED_REPLICAS}): those that answered are kept, then those already pushed to, then new ones by address`);
    }
    // Entries put in by the thousand must not push out the replicas that answer (by address, a false one may sort first).
    const inList = new Set(unique);
    const answered = this.replicas.filter((r) => inList.has(r.address) && r.loadId !== "").map((r) => r.address);
    const known = this.replicas.filter((r) => inList.has(r.address) && r.loadId === "").map((r) => r.address);
    const had = new Set(this.replicas.map((r) => r.address));
    const fresh = unique.filter((a) => !had.has(a)).sort();
    return [...answered, ...known, ...fresh].slice(0, MAX_DISCOVERED_REPLICAS);
  }

  private async readReplicas(): Promise<void> {
    let listed: readonly string[];
    try {
      listed = this.usable(await this.listReplicas!());
    } catch (err) {
      const why = (err as Error).message;
      if (this.listFailing !== why) this.log.warn({ err: why }, "parameter sync cannot read the serving replicas from etcd; pushing to the ones it had");
      this.listFailing = why;
      return;
    }
    if (this.listFailing !== null) this.log.info("parameter sync reads the serving replicas from etcd again");
    this.listFailing = null;
    const now = new Set(listed);
    for (const r of this.replicas.filter((x) => !now.has(x.address))) {
      this.log.info({ serving: r.address }, "serving replica left etcd: parameter sync stops pushing to it");
      void r.queue.finally(() => r.client.close());
    }
    const kept = this.replicas.filter((x) => now.has(x.address));
    const known = new Set(kept.map((x) => x.address));
    for (const address of now) {
      if (known.has(address)) continue;
      this.log.info({ serving: address }, `serving replica found in etcd: parameter sync sends it every row${this.source.dense ? " and the dense weights" : " this shard holds"}, then what changes`);
      kept.push(this.replica(address, true));
    }
    this.replicas = kept;
  }

  start(): void {
    this.lastDense = Date.now();
    this.timer = setInterval(() => void this.push(false), this.intervalMs);
    this.timer.unref();
  }

  /**
   * One round: take what changed, send it to every replica (with any backlog). `final` also sends the dense weights.
   * A replica whose last send is still out (slow, or a peer that never answers) holds no one up: the round joins its
   * backlog, and the next push after its send ends takes it there.
   */
  async push(final: boolean): Promise<void> {
    if (this.finalBegun) return;
    if (final) this.finalBegun = true;
    if (this.listReplicas) await this.refreshReplicas();
    const changes = this.source.store.drainChanges();
    const withDense = this.source.dense !== null && (final || Date.now() - this.lastDense >= this.denseIntervalMs);
    if (withDense) this.lastDense = Date.now();
    const round: SyncRound = { ...changes, dense: withDense ? this.source.dense!.values.map((v) => v.slice()) : null };
    if (round.ids.length === 0 && round.tombstones.length === 0 && !round.dense && this.replicas.every((r) => r.pending === null && !(r.resend && (r.loadId === "" || this.now() >= r.lastResendAt + MIN_RESEND_GAP_MS)))) return;
    this.pushes++;
    this.rowsSent += round.ids.length / 2;
    await Promise.all(this.replicas.map((r) => this.deliver(r, round, final)));
  }

  /**
   * A round to one replica: sent when no send to it is out (the final push waits for the one out: serving ignores an
   * update older than one it applied, so two of one replica's sends must not interleave), otherwise added to its
   * backlog. A replica found by an ack to have lost what it had been sent gets the whole table at once after.
   */
  private deliver(r: Replica, round: SyncRound, final: boolean): Promise<void> {
    if (r.busy && !final) {
      this.keepForLater(r, round, "newer");
      return Promise.resolve();
    }
    // Busy from now, not from when the send starts: a push right after this one must already see it out.
    r.busy = true;
    const sent = r.queue.then(async () => {
      r.busy = true;
      try {
        r.loadChanged = false;
        await this.sendNow(r, round, final);
        // An ack in this send named another load: the whole table now (one owed before was tried, or put off, just now).
        if (r.loadChanged && this.resendDue(r, final)) await this.sendNow(r, EMPTY_ROUND, final);
      } finally {
        r.busy = false;
      }
    });
    r.queue = sent.catch(() => undefined);
    return sent;
  }

  private readonly widthOf = (hi: number) => this.source.store.widthOf(hi);

  /** A whole-table send is wanted and may start now (see MIN_RESEND_GAP_MS); says once when one has to wait. */
  private resendDue(r: Replica, final: boolean): boolean {
    if (!r.resend) return false;
    const wait = r.lastResendAt + MIN_RESEND_GAP_MS - this.now();
    // One that has answered nothing yet is asked first with an empty update (resendAll), which costs nothing to repeat:
    // it gets the table as soon as it answers (a replica starts before it has a model to take it).
    if (final || wait <= 0 || r.loadId === "") return true;
    if (!r.resendDeferred) {
      r.resendDeferred = true;
      this.log.warn({ serving: r.address, waitMs: wait }, `serving names another load again within ${MIN_RESEND_GAP_MS / 1000} s of the last time it was sent every row: it is sent every row again when that time is up, the changed rows meanwhile`);
    }
    return false;
  }

  private async sendNow(r: Replica, round: SyncRound, final: boolean): Promise<void> {
    // A replica that is away gets one round of what it missed: memory stays bounded by the table, not by the time away.
    // Taken out of its backlog while it goes; rounds meanwhile gather there anew, and what fails goes back before them.
    const p = r.pending ? compactRounds([r.pending, round], this.widthOf) : round;
    r.pending = null;
    if (this.resendDue(r, final)) return this.resendAll(r, p);
    const parts = splitRound(p, this.widthOf, MAX_PUSH_VALUES);
    for (let k = 0; k < parts.length; k++) {
      if (await this.sendPart(r, parts[k]!)) continue;
      // What it missed stays for the next round: the parts not acknowledged.
      this.keepForLater(r, k === 0 ? p : joinRounds(parts.slice(k)), "older");
      return;
    }
  }

  /**
   * A round into the replica's backlog: `older` than what gathered there (what a send out missed) or `newer`. A replica
   * owed the whole table keeps none: that send brings every row as it is then (a peer that never took one, such as a
   * false address in etcd, holds no backlog).
   */
  private keepForLater(r: Replica, round: SyncRound, age: "older" | "newer"): void {
    if (r.resend) {
      r.pending = null;
      return;
    }
    r.pending = r.pending === null ? round : compactRounds(age === "older" ? [round, r.pending] : [r.pending, round], this.widthOf);
  }

  /**
   * Every row as it is now, every id evicted (a load from disk may hold it) and the dense weights, a part at a time
   * (wholeTableParts). If a part fails the table stays owed, with no backlog kept (keepForLater): the next rounds
   * bring it the changes meanwhile, and the whole table goes again when MIN_RESEND_GAP_MS allows.
   */
  private async resendAll(r: Replica, before: SyncRound): Promise<void> {
    const again = r.loadId !== "";
    r.lastResendAt = this.now();
    r.resendDeferred = false;
    // Set again by a part that fails, or by an ack from yet another load.
    r.resend = false;
    // One that has answered nothing yet is asked with an empty update first: a peer that is not there (or a false
    // address) costs a small message, not a part of the table made every time.
    if (!again && !(await this.sendPart(r, EMPTY_ROUND))) {
      r.resend = true;
      this.keepForLater(r, before, "older");
      return;
    }
    const dense = () => (this.source.dense ? this.source.dense.values.map((v) => v.slice()) : null);
    let rows = 0;
    let tombstones = 0;
    let pushes = 0;
    for (const part of wholeTableParts(this.source.store, dense, MAX_PUSH_VALUES)) {
      if (!(await this.sendPart(r, part))) {
        r.resend = true;
        this.keepForLater(r, before, "older");
        return;
      }
      rows += part.ids.length / 2;
      tombstones += part.tombstones.length / 2;
      pushes++;
    }
    this.log.info({ serving: r.address, rows, tombstones, pushes, dense: this.source.dense !== null }, `parameter sync sent serving every row${again ? " again" : ""}`);
  }

  /** One update to a replica; false if it failed (said in the log). */
  private async sendPart(r: Replica, p: SyncRound): Promise<boolean> {
    const bytes = encodeMessage(MessageType.PARAMETER_SYNC_UPDATE, this.sender, (u) => {
      u.sequence = BigInt(++r.sequence.n);
      u.run = this.run;
      u.model = this.model;
      u.step = BigInt(this.source.step());
      writeTensor(u._initIds(), "ids", DataType.UINT64, [p.ids.length / 2], p.ids);
      // Rows of one width go as [n, width]; rows of slots of different widths side by side, [values].
      writeTensor(u._initRows(), "rows", DataType.FLOAT32, p.width !== null ? [p.ids.length / 2, p.width] : [p.rows.length], p.rows);
      writeTensor(u._initTombstones(), "tombstones", DataType.UINT64, [p.tombstones.length / 2], p.tombstones);
      const dense = u._initDense(p.dense ? p.dense.length : 0);
      p.dense?.forEach((v, i) => writeTensor(dense.get(i), this.source.dense!.params[i]!.name, DataType.FLOAT32, this.source.dense!.params[i]!.shape, v));
    }, sizeHint(p.ids, p.rows, p.tombstones, ...(p.dense ?? [])));
    try {
      const push: typeof r.client.push = (req, meta, opts, cb) => {
        if (this.token) meta.set("authorization", `Bearer ${this.token}`);
        return r.client.push(req, meta, opts, cb);
      };
      // A part of a whole table is tens of MB: its deadline grows by a second per MiB.
      const res = await unary<Buffer, Buffer>("serving", push, bytes, 10_000 + Math.ceil(bytes.length / (1 << 20)) * 1_000);
      const { payload: ack } = decodeMessage(res, MessageType.PARAMETER_SYNC_ACK, `serving at ${r.address}`);
      // Answered, whatever it did with the push: the replica is reached again.
      if (r.failing !== null) {
        this.log.info({ serving: r.address, failedPushes: r.failedPushes }, "parameter sync reaches serving again; it has what it missed");
        r.failing = null;
        r.failingKey = "";
        r.failedPushes = 0;
      }
      // Synced rows live in serving's memory: another load of the version there holds none of the pushes before.
      if (ack.loadId && r.loadId && ack.loadId !== r.loadId) {
        r.resend = true;
        r.loadChanged = true;
        this.log.warn({ serving: r.address, version: Number(ack.modelVersion) }, "serving holds another load of its model than earlier parameter sync pushes went to (it restarted, or loaded a version from disk): it is sent every row and the dense weights again");
      }
      if (ack.loadId) r.loadId = ack.loadId;
      if (ack.ignored) {
        this.ignored++;
        this.log.warn({ serving: r.address, run: this.run, sequence: r.sequence.n }, "serving ignored a parameter sync push as not newer than one it had applied from this run");
        return true;
      }
      this.lastAckAt = Date.now();
      this.servingVersion = Number(ack.modelVersion);
      return true;
    } catch (err) {
      // A replica that was away still gets every row and tombstone: the caller keeps what was not acknowledged.
      // Said once per kind of failure (a replica refusing for minutes would otherwise log every interval).
      const why = describeCallError(err, `serving at ${r.address}`);
      const key = reasonKey(why);
      r.failedPushes++;
      const level = r.failingKey === key ? "debug" : "warn";
      r.failing = why;
      r.failingKey = key;
      this.log[level]({ serving: r.address, failedPushes: r.failedPushes, err: why }, "parameter sync push failed; will retry every interval, and say so again only if the reason changes");
      return false;
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    for (const r of this.replicas) r.client.close();
  }
}
