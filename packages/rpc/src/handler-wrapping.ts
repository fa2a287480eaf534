import type * as grpc from "@grpc/grpc-js";

type Method = grpc.MethodDefinition<unknown, unknown>;
type Handler = (...args: unknown[]) => void;

/**
 * A service implementation with the handlers `wrap` returns in place of the
 * originals (null leaves one as it is). A handler is found under its
 * method's name or its originalName, as grpc-js finds it, and put back
 * under the same key.
 */
export function wrapHandlers(def: grpc.ServiceDefinition, impl: grpc.UntypedServiceImplementation, wrap: (method: Method, handler: Handler) => grpc.UntypedHandleCall | null): grpc.UntypedServiceImplementation {
  const out: grpc.UntypedServiceImplementation = { ...impl };
  for (const [name, method] of Object.entries(def) as [string, Method][]) {
    const key = impl[name] ? name : method.originalName;
    const handler = key ? impl[key] : undefined;
    if (!handler || !key) continue;
    const wrapped = wrap(method, handler as Handler);
    if (wrapped) out[key] = wrapped;
  }
  return out;
}

/**
 * A handler that first asks `refuse` about the call: a refusal ends it with
 * that status (through the callback for unary and client-streaming calls, as
 * the stream's error for server-streaming ones), otherwise the handler runs.
 */
export function refusingFirst(method: Method, handler: Handler, refuse: (call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>) => Partial<grpc.ServiceError> | null): grpc.UntypedHandleCall {
  if (method.responseStream) {
    return ((call: grpc.ServerWritableStream<unknown, unknown>) => {
      const no = refuse(call);
      if (no) call.emit("error", no);
      else handler(call);
    }) as grpc.UntypedHandleCall;
  }
  return ((call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
    const no = refuse(call);
    if (no) cb(no as grpc.ServiceError);
    else handler(call, cb);
  }) as grpc.UntypedHandleCall;
}
