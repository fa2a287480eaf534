import type { FastifyInstance } from "@pangea/observe";
import type { JobStatus } from "@pangea/schema";
import type { Job } from "../job/job.js";
import { dashboardPage } from "./dashboard-page.js";
import { ProgressHistory, type ProgressPoint } from "./progress-history.js";
import { addUplotAssets } from "./uplot-assets.js";

/** What one dashboard update carries: the job's status plus the history the curves are drawn from. */
export interface DashboardUpdate {
  /** When the update was made (milliseconds since the epoch). */
  at: number;
  status: JobStatus;
  points: readonly ProgressPoint[];
  /** Samples per batch: turns a trainer's batches and phase seconds into its samples/s. */
  batchSize: number;
  /**
   * ignored: pushes serving acknowledged without applying them (not newer than one it had from this run);
   * failing: why the last push to a replica failed, while one still fails.
   */
  serving: { version: number; lagSeconds: number; rowsSent: number; ignored: number; failing: string | null } | null;
}

/**
 * The live training dashboard: GET / is a page with the current update
 * embedded (so it shows the job before any event arrives) that then follows
 * GET /events, a server-sent-events stream with an update once a second. It
 * draws loss, streaming AUC and throughput charts (uPlot, served from the
 * installed package under /assets/), the workers, where each trainer's time
 * goes, the embedding tables and the serving version, without reloading.
 */
export function addDashboard(app: FastifyInstance, job: Job): () => void {
  const history = new ProgressHistory();
  const sample = () => {
    const s = job.status();
    history.record(s);
    return s;
  };
  const update = (): DashboardUpdate => {
    const status = sample();
    const sync = job.syncState();
    return {
      at: Date.now(),
      status,
      points: history.points(),
      batchSize: job.config.batchSize,
      serving: sync ? { version: sync.servingVersion, lagSeconds: sync.lastAckAt ? (Date.now() - sync.lastAckAt) / 1000 : -1, rowsSent: sync.rowsSent, ignored: sync.ignored, failing: sync.failing } : null,
    };
  };
  const timer = setInterval(sample, 500);
  timer.unref();
  addUplotAssets(app);
  app.get("/", async (_req, reply) => reply.type("text/html; charset=utf-8").header("cache-control", "no-store").send(dashboardPage(update())));
  app.get("/status.json", async () => update());
  app.get("/events", (req, reply) => {
    reply.raw.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
    const send = () => reply.raw.write(`data: ${JSON.stringify(update())}\n\n`);
    send();
    const every = setInterval(send, 1000);
    req.raw.on("close", () => clearInterval(every));
  });
  return () => clearInterval(timer);
}
