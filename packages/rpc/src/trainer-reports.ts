/** The phases a trainer's heartbeat reports cumulative seconds for (HeartbeatRequest.phase_seconds). */
export const TRAINER_PHASES = ["fetch", "pull", "compute", "push", "wait"] as const;
export type TrainerPhase = (typeof TRAINER_PHASES)[number];

/** The longest backend name a trainer may report (ReportBackend; "wasm+blas", "tensorflow"): the job's status repeats it. */
export const MAX_BACKEND_CHARS = 64;
