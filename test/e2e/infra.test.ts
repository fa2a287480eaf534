import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { parse, parseAllDocuments } from "yaml";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { SERVICE_MALLOC_ENV, SERVICE_V8_FLAGS } from "@pangea/kit";
import { ROOT } from "../support/processes.js";

const SERVICES = ["orchestrator", "compute", "trainer", "serving"];
const hasCompose = spawnSync("docker-compose", ["version"], { stdio: "ignore" }).status === 0;

describe("container setup", () => {
  it.each(SERVICES)("infra/Dockerfile's %s target runs as a non-root user, has a health check and a built entry", (svc) => {
    const text = readFileSync(join(ROOT, "infra/Dockerfile"), "utf8");
    expect(text).toMatch(/^FROM node:\S+ AS build$/m);
    expect(text).toMatch(/^FROM node:\S+ AS runtime$[\s\S]*?^USER node$/m);
    const stage = text.split(/^FROM /m).find((s) => s.startsWith(`runtime AS ${svc}\n`));
    expect(stage, `a ${svc} target`).toBeDefined();
    expect(stage).toMatch(/^HEALTHCHECK /m);
    const m = stage!.match(/^ENTRYPOINT \["node", ((?:"--[^"]+", )*)"([^"]+)"\]$/m);
    const entry = m?.[2];
    expect(entry).toBe(`services/${svc}/dist/main.js`);
    // The image runs the service with the heap flags pangea run and pangea serve use.
    expect(m![1]!.split(", ").filter(Boolean).map((f) => JSON.parse(f) as string)).toEqual([...SERVICE_V8_FLAGS]);
    // And with the malloc settings they use, set once for every service in the runtime stage.
    const runtime = text.split(/^FROM /m).find((st) => st.startsWith("node:20-bookworm-slim AS runtime\n"))!;
    const env = Object.fromEntries([...runtime.matchAll(/^ENV (.+)$/gm)].flatMap((e) => e[1]!.split(/\s+/).map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)] as [string, string])));
    expect(Object.fromEntries(Object.entries(env).filter(([k]) => k in SERVICE_MALLOC_ENV))).toEqual({ ...SERVICE_MALLOC_ENV });
    expect(existsSync(join(ROOT, entry!))).toBe(true);
    const probe = stage!.match(/"(packages\/rpc\/dist\/health-probe\.js)"/)?.[1];
    expect(probe && existsSync(join(ROOT, probe))).toBe(true);
  });

  // Debian's docker-compose validates the file without a Docker engine; .ci/run installs it.
  it.runIf(hasCompose)("infra/docker-compose.yaml validates with docker-compose config -q and wires the services", () => {
    execFileSync("docker-compose", ["-f", "infra/docker-compose.yaml", "config", "-q"], { cwd: ROOT });
    const resolved = execFileSync("docker-compose", ["-f", "infra/docker-compose.yaml", "config"], { cwd: ROOT, encoding: "utf8" });
    for (const svc of SERVICES) expect(resolved).toMatch(new RegExp(`dockerfile: infra/Dockerfile\\s+target: ${svc}`));
    expect(resolved).toMatch(/replicas: 2/);
    expect(resolved).toContain("orchestrator:50051");
    expect(resolved).toContain("PANGEA_DISCOVERY: etcd://etcd:2379");
    expect(resolved).toMatch(/image: quay\.io\/coreos\/etcd:v[\d.]+/);
    expect(resolved).toContain("--resume");
    expect(resolved).toContain("condition: service_healthy");
    expect(resolved).toMatch(/image: apache\/kafka:[\d.]+/);
    expect(resolved).toContain("KAFKA_PROCESS_ROLES: broker,controller");
    // make docker-up's sizing variables reach the orchestrator's flags (0 batches per step: one per trainer).
    expect(resolved).toMatch(/- --batches-per-step\s+- '0'/);
    const sized = execFileSync("docker-compose", ["-f", "infra/docker-compose.yaml", "config"], { cwd: ROOT, encoding: "utf8", env: { ...process.env, TRAINERS: "3", STEPS: "700", BATCHES_PER_STEP: "2" } });
    expect(sized).toMatch(/- --trainers\s+- '3'\s+- --steps\s+- '700'\s+- --batches-per-step\s+- '2'/);
    expect(sized).toMatch(/replicas: 3/);
  });

  it("infra/k8s validates against the Kubernetes schemas (kubernetes-models), and a broken manifest is caught naming the field", () => {
    const ok = spawnSync(process.execPath, [join(ROOT, "scripts/k8s-validate.mjs")], { encoding: "utf8" });
    expect(ok.stderr).toBe("");
    expect(ok.status).toBe(0);
    for (const o of ["Namespace/pangea", "StatefulSet/etcd", "Deployment/orchestrator", "Service/orchestrator", "Deployment/compute", "Job/trainer", "PersistentVolumeClaim/checkpoints"]) expect(ok.stdout).toContain(o);
    const broken = mkdtempSync(join(tmpdir(), "pangea-k8s-"));
    cpSync(join(ROOT, "infra/k8s"), broken, { recursive: true });
    const file = join(broken, "orchestrator.yaml");
    writeFileSync(file, readFileSync(file, "utf8").replace("containerPort: 50051", 'containerPort: "fifty"'));
    const bad = spawnSync(process.execPath, [join(ROOT, "scripts/k8s-validate.mjs"), broken], { encoding: "utf8" });
    expect(bad.status).toBe(1);
    expect(bad.stderr.trim()).toBe("k8s-validate: orchestrator.yaml#3 Deployment/orchestrator: data/spec/template/spec/containers/0/ports/0/containerPort must be integer");
  });

  it("the k8s manifests wire discovery through etcd and resume the orchestrator from its checkpoints", () => {
    const text = (f: string) => readFileSync(join(ROOT, "infra/k8s", f), "utf8");
    for (const f of ["orchestrator.yaml", "compute.yaml", "trainer.yaml"]) expect(text(f)).toContain('value: "etcd://etcd.pangea.svc:2379"');
    expect(text("orchestrator.yaml")).toMatch(/"--resume"/);
    expect(text("orchestrator.yaml")).toMatch(/claimName: checkpoints/);
  });

  it("each k8s pod mounts the TLS secret of its own role, and no other: a trainer's pod holds no other role's key", () => {
    type Pod = { spec: { containers: { volumeMounts: { name: string; mountPath: string }[] }[]; volumes: { name: string; secret?: { secretName: string } }[] } };
    for (const role of ["orchestrator", "compute", "trainer", "serving"]) {
      const docs = parseAllDocuments(readFileSync(join(ROOT, "infra/k8s", `${role}.yaml`), "utf8")).map((d) => d.toJS() as { kind: string; spec: { template: Pod } });
      const pod = docs.find((d) => d.kind === "Deployment" || d.kind === "Job")!.spec.template;
      const secrets = pod.spec.volumes.filter((v) => v.secret).map((v) => v.secret!.secretName);
      expect(secrets, role).toEqual([`pangea-tls-${role}`]);
      const tls = pod.spec.volumes.find((v) => v.secret)!.name;
      expect(pod.spec.containers[0]!.volumeMounts.find((m) => m.name === tls)?.mountPath, role).toBe("/certs");
    }
  });

  it("the k8s pods serve /metrics on the port they declare and annotate, and serving loads the versions the orchestrator exports", () => {
    type Container = { args: string[]; ports: { name: string; containerPort: number }[]; volumeMounts: { name: string; mountPath: string }[] };
    type Pod = { metadata: { annotations?: Record<string, string> }; spec: { containers: Container[]; volumes: { name: string; persistentVolumeClaim?: { claimName: string } }[] } };
    const pod = (f: string): Pod => {
      const docs = parseAllDocuments(readFileSync(join(ROOT, "infra/k8s", f), "utf8")).map((d) => d.toJS() as { kind: string; spec: { template: Pod } });
      return docs.find((d) => d.kind === "Deployment" || d.kind === "Job")!.spec.template;
    };
    const flag = (c: Container, name: string) => c.args[c.args.indexOf(name) + 1];
    for (const [f, port] of [["orchestrator.yaml", 9400], ["compute.yaml", 9401], ["trainer.yaml", 9402]] as const) {
      const p = pod(f);
      const c = p.spec.containers[0]!;
      expect(flag(c, "--metrics-port"), f).toBe(String(port));
      expect(c.ports.find((x) => x.name === "metrics")?.containerPort, f).toBe(port);
      expect(p.metadata.annotations, f).toEqual({ "prometheus.io/scrape": "true", "prometheus.io/port": String(port) });
    }
    // The volume a path is on: the mount it lies under, and the claim behind that mount.
    const claimOf = (p: Pod, path: string) => {
      const mount = p.spec.containers[0]!.volumeMounts.find((m) => path.startsWith(`${m.mountPath}/`));
      return p.spec.volumes.find((v) => v.name === mount?.name)?.persistentVolumeClaim?.claimName;
    };
    const orchestrator = pod("orchestrator.yaml");
    const serving = pod("serving.yaml");
    const exportDir = flag(orchestrator.spec.containers[0]!, "--export-dir")!;
    expect(flag(serving.spec.containers[0]!, "--model-base-path")).toBe(exportDir);
    expect(claimOf(orchestrator, exportDir)).toBe("models");
    expect(claimOf(serving, exportDir)).toBe("models");
  });

  it.runIf(hasCompose)("compose has Prometheus scraping every service's metrics port and Grafana with the data source and dashboard provisioned", () => {
    const resolved = execFileSync("docker-compose", ["-f", "infra/docker-compose.yaml", "config"], { cwd: ROOT, encoding: "utf8" });
    expect(resolved).toMatch(/image: prom\/prometheus:v[\d.]+/);
    expect(resolved).toMatch(/image: grafana\/grafana:[\d.]+/);
    const prom = parse(readFileSync(join(ROOT, "infra/prometheus/prometheus.yml"), "utf8")) as { scrape_configs: { job_name: string; static_configs?: { targets: string[] }[]; dns_sd_configs?: { names: string[]; port: number }[] }[] };
    const targets = prom.scrape_configs.flatMap((c) => [...(c.static_configs ?? []).flatMap((s) => s.targets), ...(c.dns_sd_configs ?? []).flatMap((d) => d.names.map((n) => `${n}:${d.port}`))]);
    expect(targets.sort()).toEqual(["compute:9401", "orchestrator:9400", "serving:8501", "trainer:9402"]);
    // Each target's port is the one its service is told to serve metrics on.
    for (const port of ["9400", "9401", "9402"]) expect(resolved).toMatch(new RegExp(`- --metrics-port\\s+- ['"]?${port}['"]?`));
    const ds = parse(readFileSync(join(ROOT, "infra/grafana/provisioning/datasources/prometheus.yaml"), "utf8")) as { datasources: { uid: string; url: string }[] };
    const dash = JSON.parse(readFileSync(join(ROOT, "infra/grafana/dashboards/pangea.json"), "utf8")) as { panels: { datasource: { uid: string } }[] };
    expect(dash.panels.length).toBeGreaterThan(10);
    for (const p of dash.panels) expect(p.datasource.uid).toBe(ds.datasources[0]!.uid);
    expect(ds.datasources[0]!.url).toBe("http://prometheus:9090");
  });

  it("the health probe exits 1 with the peer's address when nothing serves there", () => {
    const r = spawnSync(process.execPath, [join(ROOT, "packages/rpc/dist/health-probe.js"), "127.0.0.1:1"], { encoding: "utf8" });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^health-probe: 127\.0\.0\.1:1: UNAVAILABLE/);
  });
});
