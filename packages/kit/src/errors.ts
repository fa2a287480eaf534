/**
 * The base of every package's error type. User-reachable failures carry a
 * stable `code` (e.g. `COMPUTE_ERR_BAD_RECORD`) and a gRPC status name; the
 * edge (rpc/status.ts) turns them into a gRPC status, main.ts into an exit
 * code. Programmer bugs stay plain `Error`.
 */
export type GrpcStatusName =
  | "INVALID_ARGUMENT"
  | "NOT_FOUND"
  | "UNAUTHENTICATED"
  | "PERMISSION_DENIED"
  | "ALREADY_EXISTS"
  | "FAILED_PRECONDITION"
  | "ABORTED"
  | "OUT_OF_RANGE"
  | "UNAVAILABLE"
  | "DEADLINE_EXCEEDED"
  | "RESOURCE_EXHAUSTED"
  | "INTERNAL"
  | "DATA_LOSS";

export interface ErrorCodeInfo {
  readonly status: GrpcStatusName;
  /** Process exit code when this error ends a process. */
  readonly exit: number;
  readonly description: string;
}

export class PangeaError extends Error {
  readonly code: string;
  readonly status: GrpcStatusName;
  readonly exitCode: number;
  readonly hint?: string;

  constructor(code: string, info: ErrorCodeInfo, message: string, options?: { cause?: unknown; hint?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "PangeaError";
    this.code = code;
    this.status = info.status;
    this.exitCode = info.exit;
    this.hint = options?.hint;
  }
}

/**
 * Declares a package's error registry and returns a constructor bound to it,
 * so every package has one error type whose codes are listed in one place.
 */
export function defineErrors<const T extends Record<string, ErrorCodeInfo>>(registry: T) {
  return {
    registry,
    create(code: keyof T & string, message: string, options?: { cause?: unknown; hint?: string }): PangeaError {
      return new PangeaError(code, registry[code], message, options);
    },
    is(err: unknown, code?: keyof T & string): err is PangeaError {
      return err instanceof PangeaError && code !== undefined ? err.code === code : err instanceof PangeaError && err.code in registry;
    },
  };
}

/** Exit codes shared by every process. */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  unavailable: 3,
} as const;
