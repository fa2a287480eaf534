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
const versions = new Map<number, Scorer>(); // by key (ForwardPool)
const port = parentPort!;
port.on("message", (m: ToForwardThread) => {
  switch (m.type) {
    case "model": {
      const v = m.view;
      const tables = v.tables.map((t) => RowTable.attach(t));
      const known = versions.get(m.key);
      if (known && m.same) {
        known.setTables(tables);
        if (v.dense) known.setDense(v.dense);
      } else {
        const spec = parseModelSpec(v.model);
        versions.set(m.key, new Scorer(spec, v.rowWidths, tables, v.dense!, tasksOf(spec).length));
      }
      return;
    }
    case "drop":
      for (const k of m.keys) versions.delete(k);
      return;
    case "pass": {
      try {
        const scorer = versions.get(m.key);
        if (!scorer) throw new Error(`forward thread: model ${m.key} was not sent`);
        const out = scorer.predict(m.x);
        port.postMessage({ id: m.id, out }, [out.buffer as ArrayBuffer]);
      } catch (err) {
        port.postMessage({ id: m.id, error: (err as Error).message });
      }
      return;
    }
  }
});
// Loaded and listening: the pool starts another thread in place of this one only if this one got here.
port.postMessage({ ready: true });
