import * as grpc from "@grpc/grpc-js";
import { PangeaError } from "@pangea/kit";

/** Turns any thrown value into a gRPC error for a handler's callback: the edge where codes become statuses. */
export function toServiceError(err: unknown): Partial<grpc.StatusObject> {
  if (err instanceof PangeaError) {
    return { code: grpc.status[err.status], details: `${err.code}: ${err.message}` };
  }
  return { code: grpc.status.INTERNAL, details: `internal error: ${(err as Error)?.message ?? String(err)}` };
}

/** A one-line description of a failed call, naming the peer. */
export function describeCallError(err: unknown, peer: string): string {
  const e = err as grpc.ServiceError;
  if (typeof e?.code === "number") return `${peer}: ${grpc.status[e.code]}: ${e.details || e.message}`;
  return `${peer}: ${(err as Error)?.message ?? String(err)}`;
}

export function isStatus(err: unknown, code: grpc.status): boolean {
  return (err as grpc.ServiceError)?.code === code;
}
