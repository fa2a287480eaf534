import { defineConfig } from "vitest/config";

const DOCKER_TESTS = ["test/e2e/docker.test.ts"];
// The paths of a machine without the native BLAS addon: the JavaScript dense
// layers and serving forward (checked against their references); a whole job
// on plain wasm is test/fallback.
const FALLBACK_TESTS = ["services/trainer/test/gradients.test.ts", "services/trainer/test/architectures.test.ts", "services/trainer/test/pytorch-twins.test.ts", "services/serving/test/**/*.test.ts", "packages/model/test/**/*.test.ts"];

export default defineConfig({
  test: {
    // Multi-process tests start real services; each file gets its own worker.
    pool: "forks",
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
        // Whole clusters of processes, some with timing checks: one file at a time.
        extends: true,
        test: {
          name: "suite",
          include: ["test/**/*.test.ts"],
          exclude: ["**/node_modules/**", ...DOCKER_TESTS, "test/fallback/**"],
          maxWorkers: 1,
          sequence: { groupOrder: 1 },
        },
      },
      {
        // A whole job on plain wasm, after the unit tests like the other clusters.
        extends: true,
        test: { name: "no-native-blas-cluster", include: ["test/fallback/**/*.test.ts"], env: { PANGEA_NATIVE_BLAS: "off" }, maxWorkers: 1, sequence: { groupOrder: 1 } },
      },
      {
        // The Docker cluster builds images and runs a job on both cores: run
        // after the rest, so its load does not skew their timing-based tests.
        extends: true,
        test: { name: "docker", include: DOCKER_TESTS, maxWorkers: 1, sequence: { groupOrder: 2 } },
      },
    ],
  },
});
