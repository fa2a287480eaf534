import { randomBytes, timingSafeEqual } from "node:crypto";
import { watchTimer } from "./watch-timer.js";
import { parseFeatureInputs } from "@pangea/features";
import { TokenBucket, type Logger } from "@pangea/kit";
import type { JobState, SourceInfo__Output, WorkerEvent, WorkerStatus } from "@pangea/schema";
import { OrchestratorErrors } from "../errors.js";
import type { WorkerKind } from "../server/peer-check.js";
import { samplesDiffer } from "./content-samples.js";
import { MAX_BACKEND_CHARS, TRAINER_PHASES, TrainerTokens, nonceOf } from "@pangea/rpc";

const BACKEND_NAME = new RegExp(`^[\\x21-\\x7e]{1,${MAX_BACKEND_CHARS}}$`);
const PHASES: ReadonlySet<string> = new Set(TRAINER_PHASES);

/** A heartbeat's phase seconds, checked: the known phases only, each a finite count of seconds (the status repeats them). */
function checkedPhases(workerId: string, phases: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, seconds] of Object.entries(phases)) {
    if (!PHASES.has(name)) throw OrchestratorErrors.create("ORCH_ERR_BAD_REQUEST", `${workerId}: heartbeat reports unknown phase ${JSON.stringify(name.slice(0, 32))}; expected ${TRAINER_PHASES.join(", ")}`);
    if (!Number.isFinite(seconds) || seconds < 0) throw OrchestratorErrors.create("ORCH_ERR_BAD_REQUEST", `${workerId}: heartbeat phase ${name}: expected a finite number of seconds >= 0, got ${seconds}`);
    out[name] = seconds;
  }
  return out;
}

/**
 * New trainer ids a job accepts at once, then per second: far above any real
 * cluster's joins, far below what fills the 256-trainer table in a blink.
 */
const NEW_TRAINER_BURST = 32;
const NEW_TRAINER_PER_SECOND = 2;
/** Registrations of one trainer id seen before (coming back, or replacing its token) at once, then per second. */
const ID_AGAIN_BURST = 8;
const ID_AGAIN_PER_SECOND = 1;
const MAX_TRAINER_IDS = 256;
/** Refusals of calls for a worker logged at once, then per second: an operator sees an attack, a flood does not flood the log. */
const REFUSALS_LOGGED_BURST = 10;
const REFUSALS_LOGGED_PER_SECOND = 1;
/** A compute's data warnings go into every status: a few lines, not a payload. */
const MAX_DATA_WARNINGS = 8;
const MAX_DATA_WARNING_CHARS = 2048;

/** Where a job's session events go; the gRPC layer adapts a server stream to it. */
export interface SessionSink {
  send(event: WorkerEvent): void;
  end(): void;
}

/** The secret a registration hands its worker: every later call for the worker carries it (see Membership.checkToken). */
function newWorkerToken(): string {
  return randomBytes(18).toString("base64url");
}

export interface TrainerMember {
  workerId: string;
  /** This registration's worker token. */
  token: string;
  rank: number;
  session: SessionSink | null;
  backend: string;
  /** A member of the job: registered and not declared dead. */
  alive: boolean;
  /** Whether this registration's session has opened: one that never does took no part and expires without a trace. */
  attached: boolean;
  /** Whether any registration of this id opened a session (it trained, or was a member waiting for the start). */
  everAttached: boolean;
  lastBeat: number;
  batchesDone: number;
  /** Steps this registration computed a batch of (a standby trainer's waited steps are not its own), and the last one. */
  stepsDone: number;
  lastStep: number;
  /** The trainer's latest streaming AUC (NaN until it reports one). */
  streamingAuc: number;
  /** Several tasks: the trainer's last streaming AUC per task (NaN = none yet, or a regression task). */
  taskStreamingAuc: number[];
  /** Cumulative seconds per phase, from the trainer's last heartbeat. */
  phaseSeconds: Record<string, number>;
}

export interface ComputeMember {
  workerId: string;
  token: string;
  address: string;
  source: SourceInfo__Output;
  session: SessionSink | null;
}

/** A parameter-server shard 1..psShards-1 (shard 0 is the orchestrator itself). */
export interface ShardMember {
  workerId: string;
  token: string;
  index: number;
  address: string;
  session: SessionSink | null;
}

export type Member = { kind: "compute"; compute: ComputeMember } | { kind: "shard"; shard: ShardMember } | { kind: "trainer"; trainer: TrainerMember };

/**
 * Who takes part in a job: the compute, the parameter-server shards and the
 * trainers, with their sessions, and the trainers' heartbeats. Registration
 * is checked here (conflicts, the trainer cap and the rate of new ids); what
 * a join or a loss means for the job is the Job's to decide.
 */
export class Membership {
  compute: ComputeMember | null = null;
  private readonly trainers = new Map<string, TrainerMember>();
  private readonly shards = new Map<string, ShardMember>();
  private nextRank = 0;
  private readonly newTrainerIds: TokenBucket;
  /**
   * Registrations again of trainer ids that took part (opened a session): each replaces a token the shards are told
   * of, or comes back after a leave they were told of. All such ids together, so cycling them cannot flush the shards'
   * bounded lists of revoked tokens.
   */
  private readonly participantsAgain: TokenBucket;
  /** Per trainer id seen before, its registrations again: one id cycling is held up alone, not the others' restarts. */
  private readonly idAgain = new Map<string, TokenBucket>();
  private readonly refusalsLogged: TokenBucket;
  /** Refusals since the last one logged, which the rate left out. */
  private refusalsUnlogged = 0;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private orphanTimer: NodeJS.Timeout | null = null;

  /** Trainers' tokens, bound to their ranks; shards get the key to check pushes with. */
  readonly trainerTokens = new TrainerTokens();

  private readonly now: () => number;

  constructor(
    private readonly expected: { trainers: number; psShards: number },
    private readonly log: Logger,
    now: () => number = () => performance.now(),
  ) {
    this.newTrainerIds = new TokenBucket(NEW_TRAINER_BURST, NEW_TRAINER_PER_SECOND, now);
    this.participantsAgain = new TokenBucket(NEW_TRAINER_BURST, NEW_TRAINER_PER_SECOND, now);
    this.now = now;
    this.refusalsLogged = new TokenBucket(REFUSALS_LOGGED_BURST, REFUSALS_LOGGED_PER_SECOND, now);
  }

  /** A call for a worker refused (a wrong token, a second process for a connected worker): logged, at a bounded rate. */
  private refused(err: Error): Error {
    if (!this.refusalsLogged.take()) {
      this.refusalsUnlogged++;
      return err;
    }
    this.log.warn(this.refusalsUnlogged ? { notLoggedBefore: this.refusalsUnlogged } : {}, `refused: ${err.message}`);
    this.refusalsUnlogged = 0;
    return err;
  }

  /** `state` is the job's, `finished` whether it has ended. Returns the registration's worker token. */
  /** `error`: why the job failed, if it did (a worker refused for the job's end is told why it ended). */
  addCompute(workerId: string, address: string, source: SourceInfo__Output | null, state: JobState, finished: boolean, error = ""): string {
    if (!address) throw OrchestratorErrors.create("ORCH_ERR_BAD_REGISTRATION", `compute ${workerId} registered without an address`);
    if (!source || source.numDense < 1 || source.slotIds.length < 1) {
      throw OrchestratorErrors.create("ORCH_ERR_BAD_REGISTRATION", `compute ${workerId} registered without a usable source description (dense features and slots)`);
    }
    if (source.dataWarnings.length > MAX_DATA_WARNINGS || source.dataWarnings.some((w) => w.length > MAX_DATA_WARNING_CHARS)) {
      throw OrchestratorErrors.create("ORCH_ERR_BAD_REGISTRATION", `compute ${workerId} registered with ${source.dataWarnings.length} data warnings of up to ${Math.max(...source.dataWarnings.map((w) => w.length))} characters; at most ${MAX_DATA_WARNINGS} of ${MAX_DATA_WARNING_CHARS}`);
    }
    if (source.contentSample && !/^[0-9a-f]{32}$/.test(source.contentSample)) {
      throw OrchestratorErrors.create("ORCH_ERR_BAD_REGISTRATION", `compute ${workerId} registered with a content_sample that is not 32 lowercase hex digits (${source.contentSample.length} characters); expected those or none`);
    }
    try {
      parseFeatureInputs(source.featureInputs);
    } catch (err) {
      throw OrchestratorErrors.create("ORCH_ERR_BAD_REGISTRATION", `compute ${workerId} registered with ${(err as Error).message}`);
    }
    if (finished && state === "JOB_STATE_COMPLETED") {
      // A launcher (pangea run --resume, a restarted pod) starts compute beside an orchestrator that reports a completed job: welcome, with nothing to serve.
      this.log.info({ workerId, address }, "compute registered after the job completed; nothing to serve");
      this.compute = { workerId, token: newWorkerToken(), address, source, session: null };
      return this.compute.token;
    }
    if (finished) throw OrchestratorErrors.create("ORCH_ERR_JOB_NOT_RUNNING", `compute ${workerId} registered after the job ended (${state}${error ? `: ${error}` : ""})`);
    if (this.compute?.session && this.compute.workerId !== workerId) {
      // The registered compute is connected: a second one would send the trainers elsewhere mid-job.
      throw this.refused(OrchestratorErrors.create("ORCH_ERR_WORKER_CONFLICT", `compute ${workerId} refused: compute ${this.compute.workerId} is registered and connected`));
    }
    const prev = this.compute?.source;
    if (state !== "JOB_STATE_WAITING" && prev) {
      // A compute that comes back (restarted, maybe elsewhere) must serve the same data, or batch k would mean other records.
      const same = prev.numDense === source.numDense && prev.slotIds.join() === source.slotIds.join() && Number(prev.trainRecords) === Number(source.trainRecords) && Number(prev.evalRecords) === Number(source.evalRecords) && prev.description === source.description;
      if (!same) {
        throw OrchestratorErrors.create("ORCH_ERR_DATA_MISMATCH", `compute ${workerId} serves "${source.description}" (${source.trainRecords} train records), but the running job reads "${prev.description}" (${prev.trainRecords})`);
      }
      // The same names and counts, regenerated meanwhile: batch k would be other records than the job's batch k.
      if (samplesDiffer(prev.contentSample, source.contentSample)) {
        throw OrchestratorErrors.create("ORCH_ERR_DATA_MISMATCH", `compute ${workerId} serves "${source.description}" with other bytes than the running job started on (the same names and record counts: the files were written again); give it the job's files, or start a new job`);
      }
    }
    this.compute = { workerId, token: newWorkerToken(), address, source, session: null };
    this.log.info({ workerId, address, source: source.description }, "compute registered");
    return this.compute.token;
  }

  /** Returns the registration's worker token. */
  addShard(workerId: string, index: number, address: string, state: JobState): string {
    const n = this.expected.psShards;
    if (!address) throw OrchestratorErrors.create("ORCH_ERR_BAD_REGISTRATION", `parameter-server shard ${workerId} registered without an address`);
    if (!(index >= 1 && index < n)) {
      throw OrchestratorErrors.create("ORCH_ERR_BAD_REGISTRATION", `parameter-server shard ${workerId} has index ${index}; this job has shards 1..${n - 1} besides the orchestrator (--ps-shards ${n})`);
    }
    const taken = [...this.shards.values()].find((s) => s.index === index && s.workerId !== workerId);
    if (taken || state !== "JOB_STATE_WAITING") {
      throw OrchestratorErrors.create("ORCH_ERR_CLUSTER_FULL", `parameter-server shard ${workerId} refused: shard ${index} is ${taken ? `already ${taken.workerId}` : "taken by the running job"}`);
    }
    const connected = this.shards.get(workerId);
    if (connected?.session) {
      // Its process is connected: a second one under its id would take its place (and the push key), as with trainers.
      throw this.refused(OrchestratorErrors.create("ORCH_ERR_WORKER_CONFLICT", `parameter-server shard ${workerId} refused: a shard of that id is registered and connected (index ${connected.index})`));
    }
    const token = newWorkerToken();
    this.shards.set(workerId, { workerId, token, index, address, session: null });
    this.log.info({ workerId, index, address }, "parameter-server shard registered");
    return token;
  }

  /** A trainer joins: before the start, one of the expected ones; later, an extra pair of hands for the steps to come. */
  addTrainer(workerId: string, state: JobState, finished: boolean, worldSize: number, error = ""): { rank: number; worldSize: number; workerToken: string } {
    // First: a trainer of the job that was live when it ended and comes back (Docker restarting it after the job failed)
    // would otherwise get its place again, be told the job failed, exit 1 and be restarted again and again.
    if (finished) throw OrchestratorErrors.create("ORCH_ERR_JOB_NOT_RUNNING", `trainer ${workerId} refused: the job has ended (${state}${error ? `: ${error}` : ""})`);
    const existing = this.trainers.get(workerId);
    if (existing?.alive && existing.session) {
      // Its process is connected: a second process under the same id would take over its rank and batches.
      throw this.refused(OrchestratorErrors.create("ORCH_ERR_WORKER_CONFLICT", `trainer ${workerId} refused: a trainer of that id is registered and connected (rank ${existing.rank})`));
    }
    if (existing) this.takeRegistrationAgain(existing);
    if (existing?.alive) {
      // Its connection broke before its session was seen closed: the process registering now is the trainer, not the one
      // before. The shards hear of the token replaced only if it could have reached them: one that never opened a
      // session held no batch, and so no batch ticket.
      this.revokeToken(existing.token, existing.everAttached);
      existing.token = this.trainerTokens.issue(existing.rank);
      return { rank: existing.rank, worldSize, workerToken: existing.token };
    }
    if (state === "JOB_STATE_WAITING" && this.liveTrainers().length >= this.expected.trainers) {
      throw OrchestratorErrors.create("ORCH_ERR_CLUSTER_FULL", `trainer ${workerId} refused: the job expects ${this.expected.trainers} trainers and already has them`);
    }
    if (!existing) {
      // Only new ids count against the cap and the new ids' rate; a trainer seen before may always come back, at the
      // rates of takeRegistrationAgain.
      if (this.trainers.size >= MAX_TRAINER_IDS) throw OrchestratorErrors.create("ORCH_ERR_CLUSTER_FULL", `trainer ${workerId} refused: the job has seen ${MAX_TRAINER_IDS} trainers`);
      if (!this.newTrainerIds.take()) {
        throw OrchestratorErrors.create("ORCH_ERR_RATE_LIMITED", `trainer ${workerId} refused: more than ${NEW_TRAINER_BURST} new trainer ids in a burst (then ${NEW_TRAINER_PER_SECOND}/s); try again shortly`);
      }
    }
    // A returning trainer gets a fresh rank: ranks are never reused, so a late push from its old life is recognisable.
    const rank = this.nextRank++;
    const token = this.trainerTokens.issue(rank);
    this.trainers.set(workerId, { workerId, token, rank, session: null, backend: existing?.backend ?? "", alive: true, attached: false, everAttached: existing?.everAttached ?? false, lastBeat: Date.now(), batchesDone: 0, stepsDone: 0, lastStep: -1, streamingAuc: Number.NaN, taskStreamingAuc: [], phaseSeconds: existing?.phaseSeconds ?? {} });
    this.log.info({ workerId, rank, joining: state !== "JOB_STATE_WAITING" }, "trainer registered");
    return { rank, worldSize, workerToken: token };
  }

  /**
   * A trainer id seen before registers again (coming back, or replacing its token): at most ID_AGAIN_BURST times at
   * once then ID_AGAIN_PER_SECOND for the id, and, for one that took part, within the participants' shared rate.
   * Refused with ORCH_ERR_RATE_LIMITED beyond (the trainer asks again).
   */
  private takeRegistrationAgain(existing: TrainerMember): void {
    const id = existing.workerId;
    let own = this.idAgain.get(id);
    if (!own) this.idAgain.set(id, (own = new TokenBucket(ID_AGAIN_BURST, ID_AGAIN_PER_SECOND, this.now)));
    if (!own.take()) {
      throw OrchestratorErrors.create("ORCH_ERR_RATE_LIMITED", `trainer ${id} refused: it registered again more than ${ID_AGAIN_BURST} times in a burst (then ${ID_AGAIN_PER_SECOND}/s); try again shortly`);
    }
    if (existing.everAttached && !this.participantsAgain.take()) {
      throw OrchestratorErrors.create("ORCH_ERR_RATE_LIMITED", `trainer ${id} refused: trainers that took part registered again more than ${NEW_TRAINER_BURST} times in a burst (then ${NEW_TRAINER_PER_SECOND}/s); try again shortly`);
    }
  }

  /**
   * Gives a registered worker its session. Returns the member, or null when
   * the job has ended (the caller ends the sink); a compute's session is kept
   * even then, so its close is recognised.
   */
  attach(workerId: string, sink: SessionSink, finished: boolean): Member | null {
    // A second session under a worker whose session is open would take its place: the worker would no longer be told the
    // job's events, and the second one closing would count as the worker leaving. A worker whose connection broke opens its
    // new session once the old one is seen closed (its registration is refused until then, as here).
    const open = this.registered(workerId)?.member.session;
    if (open && open !== sink && !finished) {
      throw this.refused(OrchestratorErrors.create("ORCH_ERR_WORKER_CONFLICT", `a session for ${workerId} is open; a second one is refused (a restarted worker's is taken once the old connection is seen closed)`));
    }
    if (this.compute?.workerId === workerId) {
      this.compute.session = sink;
      return finished ? null : { kind: "compute", compute: this.compute };
    }
    const shard = this.shards.get(workerId);
    const trainer = this.trainers.get(workerId);
    if (!shard && !trainer) throw OrchestratorErrors.create("ORCH_ERR_UNKNOWN_WORKER", `session for unregistered worker ${workerId}; call RegisterWorker first`);
    if (!shard && !trainer!.alive) throw OrchestratorErrors.create("ORCH_ERR_NOT_A_MEMBER", `trainer ${workerId} was declared dead; register again`);
    if (finished) return null;
    if (shard) {
      shard.session = sink;
      return { kind: "shard", shard };
    }
    trainer!.session = sink;
    trainer!.attached = trainer!.everAttached = true;
    trainer!.lastBeat = Date.now();
    return { kind: "trainer", trainer: trainer! };
  }

  /** Takes a closed session off its worker; null unless it was that worker's current session. */
  detach(workerId: string, sink: SessionSink): Member | null {
    if (this.compute?.workerId === workerId && this.compute.session === sink) {
      this.compute.session = null;
      return { kind: "compute", compute: this.compute };
    }
    const shard = this.shards.get(workerId);
    if (shard && shard.session === sink) {
      shard.session = null;
      return { kind: "shard", shard };
    }
    const t = this.trainers.get(workerId);
    if (!t || t.session !== sink) return null;
    t.session = null;
    return { kind: "trainer", trainer: t };
  }

  /** A trainer leaves the job: its session is ended and it must register again. */
  declareDead(t: TrainerMember, tellShards = true): void {
    if (t.alive) this.revokeToken(t.token, tellShards);
    t.alive = false;
    const session = t.session;
    t.session = null;
    session?.end();
  }

  /**
   * A trainer's token is no longer good: compute closes its batch streams, and the shards (unless `shards` is false)
   * are told, and refuse its pushes from then on.
   */
  private revokeToken(token: string, shards = true): void {
    const event = { tokensRevoked: { nonces: [nonceOf(token)] } };
    if (shards) for (const s of this.shards.values()) s.session?.send(event);
    this.compute?.session?.send(event);
  }

  /** Ends every open session with `lastEvent`. */
  closeAll(lastEvent: WorkerEvent): void {
    const members: { session: SessionSink | null }[] = [...this.trainers.values(), ...this.shards.values(), ...(this.compute ? [this.compute] : [])];
    for (const m of members) {
      if (m.session) {
        m.session.send(lastEvent);
        m.session.end();
      }
      m.session = null;
    }
  }

  /** Records a trainer's heartbeat; false if it is not (or no longer) a member. */
  heartbeat(workerId: string, phaseSeconds?: Record<string, number>): boolean {
    // Checked whoever sends them: a bad heartbeat is INVALID_ARGUMENT with or without a session (it was OK without one).
    const phases = phaseSeconds ? checkedPhases(workerId, phaseSeconds) : undefined;
    const t = this.trainers.get(workerId);
    // A trainer heartbeats once its session has told it the job started: beats without one would keep a bare registration listed.
    if (!t?.alive || !t.attached) return false;
    t.lastBeat = Date.now();
    if (phases) t.phaseSeconds = phases;
    return true;
  }

  /**
   * From now on, a trainer silent for longer than `timeoutMs` is handed to `onSilent`. A registration whose session
   * never opened in that time is dropped instead: it held no batch and was never in a step's plan, so it is no
   * trainer lost (a bare RegisterWorker call must not fail an --on-trainer-loss fail job or pad the status).
   */
  watchHeartbeats(timeoutMs: number, onSilent: (t: TrainerMember, why: string) => void): void {
    for (const t of this.trainers.values()) t.lastBeat = Date.now();
    this.heartbeatTimer = watchTimer(Math.max(100, Math.min(1000, timeoutMs / 4)), (now, blocked) => {
      // Time this process could not run (its event loop blocked, or the machine stalled: every process of a CI run
      // fell silent for 26 s) is not the trainers': their heartbeats of that time wait unread in its sockets. Credited
      // to every trainer, as the stall timeout's clocks are paused, so none is declared dead for it.
      for (const t of this.trainers.values()) t.lastBeat += blocked;
      for (const t of [...this.trainers.values()]) {
        if (!t.alive || now - t.lastBeat <= timeoutMs) continue;
        const silent = `${((now - t.lastBeat) / 1000).toFixed(1)}s`;
        if (t.attached) onSilent(t, `sent no heartbeat for ${silent}`);
        else this.expire(t, silent);
      }
    });
  }

  /**
   * A registration that opened no session: a trainer that trained before is dead again, any other id forgotten. Its
   * token goes to compute only, which closes its batch streams (a bare registration's token would otherwise hold
   * --max-streams-per-rank of compute's places for good); the shards need not hear, as it was given no batch, so no
   * ticket their pushes need, and their bounded lists are kept for the tokens that held some.
   */
  private expire(t: TrainerMember, silent: string): void {
    this.revokeToken(t.token, false);
    if (t.everAttached) t.alive = false;
    else this.trainers.delete(t.workerId);
    this.log.warn({ workerId: t.workerId, rank: t.rank }, `trainer ${t.workerId} registered but opened no session within ${silent}; registration dropped`);
  }

  /** With no live trainer, calls `onOrphaned` if none has joined `ms` later. */
  watchForOrphans(ms: number, onOrphaned: () => void): void {
    if (this.liveTrainers().length > 0 || this.orphanTimer) return;
    this.orphanTimer = setTimeout(() => {
      this.orphanTimer = null;
      if (this.liveTrainers().length === 0) onOrphaned();
    }, ms);
    this.orphanTimer.unref();
  }

  /** A trainer joined: the job has hands again. */
  cancelOrphanWatch(): void {
    if (this.orphanTimer) {
      clearTimeout(this.orphanTimer);
      this.orphanTimer = null;
    }
  }

  stopWatching(): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.cancelOrphanWatch();
  }

  /** Live trainers with an open session, in rank order (the plan deals batches in this order). */
  liveTrainers(): string[] {
    return [...this.trainers.values()].filter((t) => t.alive && t.session).sort((a, b) => a.rank - b.rank).map((t) => t.workerId);
  }

  /** Trainers with an open session (alive or not). */
  connectedTrainers(): number {
    return [...this.trainers.values()].filter((t) => t.session).length;
  }

  connectedShards(): number {
    return [...this.shards.values()].filter((s) => s.session).length;
  }

  /** Whether the job can start: compute registered, the expected trainers and every shard connected. */
  ready(): boolean {
    if (!this.compute) return false;
    if (this.liveTrainers().length < this.expected.trainers) return false;
    return this.connectedShards() >= this.expected.psShards - 1;
  }

  trainer(workerId: string): TrainerMember | undefined {
    return this.trainers.get(workerId);
  }

  trainerOfRank(rank: number): TrainerMember | undefined {
    for (const t of this.trainers.values()) if (t.rank === rank) return t;
    return undefined;
  }

  /** Sessions a job event goes to: the shards' first, then the trainers'. */
  sessions(): SessionSink[] {
    return [...this.shards.values(), ...this.trainers.values()].flatMap((m) => (m.session ? [m.session] : []));
  }

  /** The other shards' open sessions, in index order. */
  shardSessions(): { index: number; session: SessionSink }[] {
    return [...this.shards.values()].sort((a, b) => a.index - b.index).flatMap((s) => (s.session ? [{ index: s.index, session: s.session }] : []));
  }

  shardIndexOf(workerId: string): number | undefined {
    return this.shards.get(workerId)?.index;
  }

  /** The other shards' addresses, in index order. */
  shardAddresses(): string[] {
    return [...this.shards.values()].sort((a, b) => a.index - b.index).map((s) => s.address);
  }

  /**
   * A call naming a registered worker must carry the token of the worker's current registration: a caller allowed to
   * act for the worker's role (a certificate shared by all trainers, or no TLS) cannot act for another worker of it,
   * nor can a process of an earlier registration of the same id. Unregistered ids are the callee's to refuse.
   */
  checkToken(workerId: string, token: string, call: string): void {
    const found = this.registered(workerId);
    if (!found) return;
    const { kind, member } = found;
    const expected = Buffer.from(member.token);
    const given = Buffer.from(token);
    if (given.length === expected.length && timingSafeEqual(given, expected)) return;
    const why = token ? `its worker_token is not that of ${workerId}'s current registration (a worker that registered again uses the new one)` : "it carries no worker_token (RegisterWorker's response gives it)";
    throw this.refused(OrchestratorErrors.create("ORCH_ERR_PERMISSION_DENIED", `${call} for ${kind} ${workerId} refused: ${why}`));
  }

  /** What kind of worker an id is registered as, if it is. */
  kindOf(workerId: string): WorkerKind | undefined {
    return this.registered(workerId)?.kind;
  }

  /** The worker registered under an id, and its kind, if any. */
  private registered(workerId: string): { kind: WorkerKind; member: ComputeMember | ShardMember | TrainerMember } | undefined {
    if (this.compute?.workerId === workerId) return { kind: "compute", member: this.compute };
    const shard = this.shards.get(workerId);
    if (shard) return { kind: "shard", member: shard };
    const trainer = this.trainers.get(workerId);
    return trainer ? { kind: "trainer", member: trainer } : undefined;
  }

  setBackend(workerId: string, backend: string): void {
    const t = this.trainers.get(workerId);
    if (!t) throw OrchestratorErrors.create("ORCH_ERR_UNKNOWN_WORKER", `unknown worker ${workerId}`);
    // The status repeats it to every reader: a name, not a document.
    if (!BACKEND_NAME.test(backend)) throw OrchestratorErrors.create("ORCH_ERR_BAD_REQUEST", `${workerId}: backend must be 1-${MAX_BACKEND_CHARS} printable ASCII characters without spaces, got ${backend.length} characters`);
    t.backend = backend;
  }

  /** A trainer's accepted batch, of `step`. */
  credit(t: TrainerMember, step: number, streamingAuc: number | undefined, taskStreamingAuc: readonly number[] = []): void {
    t.batchesDone++;
    if (step !== t.lastStep) {
      t.stepsDone++;
      t.lastStep = step;
    }
    if (streamingAuc !== undefined && Number.isFinite(streamingAuc)) t.streamingAuc = streamingAuc;
    taskStreamingAuc.forEach((auc, i) => {
      if (Number.isFinite(auc)) t.taskStreamingAuc[i] = auc;
    });
  }

  /** Per task (several tasks), the mean of the live trainers' latest streaming AUCs (NaN before any). */
  taskStreamingAuc(tasks: number): number[] {
    return Array.from({ length: tasks }, (_, i) => this.meanOfLive((t) => t.taskStreamingAuc[i] ?? Number.NaN));
  }

  /** Mean of the live trainers' latest streaming AUCs (NaN before any). */
  streamingAuc(): number {
    return this.meanOfLive((t) => t.streamingAuc);
  }

  /** The mean of a figure over the live trainers that have it (finite), NaN when none has. */
  private meanOfLive(figure: (t: TrainerMember) => number): number {
    const xs = [...this.trainers.values()].filter((t) => t.alive).map(figure).filter(Number.isFinite);
    return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN;
  }

  /** The trainers' reported compute backends, each once. */
  backends(): string[] {
    return [...new Set([...this.trainers.values()].map((t) => t.backend).filter(Boolean))];
  }

  /** Every worker's line in the job status; `waiting`: whether the job has not started. */
  workerStatuses(waiting: boolean): WorkerStatus[] {
    const now = Date.now();
    const workers: WorkerStatus[] = [...this.trainers.values()].map((t) => ({
      workerId: t.workerId,
      kind: "WORKER_KIND_TRAINER",
      rank: t.rank,
      connected: t.session !== null,
      stepsDone: t.stepsDone,
      batchesDone: t.batchesDone,
      heartbeatAgeSeconds: (now - t.lastBeat) / 1000,
      phaseSeconds: t.phaseSeconds,
      alive: t.alive,
    }));
    // Compute and shards have no heartbeat: they are alive while their session is open.
    if (this.compute) {
      const open = this.compute.session !== null;
      workers.push({ workerId: this.compute.workerId, kind: "WORKER_KIND_COMPUTE", address: this.compute.address, connected: open || waiting, alive: open });
    }
    for (const s of this.shards.values()) workers.push({ workerId: s.workerId, kind: "WORKER_KIND_PS_SHARD", rank: s.index, address: s.address, connected: s.session !== null, alive: s.session !== null });
    return workers;
  }
}
