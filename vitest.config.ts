import { defineConfig } from "vitest/config";

const DOCKER_TESTS = ["test/e2e/docker.test.ts"];

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
          exclude: ["**/node_modules/**", ...DOCKER_TESTS],
          sequence: { groupOrder: 0 },
        },
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
