import * as grpc from "@grpc/grpc-js";
import { printable } from "@pangea/kit";
import { refusingFirst, wrapHandlers } from "./handler-wrapping.js";

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
  for (const [name, method] of Object.entries(def) as [string, grpc.MethodDefinition<unknown, unknown>][]) {
    if (method.requestStream) {
      outDef[name] = method;
      continue;
    }
    // protobufjs reads a Buffer's string fields clamped to its end (a worker id claiming 2 MiB in 6 bytes decoded as
    // those 6 and registered); from a plain Uint8Array it checks their bounds, and a cut message does not decode. Our own
    // services' requests hold no bytes field a handler takes for a Buffer; TensorFlow Serving's do (string_val): theirs
    // stay Buffers.
    const strict = method.path.startsWith("/pangea.");
    outDef[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer) => {
        try {
          return method.requestDeserialize(strict ? (new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length) as Buffer) : bytes);
        } catch (err) {
          return { [UNDECODABLE]: printable((err as Error).message, 200) } satisfies Undecodable;
        }
      },
    };
  }
  const outImpl = wrapHandlers(def, impl, (method, handler) =>
    method.requestStream
      ? null
      : refusingFirst(method, handler, (call) =>
          isUndecodable(call.request) ? { code: grpc.status.INVALID_ARGUMENT, details: `${method.path}: the request is not a valid message of this method (${call.request[UNDECODABLE]})` } : null,
        ),
  );
  return { def: outDef as grpc.ServiceDefinition, impl: outImpl };
}
