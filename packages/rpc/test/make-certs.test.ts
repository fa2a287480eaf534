import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadTransportSecurity } from "../src/security/transport-security.js";

const MAKE_CERTS = join(import.meta.dirname, "../dist/make-certs.js");

describe("make-certs (compose's one-shot certs service)", () => {
  it("hands each role's directory the CA's certificate and that role's pair alone, usable as the role's TLS directory; public gets ca.crt", () => {
    const root = mkdtempSync(join(tmpdir(), "pangea-make-certs-"));
    const ca = join(root, "ca");
    const roles = `trainer:${join(root, "trainer")},serving:${join(root, "serving")},public:${join(root, "public")}`;
    for (let start = 0; start < 2; start++) {
      const r = spawnSync(process.execPath, [MAKE_CERTS, ca, "serving,localhost", roles], { encoding: "utf8" });
      expect(r.status, r.stderr).toBe(0);
    }
    expect(readdirSync(join(root, "trainer")).sort()).toEqual(["ca.crt", "trainer.crt", "trainer.key"]);
    expect(readdirSync(join(root, "serving")).sort()).toEqual(["ca.crt", "serving.crt", "serving.key"]);
    expect(readdirSync(join(root, "public"))).toEqual(["ca.crt"]);
    // The key keeps its owner-only mode; the pair verifies against the CA, as the service loads it.
    expect(statSync(join(root, "trainer", "trainer.key")).mode & 0o077).toBe(0);
    expect(loadTransportSecurity(join(root, "trainer"), "trainer").cert.equals(readFileSync(join(ca, "trainer.crt")))).toBe(true);
    const bad = spawnSync(process.execPath, [MAKE_CERTS, ca, "", "nobody:/tmp/x"], { encoding: "utf8" });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toBe('make-certs: expected role:dir with a role of orchestrator, shard, compute, trainer, serving, admin or public, got "nobody:/tmp/x"\n');
  });
});
