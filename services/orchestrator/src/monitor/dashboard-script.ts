/**
 * The dashboard page's script. It renders one update (the job status, the
 * curves' points and the serving sync) and is called first with the update
 * embedded in the page, then with each server-sent event.
 *
 * Everything it shows is built as DOM nodes with textContent: worker ids,
 * errors and slot names come from peers and must never be parsed as HTML.
 */
export const DASHBOARD_SCRIPT = String.raw`
const $ = (id) => document.getElementById(id);
function el(tag, text, cls) {
  const n = document.createElement(tag);
  if (text !== undefined) n.textContent = String(text);
  if (cls) n.className = cls;
  return n;
}
// A table row; a cell is text, or a node (a bar) placed as it is.
function row(cells, tag, cls) {
  const tr = el("tr", undefined, cls);
  for (const c of cells) {
    const td = el(tag || "td", c instanceof Node ? undefined : c);
    if (c instanceof Node) td.appendChild(c);
    tr.appendChild(td);
  }
  return tr;
}

// Numbers people read: 59,470 in figures and hover values, 59.5k on axes.
const wholeFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
function whole(v) {
  return v == null || !Number.isFinite(Number(v)) ? "–" : wholeFormat.format(Number(v));
}
function compact(v) {
  if (v == null || !Number.isFinite(v)) return "–";
  const a = Math.abs(v);
  for (const [d, suffix] of [[1e9, "G"], [1e6, "M"], [1e3, "k"]]) if (a >= d) return +(v / d).toFixed(a >= 100 * d ? 0 : 1) + suffix;
  return String(+v.toPrecision(3));
}
const fixed = (digits, unit) => (u, v) => (v == null ? "–" : v.toFixed(digits) + (unit ? " " + unit : ""));
const compactTicks = (u, ticks) => ticks.map(compact);

// Throughput over this window, from the differences of the samples counter.
const RATE_WINDOW_MS = 5000;
function recentRates(points) {
  const out = [];
  let j = 0;
  for (let i = 0; i < points.length; i++) {
    while (points[i].t - points[j].t > RATE_WINDOW_MS) j++;
    // Thinned old points can be further apart than the window: use the one before.
    const from = j === i && i > 0 ? i - 1 : j;
    const dt = (points[i].t - points[from].t) / 1000;
    out.push(dt > 0 ? (points[i].samples - points[from].samples) / dt : null);
  }
  return out;
}

// Several tasks: a curve per task on the loss and AUC charts, in these colours (the first is the total loss's).
const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#ea580c", "#0891b2", "#ca8a04", "#db2777", "#4f46e5"];
const finite = (v) => (Number.isFinite(v) ? v : null);
const taskCurve = (ps, i, key) => ps.map((p) => (p.tasks && p.tasks[i] ? finite(p.tasks[i][key]) : null));
// The tasks with curves: none for one task (the job's own curves are its), else every task, and for AUC the binary ones.
function curveTasks(s) {
  return s.tasks && s.tasks.length > 1 ? s.tasks.map((t, i) => ({ name: t.name, loss: t.loss, i })) : [];
}

const STEP_AXIS = { label: "training step", values: compactTicks };
const STEP_SERIES = { label: "step", value: (u, v) => whole(v) };
// A regression (mse) task's loss is a squared error, not nats: its curves get their own axis, on the right.
const LOSS_AXIS = { label: "log loss (nats per sample)", size: 60 };
const SQUARED_AXIS = { label: "squared error (per sample)", size: 60 };
const CHARTS = {
  "loss-chart": {
    scales: { x: { time: false } },
    axes: (tasks, losses) => {
      const mse = losses.filter((l) => l === "mse").length;
      if (mse === losses.length) return [STEP_AXIS, SQUARED_AXIS];
      return mse ? [STEP_AXIS, LOSS_AXIS, { ...SQUARED_AXIS, scale: "se", side: 1, grid: { show: false } }] : [STEP_AXIS, LOSS_AXIS];
    },
    series: (tasks, losses) => {
      const mse = losses.filter((l) => l === "mse").length;
      const mixed = mse > 0 && mse < losses.length;
      const total = !tasks.length ? "smoothed loss" : mixed ? "smoothed loss (weighted sum, mixed units)" : "smoothed loss (weighted sum)";
      return [
        STEP_SERIES,
        { label: total, stroke: PALETTE[0], width: 2, value: fixed(4, mse ? "" : "nats") },
        ...tasks.map((t, k) => ({ label: t.name, stroke: PALETTE[(k + 1) % PALETTE.length], width: 1.5, spanGaps: true, value: fixed(4), ...(mixed && t.loss === "mse" ? { scale: "se" } : {}) })),
      ];
    },
    data: (ps, tasks) => [ps.map((p) => p.step), ps.map((p) => p.loss), ...tasks.map((t) => taskCurve(ps, t.i, "loss"))],
  },
  "auc-chart": {
    scales: { x: { time: false } },
    axes: [STEP_AXIS, { label: "AUC (0.5 = chance)", size: 60 }],
    series: (tasks) => {
      const binary = tasks.filter((t) => t.loss === "bce");
      if (!binary.length) return [STEP_SERIES, { label: "streaming AUC", stroke: "#9333ea", width: 2, spanGaps: true, value: fixed(4) }];
      return [STEP_SERIES, ...binary.map((t) => ({ label: t.name, stroke: PALETTE[(t.i + 1) % PALETTE.length], width: 2, spanGaps: true, value: fixed(4) }))];
    },
    data: (ps, tasks) => {
      const binary = tasks.filter((t) => t.loss === "bce");
      if (!binary.length) return [ps.map((p) => p.step), ps.map((p) => finite(p.auc))];
      return [ps.map((p) => p.step), ...binary.map((t) => taskCurve(ps, t.i, "auc"))];
    },
  },
  "rate-chart": {
    axes: [{ label: "time (local clock)" }, { label: "samples per second", values: compactTicks, size: 60 }],
    series: () => [
      { label: "time", value: (u, v) => (v == null ? "–" : new Date(v * 1000).toLocaleTimeString()) },
      { label: "last 5 s", stroke: "#16a34a", width: 2, value: (u, v) => whole(v) + " samples/s" },
      { label: "since start", stroke: "#64748b", width: 1.5, dash: [6, 4], value: (u, v) => whole(v) + " samples/s" },
    ],
    data: (ps) => [ps.map((p) => p.t / 1000), recentRates(ps), ps.map((p) => p.samplesPerSecond)],
  },
};
const CHART_HEIGHT = 240;
const charts = {};
function drawChart(id, points, tasks, losses) {
  const box = $(id);
  const spec = CHARTS[id];
  const data = spec.data(points, tasks);
  box.dataset.points = String(points.length);
  // Without uPlot (its script failed to load) the figures and tables still update.
  if (typeof uPlot === "undefined") return;
  // The tasks are known once the job starts: a chart drawn before then is drawn again with their curves.
  const key = tasks.map((t) => t.name).join("\n") + "|" + losses.join();
  if (charts[id] && charts[id].tasksKey !== key) {
    charts[id].destroy();
    delete charts[id];
  }
  if (charts[id]) charts[id].setData(data);
  else {
    const series = spec.series(tasks, losses).map((s, i) => (i ? { points: { show: false }, ...s } : s));
    const axes = typeof spec.axes === "function" ? spec.axes(tasks, losses) : spec.axes;
    charts[id] = new uPlot({ width: box.clientWidth || 460, height: CHART_HEIGHT, scales: spec.scales, axes, series, hooks: { draw: [latestInLegend] } }, data, box);
    charts[id].tasksKey = key;
  }
}

// One row per task: its training figures, then its held-out metrics once evaluated.
const four = (v) => (v == null || !Number.isFinite(Number(v)) ? "–" : Number(v).toFixed(4));
function renderTasks(s) {
  const tasks = s.tasks || [];
  // During training, the latest --eval-every-steps evaluation's figures (the AUC tile names its step); after it, the final one's.
  const evals = s.evaluations || [];
  const interim = evals.length ? evals[evals.length - 1].tasks || [] : [];
  const head = row(["task", "loss", "weight", "train loss (smoothed)", "streaming AUC", "held-out AUC (ground truth)", "log loss", "GAUC (groups)", "calibration", "RMSE"], "th");
  $("tasks").replaceChildren(head, ...tasks.map((t) => {
    const e = t.eval || interim.find((x) => x.name === t.name);
    const bce = t.loss === "bce";
    const truth = t.hasGroundTruth && Number.isFinite(t.groundTruthAuc) ? " (" + four(t.groundTruthAuc) + ")" : "";
    return row([
      t.name, t.loss, t.weight, four(t.smoothedLoss), bce ? four(t.streamingAuc) : "–",
      e && bce ? four(e.auc) + truth : "–",
      e && bce ? four(e.logloss) : "–",
      e && e.hasGauc ? four(e.gauc) + " (" + whole(e.gaucGroups) + ")" : "–",
      e ? four(e.calibration) : "–",
      e && !bce ? four(e.rmse) : "–",
    ]);
  }));
}
// Away from the cursor, the legend shows the latest values rather than dashes.
function latestInLegend(u) {
  if (u.cursor.left < 0 && u.data[0].length) u.setLegend({ idx: u.data[0].length - 1 });
}
window.addEventListener("resize", () => {
  for (const id in charts) charts[id].setSize({ width: $(id).clientWidth, height: CHART_HEIGHT });
});

const isTrainer = (w) => w.kind === "WORKER_KIND_TRAINER";
const ENDED = new Set(["JOB_STATE_COMPLETED", "JOB_STATE_FAILED"]);
// A worker that left is marked gone with the reason, instead of a heartbeat age that keeps growing.
function presence(w, s) {
  const ended = ENDED.has(s.state);
  if (isTrainer(w)) {
    if (w.alive === false) return { gone: true, text: "gone (declared dead)" };
    if (ended) return { gone: true, text: "gone (job ended)" };
    if (w.connected === false && s.state !== "JOB_STATE_WAITING") return { gone: true, text: "gone (disconnected)" };
    return { gone: false, text: "heartbeat " + Number(w.heartbeatAgeSeconds).toFixed(1) + " s ago" };
  }
  if (w.alive) return { gone: false, text: "connected" };
  if (s.state === "JOB_STATE_WAITING") return { gone: false, text: "waiting" };
  return { gone: true, text: ended ? "gone (job ended)" : "gone (disconnected)" };
}

// The phases a trainer reports, grouped into where its time goes.
const PHASES = [
  ["fetch", "communication", "batch from compute"],
  ["pull", "communication", "parameters from the servers"],
  ["push", "communication", "gradients to the servers"],
  ["compute", "compute", "forward and backward"],
  ["wait", "waiting", "for the step barrier"],
];
const GROUPS = ["compute", "communication", "waiting"];
function share(seconds, total) {
  return total > 0 ? seconds.toFixed(1) + " s (" + Math.round((100 * seconds) / total) + "%)" : "–";
}
function phaseBar(seconds, total) {
  const bar = el("div", undefined, "bar");
  PHASES.forEach(([p], i) => {
    const part = el("span", undefined, "phase-" + p);
    part.style.width = total > 0 ? ((100 * seconds[i]) / total).toFixed(2) + "%" : "0";
    part.title = p + ": " + seconds[i].toFixed(1) + " s";
    bar.appendChild(part);
  });
  return bar;
}
function renderPhases(s, batchSize) {
  const trainers = s.workers.filter(isTrainer);
  if (!trainers.length) {
    $("phases").replaceChildren(row(["no trainers yet"], "td", "empty"));
    return;
  }
  const head = row(["trainer", "samples/s", ...GROUPS, "fetch · pull · push · compute · wait"], "th");
  $("phases").replaceChildren(head, ...trainers.map((w) => {
    const reported = w.phaseSeconds || {};
    const seconds = PHASES.map(([p]) => Math.max(0, Number(reported[p]) || 0));
    const total = seconds.reduce((a, b) => a + b, 0);
    const groups = GROUPS.map((g) => seconds.reduce((a, v, i) => a + (PHASES[i][1] === g ? v : 0), 0));
    // The trainer's average: the batches the orchestrator received from it over the seconds it has reported.
    const rate = total > 0 && batchSize > 0 ? (Number(w.batchesDone) * batchSize) / total : NaN;
    const p = presence(w, s);
    return row([w.workerId + (p.gone ? " (gone)" : ""), whole(rate), ...groups.map((g) => share(g, total)), phaseBar(seconds, total)], "td", p.gone ? "gone" : "");
  }));
}
function phaseLegend() {
  const legend = $("phase-legend");
  for (const [p, group, what] of PHASES) {
    const item = el("span", undefined, "legend-item");
    item.append(el("span", undefined, "swatch phase-" + p), p + " (" + group + ": " + what + ")");
    legend.appendChild(item);
  }
}

function render(u) {
  const s = u.status;
  $("job").textContent = s.jobId;
  $("state").textContent = s.state.replace("JOB_STATE_", "").toLowerCase() + (s.error ? " — " + s.error : "");
  $("updated").textContent = new Date(u.at || Date.now()).toLocaleTimeString();
  $("step").textContent = whole(s.step) + " / " + whole(s.steps);
  $("loss").textContent = Number.isFinite(s.smoothedLoss) ? s.smoothedLoss.toFixed(4) : "–";
  $("rate").textContent = whole(s.samplesPerSecond);
  // The job status's rate is since this run's start: after a resume, since the resume.
  $("rate-since").textContent = Number(s.resumedFromStep) > 0 ? "since the resume" : "since start";
  // The latest held-out evaluation: during training (--eval-every-steps) with its step, then the final one.
  const evals = s.evaluations || [];
  const latest = evals.length ? evals[evals.length - 1] : s.eval;
  $("auc").textContent = latest ? four(latest.auc) + (s.eval ? "" : " (step " + latest.step + ")") : "after training";
  $("streaming-auc").textContent = Number.isFinite(s.streamingAuc) ? s.streamingAuc.toFixed(4) : "–";
  $("mode").textContent = s.mode || "sync";
  $("serving").textContent = u.serving ? (u.serving.version ? "v" + u.serving.version + " (sync " + (u.serving.lagSeconds >= 0 ? u.serving.lagSeconds.toFixed(1) + " s ago" : "pending") + ")" : u.serving.failing ? "sync failing" : "sync pending") + (u.serving.version && u.serving.failing ? ", failing" : "") : "no sync";
  // Why pushes fail, on hovering: the reason is too long for the tile.
  $("serving").title = u.serving && u.serving.failing ? u.serving.failing : "";
  const tasks = curveTasks(s);
  // Every task's loss kind, one task included (a single regression task's loss is a squared error too).
  const losses = s.tasks && s.tasks.length ? s.tasks.map((t) => t.loss) : ["bce"];
  for (const id in CHARTS) drawChart(id, u.points, tasks, losses);
  renderTasks(s);
  $("workers").replaceChildren(row(["worker", "kind", "rank", "batches", "status"], "th"), ...s.workers.map((w) => {
    const p = presence(w, s);
    return row([w.workerId, String(w.kind).replace("WORKER_KIND_", "").toLowerCase(), w.rank ?? "", w.batchesDone ?? "", p.text], "td", p.gone ? "gone" : "");
  }));
  renderPhases(s, Number(u.batchSize));
  const e = s.embeddings;
  if (!e) { $("tables").replaceChildren(document.createTextNode("no tables yet")); return; }
  const table = el("table");
  table.append(row(["slot", "rows", "evicted"], "th"), ...e.slots.map((t) => row([t.slot, whole(t.rows), t.evictedRows])));
  $("tables").replaceChildren(el("div", whole(e.rows) + " rows, " + (Number(e.bytes) / 1e6).toFixed(1) + " MB, " + e.evictedRows + " evicted, " + e.admittedIds + " admitted"), table);
}

phaseLegend();
// First paint: the update the page was served with, so it never waits for the stream.
render(JSON.parse($("initial-update").textContent));
$("link").textContent = "connecting to live updates…";
const events = new EventSource("events");
events.onopen = () => { $("link").textContent = "live"; };
events.onmessage = (m) => render(JSON.parse(m.data));
events.onerror = () => { $("link").textContent = "disconnected; retrying…"; };
`;
