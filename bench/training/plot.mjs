// The training benchmark's figure as a self-contained SVG: samples/s and AUC
// per configuration, and the scaling series with each one's split of trainer
// time into compute, communication and waiting.
const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;");

export function renderSvg(summary) {
  const W = 1000;
  const rowH = 26;
  const left = 250;
  const barW = 420;
  const rows = summary.results;
  const scaling = summary.scaling;
  const maxRate = Math.max(...rows.map((r) => r.samplesPerSec), ...scaling.map((s) => s.samplesPerSec), 1);
  const h1 = 76 + rows.length * rowH;
  const h2 = scaling.length ? 70 + scaling.length * rowH : 0;
  const H = h1 + h2 + 30;
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  out.push(`<text x="12" y="22" font-size="15" font-weight="bold">Training throughput, samples/s (same data, model and optimizers)</text>`);
  out.push(`<text x="12" y="40" fill="#555">${esc(summary.model)}</text>`);
  out.push(`<text x="12" y="56" fill="#555">${esc(`${summary.records} records, ${summary.machine.cores} cores (${summary.machine.cpu}); sgemm peak ${Object.entries(summary.sgemmPeak).filter(([k]) => k.startsWith("gflops")).map(([k, v]) => `${v} GFLOPS on ${k.slice(6)}`).join(", ") || "-"} thread(s); ${summary.date}`)}</text>`);
  rows.forEach((r, i) => {
    const y = 72 + i * rowH;
    const w = (r.samplesPerSec / maxRate) * barW;
    const color = r.name.startsWith("pytorch") ? "#e07b39" : r.name.startsWith("pangea-cluster") ? "#3a7bd5" : "#5bb974";
    out.push(`<text x="${left - 8}" y="${y + 16}" text-anchor="end">${esc(r.name)}</text>`);
    out.push(`<rect x="${left}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowH - 8}" fill="${color}"/>`);
    out.push(`<text x="${left + w + 6}" y="${y + 16}">${r.samplesPerSec} samples/s · AUC ${r.auc} · ${r.peakRssMb} MB</text>`);
  });
  if (scaling.length) {
    const top = h1 + 10;
    out.push(`<text x="12" y="${top + 16}" font-size="14" font-weight="bold">Scaling: samples/s and where trainer time goes</text>`);
    const legend = [["compute", "#5bb974"], ["communication", "#3a7bd5"], ["wait", "#bbbbbb"]];
    legend.forEach(([name, c], k) => {
      out.push(`<rect x="${left + k * 130}" y="${top + 26}" width="12" height="12" fill="${c}"/><text x="${left + k * 130 + 16}" y="${top + 36}">${name}</text>`);
    });
    scaling.forEach((s, i) => {
      const y = top + 46 + i * rowH;
      out.push(`<text x="${left - 8}" y="${y + 16}" text-anchor="end">${esc(`${s.trainers} trainer(s), ${s.shards} shard(s)`)}</text>`);
      let x = left;
      for (const [name, c] of legend) {
        const w = s.fractions[name] * 200;
        out.push(`<rect x="${x.toFixed(1)}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowH - 8}" fill="${c}"/>`);
        x += w;
      }
      out.push(`<text x="${left + 210}" y="${y + 16}">${s.samplesPerSec} samples/s · compute ${(100 * s.fractions.compute).toFixed(0)}% · comm ${(100 * s.fractions.communication).toFixed(0)}% · wait ${(100 * s.fractions.wait).toFixed(0)}%</text>`);
    });
  }
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}
