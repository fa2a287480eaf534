import type { Logger } from "@pangea/kit";
import { ParameterSyncPusher, type SyncSource } from "./parameter-sync.js";

export interface ServingSyncSettings {
  targets: readonly string[];
  intervalMs: number;
  denseIntervalMs: number;
  /** The sender name on each push ("orchestrator", "ps-shard-<i>"). */
  sender: string;
  /** modelIdentity() of the job's model: serving refuses pushes for another model. */
  model: string;
  /** Serving's API token (--serving-sync-token-file), sent as a bearer token on each push. */
  token?: string;
  /** --serving-sync discovery: the replicas etcd lists, read before each push (`targets` is then empty). */
  listReplicas?: () => Promise<readonly string[]>;
}

/**
 * Parameter sync over a training run: pushes start with training, end with
 * one final push (every change and the dense weights at once, not at the
 * next interval) when training is over, and stop at once if the job ends
 * another way. The pusher's figures stay readable after it has stopped.
 */
export class ServingSync {
  private pusher: ParameterSyncPusher | null = null;
  private figures: ParameterSyncPusher | null = null;

  constructor(private readonly log: Logger) {}

  /** `rowsSentBefore`: rows a resumed job had pushed before, counted on from there. */
  start(s: ServingSyncSettings, source: SyncSource, rowsSentBefore = 0): void {
    const pusher = new ParameterSyncPusher(s.targets, source, s.intervalMs, s.denseIntervalMs, s.sender, s.model, this.log, s.token, Date.now, s.listReplicas ?? null);
    pusher.rowsSent = rowsSentBefore;
    pusher.start();
    this.pusher = pusher;
    this.figures = pusher;
  }

  /** Training is over: the final push, then the pusher stops. */
  finishTraining(): void {
    const pusher = this.pusher;
    this.pusher = null;
    if (pusher) void pusher.push(true).finally(() => pusher.stop());
  }

  stop(): void {
    this.pusher?.stop();
    this.pusher = null;
  }

  /** Rows pushed so far, or `fallback` if this run never synced. */
  rowsSent(fallback: number): number {
    return this.figures?.rowsSent ?? fallback;
  }

  /** The figures the status and metrics show (null without --serving-sync). */
  state(): { lastAckAt: number; servingVersion: number; rowsSent: number; ignored: number; failing: string | null } | null {
    const p = this.figures;
    return p ? { lastAckAt: p.lastAckAt, servingVersion: p.servingVersion, rowsSent: p.rowsSent, ignored: p.ignored, failing: p.failing } : null;
  }
}
