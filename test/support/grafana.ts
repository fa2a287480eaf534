import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./processes.js";

/** The metric families the provisioned Grafana dashboard queries (histogram series reduced to their family). */
export function grafanaMetricNames(): string[] {
  const dash = JSON.parse(readFileSync(join(ROOT, "infra/grafana/dashboards/pangea.json"), "utf8")) as { panels: { targets: { expr: string }[] }[] };
  const names = new Set<string>();
  for (const p of dash.panels) for (const t of p.targets) for (const m of t.expr.matchAll(/pangea_[a-z0-9_]+/g)) names.add(m[0].replace(/_(bucket|count|sum)$/, ""));
  return [...names].sort();
}

/** The metric families a /metrics text declares. */
export function declaredFamilies(text: string): Set<string> {
  return new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!));
}
