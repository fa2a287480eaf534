import { describe, expect, it } from "vitest";
import { docker, ensureEngine, run, skipDocker } from "../support/docker.js";

/**
 * `make docker-build` for real: every service's image from infra/Dockerfile,
 * from a fresh engine's empty cache on CI. In the suite this runs beside the
 * unit tests (the build waits on Debian's and npm's registries much of the
 * time), so docker.test.ts's `make docker-up` later finds the layers cached.
 */
describe.skipIf(skipDocker)("make docker-build", () => {
  it("names a missing engine in one line", async () => {
    const r = await run("make", ["docker-build"], { DOCKER_HOST: "unix:///nonexistent/docker.sock" }, 60_000);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/^make docker-build: no Docker engine answers \(.+\): start it \(e\.g\. sudo systemctl start docker\) and run make docker-build again$/m);
  });

  it("builds the four service images, each run as the non-root user node", async () => {
    ensureEngine();
    const started = Date.now();
    const r = await run("make", ["docker-build"], { COMPOSE_PROJECT: `pangea-build-${process.pid}` }, 1_200_000);
    process.stdout.write(`docker build e2e: make docker-build took ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
    expect(r.code, r.out.slice(-3000)).toBe(0);
    expect(r.out).toMatch(/^make docker-build: images built in \d+ s$/m);
    for (const svc of ["orchestrator", "compute", "trainer", "serving"]) {
      const image = `pangea/${svc}:dev`;
      expect(docker("image", "inspect", "-f", "{{.Config.User}}", image).stdout.trim(), image).toBe("node");
      const size = Number(docker("image", "inspect", "-f", "{{.Size}}", image).stdout.trim());
      process.stdout.write(`docker build e2e: ${image} ${(size / 1e6).toFixed(0)} MB\n`);
    }
  }, 1_500_000);
});
