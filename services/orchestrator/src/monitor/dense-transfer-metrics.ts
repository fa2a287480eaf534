import { Counter, Gauge, type Registry } from "@pangea/observe";
import type { DenseTransfers } from "../server/parameter-server.js";

/**
 * How the dense parameters reached the trainers and their gradients came
 * back: inside the messages, or as files of the dense exchange (trainers on
 * this machine), counted per pull answered and per push taken.
 */
export function registerDenseTransferMetrics(registry: Registry, transfers: DenseTransfers, exchangeOpen: boolean): void {
  new Gauge({ name: "pangea_dense_exchange_open", help: "1 when this parameter server offers the dense exchange (a directory under /dev/shm; --dense-exchange auto), else 0.", registers: [registry] }).set(exchangeOpen ? 1 : 0);
  new Counter({
    name: "pangea_dense_transfers_total",
    help: "Dense tensors sent to trainers (tensors=weights, per pull) and taken from them (tensors=gradients, per push), via=message (inside the gRPC message) or file (the dense exchange).",
    labelNames: ["tensors", "via"],
    registers: [registry],
    collect() {
      this.reset();
      for (const tensors of ["weights", "gradients"] as const) for (const via of ["message", "file"] as const) this.inc({ tensors, via }, transfers[tensors][via]);
    },
  });
  new Counter({
    name: "pangea_dense_exchange_write_failures_total",
    help: "Weight files the dense exchange could not write (/dev/shm full, or its directory removed): those parameters went in the message.",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(transfers.weightsFileFailures);
    },
  });
}
