import { parentPort } from "node:worker_threads";
import { parseModelSpec, tasksOf } from "@pangea/model";
import { RowTable } from "../model/row-table.js";
import { Scorer } from "../model/scorer.js";
import type { ToForwardThread } from "./forward-pool.js";

/**
 * A forward thread: runs passes for the event loop (ForwardPool) over the
 * versions' shared tables. Messages arrive in order, so a version's new
 * state (after a parameter sync update) is in place before the next pass.
 */
const versions = new Map<number, Scorer>();
const port = parentPort!;
port.on("message", (m: ToForwardThread) => {
  switch (m.type) {
    case "model": {
      const v = m.view;
      const tables = v.tables.map((t) => RowTable.attach(t));
      const known = versions.get(v.version);
      if (known && m.same) {
        known.setTables(tables);
        if (v.dense) known.setDense(v.dense);
      } else {
        const spec = parseModelSpec(v.model);
        versions.set(v.version, new Scorer(spec, v.rowWidths, tables, v.dense!, tasksOf(spec).length));
      }
      return;
    }
    case "retain":
      for (const v of [...versions.keys()]) if (!m.versions.includes(v)) versions.delete(v);
      return;
    case "pass": {
      try {
        const scorer = versions.get(m.version);
        if (!scorer) throw new Error(`forward thread: version ${m.version} was not sent`);
        const out = scorer.predict(m.x);
        port.postMessage({ id: m.id, out }, [out.buffer as ArrayBuffer]);
      } catch (err) {
        port.postMessage({ id: m.id, error: (err as Error).message });
      }
      return;
    }
  }
});
