import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { FastifyInstance } from "@pangea/observe";

/** Where the page loads uPlot from, relative to the dashboard's own address. */
export const UPLOT_SCRIPT = "assets/uPlot.iife.min.js";
export const UPLOT_STYLE = "assets/uPlot.min.css";

/**
 * Serves uPlot's browser build straight from the installed `uplot` package, so
 * the dashboard works without internet access and without a copy of the
 * library in this repository. The files are read once: they change only when
 * the dependency is upgraded, which needs a restart anyway.
 */
export function addUplotAssets(app: FastifyInstance): void {
  const require = createRequire(import.meta.url);
  const files: Array<[string, string, string]> = [
    [UPLOT_SCRIPT, "uplot/dist/uPlot.iife.min.js", "text/javascript; charset=utf-8"],
    [UPLOT_STYLE, "uplot/dist/uPlot.min.css", "text/css; charset=utf-8"],
  ];
  for (const [route, module, type] of files) {
    const body = readFileSync(require.resolve(module));
    app.get(`/${route}`, async (_req, reply) => reply.type(type).header("cache-control", "public, max-age=3600").send(body));
  }
}
