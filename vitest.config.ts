import { defineConfig } from "vitest/config";

const DOCKER_TESTS = ["test/e2e/docker.test.ts"];
// The paths of a machine without the native BLAS addon: the JavaScript dense
// layers and serving forward (checked against their references), and a whole
// job on plain wasm.
const FALLBACK_TESTS = ["test/fallback/**/*.test.ts", "services/trainer/test/gradients.test.ts", "services/trainer/test/architectures.test.ts", "services/trainer/test/pytorch-twins.test.ts", "services/serving/test/**/*.test.ts", "packages/model/test/**/*.test.ts"];

export default defineConfig({
  test: {
    // Multi-process tests start real services; each file gets its own worker.
    pool: "forks",
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ["default", "./test/support/count-reporter.ts"],
    projects: [
      {
        extends: true,
        test: {
          name: "suite",
          include: ["packages/*/test/**/*.test.ts", "services/*/test/**/*.test.ts", "test/**/*.test.ts"],
          exclude: ["**/node_modules/**", ...DOCKER_TESTS, "test/fallback/**"],
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: { name: "no-native-blas", include: FALLBACK_TESTS, env: { PANGEA_NATIVE_BLAS: "off" }, sequence: { groupOrder: 0 } },
      },
      {
        // The Docker cluster builds images and runs a job on both cores: run
        // after the rest, so its load does not skew their timing-based tests.
        extends: true,
        test: { name: "docker", include: DOCKER_TESTS, sequence: { groupOrder: 1 } },
      },
    ],
  },
});
