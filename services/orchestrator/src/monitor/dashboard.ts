import type { FastifyInstance } from "@pangea/observe";
import type { JobStatus } from "@pangea/schema";
import type { Job } from "../job/job.js";

interface Point {
  t: number;
  step: number;
  loss: number;
  samplesPerSecond: number;
  /** Streaming AUC (NaN until trainers report it). */
  auc: number;
}

/** What one dashboard update carries: the job's status plus the history the curves are drawn from. */
export interface DashboardUpdate {
  status: JobStatus;
  points: Point[];
  serving: { version: number; lagSeconds: number; rowsSent: number } | null;
}

/**
 * The live training dashboard: GET / is a self-contained page (no external
 * scripts) that opens GET /events, a server-sent-events stream with the job's
 * status once a second, and draws loss and throughput curves, the workers,
 * the embedding tables and the serving version without reloading.
 */
export function addDashboard(app: FastifyInstance, job: Job): () => void {
  const points: Point[] = [];
  let lastStep = -1;
  const sample = () => {
    const s = job.status();
    const step = Number(s.step);
    const loss = Number(s.smoothedLoss);
    if (step !== lastStep && Number.isFinite(loss)) {
      lastStep = step;
      points.push({ t: Date.now(), step, loss, samplesPerSecond: Number(s.samplesPerSecond), auc: Number(s.streamingAuc) });
      // Keep the curve bounded: thin out every other old point.
      if (points.length > 2000) for (let i = 1; i < 1000; i++) points.splice(i, 1);
    }
    return s;
  };
  const update = (): DashboardUpdate => {
    const status = sample();
    const sync = job.syncState();
    return { status, points, serving: sync ? { version: sync.servingVersion, lagSeconds: sync.lastAckAt ? (Date.now() - sync.lastAckAt) / 1000 : -1, rowsSent: sync.rowsSent } : null };
  };
  const timer = setInterval(sample, 500);
  timer.unref();
  app.get("/", async (_req: unknown, reply: { type(t: string): { send(b: string): unknown } }) => reply.type("text/html; charset=utf-8").send(PAGE));
  app.get("/status.json", async () => update());
  app.get("/events", (req: { raw: NodeJS.EventEmitter }, reply: { raw: import("node:http").ServerResponse }) => {
    reply.raw.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
    const send = () => reply.raw.write(`data: ${JSON.stringify(update())}\n\n`);
    send();
    const every = setInterval(send, 1000);
    req.raw.on("close", () => clearInterval(every));
  });
  return () => clearInterval(timer);
}

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Pangea — training</title>
<style>
body{font:14px system-ui,sans-serif;margin:24px;color:#1d2430;background:#f6f7f9}
h1{font-size:20px;margin:0 0 4px}
.sub{color:#667;margin-bottom:16px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:16px}
.card{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:12px 16px}
.card h2{font-size:14px;margin:0 0 8px;color:#445}
.kpis{display:flex;gap:24px;flex-wrap:wrap}
.kpi b{display:block;font-size:22px}
svg{width:100%;height:180px}
table{border-collapse:collapse;width:100%}
td,th{text-align:left;padding:3px 6px;border-bottom:1px solid #eef}
.dead{color:#b00}
</style></head>
<body>
<h1>Pangea training job <span id="job"></span></h1>
<div class="sub"><span id="state">connecting…</span> · updated <span id="updated">never</span></div>
<div class="card kpis">
  <div class="kpi">step<b id="step">–</b></div>
  <div class="kpi">loss (smoothed)<b id="loss">–</b></div>
  <div class="kpi">samples/s<b id="rate">–</b></div>
  <div class="kpi">streaming AUC<b id="streaming-auc">–</b></div>
  <div class="kpi">held-out AUC<b id="auc">–</b></div>
  <div class="kpi">mode<b id="mode">–</b></div>
  <div class="kpi">serving version<b id="serving">–</b></div>
</div>
<div class="grid" style="margin-top:16px">
  <div class="card"><h2>Training loss</h2><svg id="loss-chart" data-points="0" viewBox="0 0 400 180" preserveAspectRatio="none"></svg></div>
  <div class="card"><h2>Streaming AUC (batches scored before their update)</h2><svg id="auc-chart" data-points="0" viewBox="0 0 400 180" preserveAspectRatio="none"></svg></div>
  <div class="card"><h2>Throughput (samples/s)</h2><svg id="rate-chart" data-points="0" viewBox="0 0 400 180" preserveAspectRatio="none"></svg></div>
  <div class="card"><h2>Workers</h2><table id="workers"></table></div>
  <div class="card"><h2>Embedding tables</h2><div id="tables"></div></div>
</div>
<script>
const $ = (id) => document.getElementById(id);
// Everything below builds DOM nodes and sets textContent: worker ids, errors
// and slot names come from peers and must never be parsed as HTML.
function el(tag, text, cls) {
  const n = document.createElement(tag);
  if (text !== undefined) n.textContent = String(text);
  if (cls) n.className = cls;
  return n;
}
function row(cells, tag, cls) {
  const tr = el("tr", undefined, cls);
  for (const c of cells) tr.appendChild(el(tag || "td", c));
  return tr;
}
const SVG = "http://www.w3.org/2000/svg";
function svgEl(tag, attrs, text) {
  const n = document.createElementNS(SVG, tag);
  for (const k in attrs) n.setAttribute(k, String(attrs[k]));
  if (text !== undefined) n.textContent = String(text);
  return n;
}
function line(svg, xs, ys) {
  svg.dataset.points = String(xs.length);
  if (xs.length < 2) { svg.replaceChildren(); return; }
  const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  const sx = (x) => ((x - x0) / (x1 - x0 || 1)) * 390 + 5, sy = (y) => 175 - ((y - y0) / (y1 - y0 || 1)) * 165;
  const d = xs.map((x, i) => (i ? "L" : "M") + sx(Number(x)).toFixed(1) + " " + sy(Number(ys[i])).toFixed(1)).join(" ");
  svg.replaceChildren(
    svgEl("path", { d, fill: "none", stroke: "#2563eb", "stroke-width": 2, "vector-effect": "non-scaling-stroke" }),
    svgEl("text", { x: 6, y: 14, "font-size": 11, fill: "#667" }, Number(y1).toPrecision(4)),
    svgEl("text", { x: 6, y: 176, "font-size": 11, fill: "#667" }, Number(y0).toPrecision(4)));
}
function render(u) {
  const s = u.status;
  $("job").textContent = s.jobId;
  $("state").textContent = s.state.replace("JOB_STATE_", "").toLowerCase() + (s.error ? " — " + s.error : "");
  $("updated").textContent = new Date().toLocaleTimeString();
  $("step").textContent = s.step + " / " + s.steps;
  $("loss").textContent = Number.isFinite(s.smoothedLoss) ? s.smoothedLoss.toFixed(4) : "–";
  $("rate").textContent = Math.round(s.samplesPerSecond).toLocaleString();
  $("auc").textContent = s.eval ? s.eval.auc.toFixed(4) : "after training";
  $("streaming-auc").textContent = Number.isFinite(s.streamingAuc) ? s.streamingAuc.toFixed(4) : "–";
  $("mode").textContent = s.mode || "sync";
  $("serving").textContent = u.serving ? (u.serving.version ? "v" + u.serving.version + " (sync " + (u.serving.lagSeconds >= 0 ? u.serving.lagSeconds.toFixed(1) + " s ago" : "pending") + ")" : "sync pending") : "no sync";
  line($("loss-chart"), u.points.map((p) => p.step), u.points.map((p) => p.loss));
  line($("rate-chart"), u.points.map((p) => p.step), u.points.map((p) => p.samplesPerSecond));
  const withAuc = u.points.filter((p) => Number.isFinite(p.auc));
  line($("auc-chart"), withAuc.map((p) => p.step), withAuc.map((p) => p.auc));
  const isTrainer = (w) => w.kind === "WORKER_KIND_TRAINER";
  $("workers").replaceChildren(row(["worker", "kind", "rank", "batches", "heartbeat"], "th"), ...s.workers.map((w) =>
    row([w.workerId, String(w.kind).replace("WORKER_KIND_", "").toLowerCase(), w.rank ?? "", w.batchesDone ?? "",
      isTrainer(w) ? (w.alive ? Number(w.heartbeatAgeSeconds).toFixed(1) + " s ago" : "dead") : ""], "td", isTrainer(w) && !w.alive ? "dead" : "")));
  const e = s.embeddings;
  if (!e) { $("tables").replaceChildren(document.createTextNode("no tables yet")); return; }
  const table = el("table");
  table.append(row(["slot", "rows", "evicted"], "th"), ...e.slots.map((t) => row([t.slot, Number(t.rows).toLocaleString(), t.evictedRows])));
  $("tables").replaceChildren(el("div", Number(e.rows).toLocaleString() + " rows, " + (Number(e.bytes) / 1e6).toFixed(1) + " MB, " + e.evictedRows + " evicted, " + e.admittedIds + " admitted"), table);
}
const events = new EventSource("events");
events.onmessage = (m) => render(JSON.parse(m.data));
events.onerror = () => { $("state").textContent = "disconnected; retrying…"; };
</script></body></html>`;
