import * as grpc from "@grpc/grpc-js";
import { printable } from "@pangea/kit";

const UNDECODABLE = Symbol("undecodable request");

interface Undecodable {
  [UNDECODABLE]: string;
}

function isUndecodable(request: unknown): request is Undecodable {
  return typeof request === "object" && request !== null && UNDECODABLE in request;
}

/**
 * A service whose requests that do not decode are answered INVALID_ARGUMENT
 * naming the method, as any other bad input is. grpc-js itself answers a
 * request its deserializer throws on with INTERNAL ("Error deserializing
 * request"), which says the server is at fault. The deserializer returns a
 * marker instead; the handler, called after the call policy has let the call
 * through (so an unauthenticated caller is still told that first), answers
 * it. Streams of requests (none of ours decode theirs with a deserializer
 * that throws: they are raw bytes) are left as grpc-js handles them.
 */
export function decodingChecked(def: grpc.ServiceDefinition, impl: grpc.UntypedServiceImplementation): { def: grpc.ServiceDefinition; impl: grpc.UntypedServiceImplementation } {
  const outDef: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  const outImpl: grpc.UntypedServiceImplementation = { ...impl };
  for (const [name, method] of Object.entries(def) as [string, grpc.MethodDefinition<unknown, unknown>][]) {
    if (method.requestStream) {
      outDef[name] = method;
      continue;
    }
    outDef[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer) => {
        try {
          return method.requestDeserialize(bytes);
        } catch (err) {
          return { [UNDECODABLE]: printable((err as Error).message, 200) } satisfies Undecodable;
        }
      },
    };
    const key = impl[name] ? name : method.originalName;
    const handler = key ? impl[key] : undefined;
    if (!handler || !key) continue;
    const refusal = (why: string): Partial<grpc.ServiceError> => ({ code: grpc.status.INVALID_ARGUMENT, details: `${method.path}: the request is not a valid message of this method (${why})` });
    const h = handler as (...args: unknown[]) => void;
    outImpl[key] = (method.responseStream
      ? (call: grpc.ServerWritableStream<unknown, unknown>) => {
          if (isUndecodable(call.request)) call.emit("error", refusal(call.request[UNDECODABLE]));
          else h(call);
        }
      : (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
          if (isUndecodable(call.request)) cb(refusal(call.request[UNDECODABLE]) as grpc.ServiceError);
          else h(call, cb);
        }) as grpc.UntypedHandleCall;
  }
  return { def: outDef as grpc.ServiceDefinition, impl: outImpl };
}
