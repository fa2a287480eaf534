import { DASHBOARD_SCRIPT } from "./dashboard-script.js";
import { UPLOT_SCRIPT, UPLOT_STYLE } from "./uplot-assets.js";

/**
 * JSON that is safe inside a <script> element: with every `<` escaped, no
 * peer text (an error, a slot name) can close the element or open a comment
 * that changes how the HTML parser reads the rest of the page.
 */
export function scriptSafeJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, "\\u003c");
}

/**
 * The dashboard page with `initial` (the current update) embedded, so the
 * first paint already shows the job: the event stream only keeps it current.
 */
export function dashboardPage(initial: unknown): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Pangea — training</title>
<link rel="stylesheet" href="${UPLOT_STYLE}">
<script src="${UPLOT_SCRIPT}"></script>
<style>
body{font:14px system-ui,sans-serif;margin:24px;color:#1d2430;background:#f6f7f9}
h1{font-size:20px;margin:0 0 4px}
.sub{color:#667;margin-bottom:16px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:16px}
.card{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:12px 16px;min-width:0}
.card h2{font-size:14px;margin:0 0 8px;color:#445}
.wide{grid-column:1/-1}
.kpis{display:flex;gap:24px;flex-wrap:wrap}
.kpi b{display:block;font-size:22px}
.chart{min-height:250px}
.empty{color:#889;font-style:italic}
table{border-collapse:collapse;width:100%}
td,th{text-align:left;padding:3px 6px;border-bottom:1px solid #eef}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.gone{color:#b00}
.gone td:first-child{text-decoration:line-through}
.bar{display:flex;height:14px;min-width:160px;background:#eef;border-radius:3px;overflow:hidden}
.bar span{display:block;height:100%}
.legend-item{white-space:nowrap;display:inline-block;margin-bottom:4px}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin:0 4px 0 12px}
.phase-fetch{background:#93c5fd}.phase-pull{background:#3b82f6}.phase-push{background:#1e40af}
.phase-compute{background:#16a34a}.phase-wait{background:#d1d5db}
</style></head>
<body>
<h1>Pangea training job <span id="job"></span></h1>
<div class="sub"><span id="state"></span> · <span id="link">live</span> · updated <span id="updated"></span></div>
<div class="card kpis">
  <div class="kpi">step<b id="step">–</b></div>
  <div class="kpi">loss (smoothed)<b id="loss">–</b></div>
  <div class="kpi">samples/s (<span id="rate-since">since start</span>)<b id="rate">–</b></div>
  <div class="kpi">streaming AUC<b id="streaming-auc">–</b></div>
  <div class="kpi">held-out AUC<b id="auc">–</b></div>
  <div class="kpi">mode<b id="mode">–</b></div>
  <div class="kpi">serving version<b id="serving">–</b></div>
</div>
<div class="grid" style="margin-top:16px">
  <div class="card"><h2>Training loss</h2><div class="chart" id="loss-chart" data-points="0"></div></div>
  <div class="card"><h2>Streaming AUC (batches scored before their update)</h2><div class="chart" id="auc-chart" data-points="0"></div></div>
  <div class="card"><h2>Throughput</h2><div class="chart" id="rate-chart" data-points="0"></div></div>
  <div class="card wide" id="tasks-card"><h2>Tasks (training: smoothed loss, streaming AUC; held out: AUC, log loss, GAUC, calibration or RMSE)</h2><table id="tasks"></table></div>
  <div class="card"><h2>Workers</h2><table id="workers"></table></div>
  <div class="card wide"><h2>Where trainer time goes (seconds since each trainer started, from its heartbeats)</h2>
    <div id="phase-legend"></div><table id="phases"></table></div>
  <div class="card"><h2>Embedding tables</h2><div id="tables"></div></div>
</div>
<script type="application/json" id="initial-update">${scriptSafeJson(initial)}</script>
<script>
${DASHBOARD_SCRIPT}
</script></body></html>`;
}
