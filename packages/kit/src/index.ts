export { PangeaError, defineErrors, EXIT } from "./errors.js";
export type { ErrorCodeInfo, GrpcStatusName } from "./errors.js";
export { parseConfig, usageText, UsageError, deepFreeze } from "./config.js";
export type { FlagSpec, FlagTable } from "./config.js";
export { createLogger } from "./logger.js";
export type { Logger } from "./logger.js";
export { Rng, mix32, hashWords } from "./rng.js";
export { runMain } from "./main-runner.js";
export { port, address, positiveInt, nonNegativeInt, intList } from "./zod-fields.js";
