import { Counter, Gauge, type Registry } from "@pangea/observe";
import type { DenseTransfers } from "../server/parameter-server.js";

/**
 * How the dense parameters and a training pull's rows reached the trainers
 * and the gradients of both came back: inside the messages, or as files of
 * the dense exchange (trainers on this machine), counted per pull answered
 * and per push taken.
 */
export function registerDenseTransferMetrics(registry: Registry, transfers: DenseTransfers, exchangeOpen: boolean): void {
  new Gauge({ name: "pangea_dense_exchange_open", help: "1 when this parameter server offers the dense exchange (a directory under /dev/shm; --dense-exchange auto), else 0.", registers: [registry] }).set(exchangeOpen ? 1 : 0);
  new Counter({
    name: "pangea_dense_transfers_total",
    help: "Tensors sent to trainers (tensors=weights: the dense parameters; rows: a training pull's embedding rows; per pull) and taken from them (tensors=gradients: dense; row_gradients; per push), via=message (inside the gRPC message) or file (the dense exchange).",
    labelNames: ["tensors", "via"],
    registers: [registry],
    collect() {
      this.reset();
      const kinds = { weights: transfers.weights, gradients: transfers.gradients, rows: transfers.rows, row_gradients: transfers.rowGradients };
      for (const [tensors, counts] of Object.entries(kinds)) for (const via of ["message", "file"] as const) this.inc({ tensors, via }, counts[via]);
    },
  });
  new Counter({
    name: "pangea_dense_exchange_write_failures_total",
    help: "Weight and rows files the dense exchange could not write (/dev/shm full, or its directory removed): those tensors went in the message.",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(transfers.fileWriteFailures);
    },
  });
}
