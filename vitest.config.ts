import { defineConfig } from "vitest/config";

const DOCKER_TESTS = ["test/e2e/docker.test.ts"];
const ONE_AT_A_TIME = [
  "distributed", "failures", "sharding", "discovery", "models", "serving", "memory-limit", "dashboard",
  "resume-summary", "eval-best", "streamed-data",
].map((name) => `test/e2e/${name}.test.ts`).concat(["test/security/registration-flood.test.ts", "test/security/list-claims.test.ts"]);
// The paths of a machine without the native BLAS addon: the JavaScript dense
// layers and serving forward (checked against their references); a whole job
// on plain wasm is test/fallback.
const FALLBACK_TESTS = ["services/trainer/test/gradients.test.ts", "services/trainer/test/architectures.test.ts", "services/trainer/test/pytorch-twins.test.ts", "services/serving/test/**/*.test.ts", "packages/model/test/**/*.test.ts", "services/orchestrator/test/embedding-store.test.ts", "services/orchestrator/test/whole-table.test.ts"];

export default defineConfig({
  test: {
    // Multi-process tests start real services; each file gets its own worker.
    pool: "forks",
    setupFiles: ["./test/support/user-environment.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ["default", "./test/support/count-reporter.ts"],
    projects: [
      {
        // The packages' and services' own tests: mostly one process each, so
        // two files at a time use both cores (vitest's default on 2 cores is
        // one worker: available parallelism - 1).
        extends: true,
        test: {
          name: "unit",
          include: ["packages/*/test/**/*.test.ts", "services/*/test/**/*.test.ts"],
          exclude: ["**/node_modules/**"],
          maxWorkers: 2,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: { name: "no-native-blas", include: FALLBACK_TESTS, env: { PANGEA_NATIVE_BLAS: "off" }, maxWorkers: 2, sequence: { groupOrder: 0 } },
      },
      {
        // Whole clusters without timing checks (no heartbeat or lease
        // deadlines, no latency bounds): two files at a time.
        extends: true,
        test: {
          name: "suite",
          include: ["test/**/*.test.ts"],
          exclude: ["**/node_modules/**", ...DOCKER_TESTS, ...ONE_AT_A_TIME, "test/fallback/**"],
          maxWorkers: 2,
          sequence: { groupOrder: 1 },
        },
      },
      {
        // Clusters whose checks involve time (trainers declared dead after a
        // missed heartbeat, leases expiring, a sync delay, rate limits, memory
        // bounds) or that already run several jobs at once: one file at a time,
        // after the rest, on otherwise idle cores.
        extends: true,
        test: { name: "suite-serial", include: ONE_AT_A_TIME, maxWorkers: 1, sequence: { groupOrder: 2 } },
      },
      {
        // A whole job on plain wasm.
        extends: true,
        test: { name: "no-native-blas-cluster", include: ["test/fallback/**/*.test.ts"], env: { PANGEA_NATIVE_BLAS: "off" }, maxWorkers: 1, sequence: { groupOrder: 2 } },
      },
      {
        // The Docker test builds the images and runs a job on both cores: last,
        // so its load does not skew the other clusters' timing checks. (Beside
        // the unit tests its build took 297 s instead of 185: it is not mostly
        // waiting on the registries.)
        extends: true,
        test: { name: "docker", include: DOCKER_TESTS, maxWorkers: 1, sequence: { groupOrder: 3 } },
      },
    ],
  },
});
