import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { X509Certificate } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CHANNEL_OPTIONS,
  ParameterServerService,
  configureTransport,
  diagnoseConnection,
  trustOnlyCredentials,
  RpcErrors,
  channelCredentials,
  loadTransportSecurity,
  parameterServerClient,
  startServer,
  unary,
  writeClusterCerts,
  type RunningServer,
  type TransportSecurity,
} from "../src/index.js";

const dir = mkdtempSync(join(tmpdir(), "pangea-tls-"));
const other = mkdtempSync(join(tmpdir(), "pangea-tls-other-"));
let server: RunningServer;
let tokenServer: RunningServer;
const as = (name: string, d = dir): TransportSecurity => loadTransportSecurity(d, name);

const echo = (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from(`ok ${call.request.length}`));
const Predict: grpc.ServiceDefinition = {
  Predict: { path: "/tensorflow.serving.PredictionService/Predict", requestStream: false, responseStream: false, requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b },
};

beforeAll(async () => {
  writeClusterCerts(dir, { workers: [{ role: "trainer", name: "trainer-0" }], hosts: ["orchestrator.example"] });
  writeClusterCerts(other);
  server = await startServer("127.0.0.1", 0, (s) => s.addService(ParameterServerService, { pull: echo, push: echo, assign: echo, evict: echo, tableStats: echo }), ["pangea.v1.ParameterServer"], undefined, { security: as("orchestrator") });
  tokenServer = await startServer("127.0.0.1", 0, (s) => s.addService(Predict, { Predict: echo }), [], undefined, { security: as("serving"), clientToken: "s3cret-token" });
});

afterAll(async () => {
  await server?.shutdown(100);
  await tokenServer?.shutdown(100);
  rmSync(dir, { recursive: true, force: true });
  rmSync(other, { recursive: true, force: true });
});

async function call(method: "pull" | "push" | "assign" | "evict", security: TransportSecurity | null): Promise<{ code: number; details: string }> {
  const client = parameterServerClient(server.address, security);
  try {
    const res = await unary<Buffer, Buffer>("orchestrator", client[method].bind(client), Buffer.from("abc"), 5_000);
    return { code: grpc.status.OK, details: res.toString() };
  } catch (err) {
    const e = err as grpc.ServiceError;
    return { code: e.code, details: e.details };
  } finally {
    client.close();
  }
}

describe("pangea certs: the cluster CA and its certificates", () => {
  it("are valid X.509 an independent verifier (openssl) accepts, with the role in OU and the name in CN", () => {
    for (const name of ["orchestrator", "trainer", "trainer-0", "serving", "admin"]) {
      const out = execFileSync("openssl", ["verify", "-x509_strict", "-purpose", "sslserver", "-CAfile", join(dir, "ca.crt"), join(dir, `${name}.crt`)], { encoding: "utf8" });
      expect(out.trim()).toBe(`${join(dir, `${name}.crt`)}: OK`);
      execFileSync("openssl", ["verify", "-purpose", "sslclient", "-CAfile", join(dir, "ca.crt"), join(dir, `${name}.crt`)]);
    }
    const t0 = new X509Certificate(readFileSync(join(dir, "trainer-0.crt")));
    expect(t0.subject.split("\n")).toEqual(["O=Pangea", "OU=trainer", "CN=trainer-0"]);
    expect(t0.subjectAltName).toContain("DNS:orchestrator.example");
    expect(t0.subjectAltName).toContain("IP Address:127.0.0.1");
    expect(() => execFileSync("openssl", ["verify", "-CAfile", join(dir, "ca.crt"), join(other, "trainer.crt")], { stdio: "pipe" })).toThrow(/unable to get local issuer certificate/);
  });

  it("keeps what exists: a second run reuses the CA and adds only the missing certificate", () => {
    const before = readFileSync(join(dir, "trainer.crt"), "utf8");
    const r = writeClusterCerts(dir, { workers: [{ role: "trainer", name: "trainer-1" }] });
    expect(r.caReused).toBe(true);
    expect(r.written).toEqual(["trainer-1.crt", "trainer-1.key"]);
    expect(readFileSync(join(dir, "trainer.crt"), "utf8")).toBe(before);
    expect(as("trainer-1").identity).toEqual({ role: "trainer", name: "trainer-1" });
  });

  it("refuses half a pair instead of replacing it: ca.crt without ca.key (a services' directory), a certificate without its key, a CA file that is not PEM", () => {
    const svc = mkdtempSync(join(tmpdir(), "pangea-tls-half-"));
    try {
      for (const f of ["ca.crt", "trainer.crt", "trainer.key"]) writeFileSync(join(svc, f), readFileSync(join(dir, f)));
      const caBefore = readFileSync(join(svc, "ca.crt"), "utf8");
      expect(() => writeClusterCerts(svc, { workers: [{ role: "trainer", name: "trainer-5" }] })).toThrow(`--out ${svc} holds ca.crt but no ca.key; run pangea certs on the directory that holds the CA's key`);
      expect(readFileSync(join(svc, "ca.crt"), "utf8")).toBe(caBefore);
      expect(existsSync(join(svc, "trainer-5.crt"))).toBe(false);
      writeFileSync(join(svc, "ca.key"), readFileSync(join(dir, "ca.key")));
      rmSync(join(svc, "trainer.key"));
      expect(() => writeClusterCerts(svc)).toThrow(`--out ${svc} holds trainer.crt but no trainer.key; remove it (or bring its other half)`);
      writeFileSync(join(svc, "trainer.key"), readFileSync(join(dir, "trainer.key")));
      writeFileSync(join(svc, "ca.crt"), "junk\n");
      expect(() => writeClusterCerts(svc)).toThrow(`${join(svc, "ca.crt")} is not a PEM certificate`);
    } finally {
      rmSync(svc, { recursive: true, force: true });
    }
  });

  it("a key that is not the certificate's, or a certificate of another role, stops the process with one line", () => {
    const mixed = mkdtempSync(join(tmpdir(), "pangea-tls-key-"));
    try {
      writeFileSync(join(mixed, "ca.crt"), readFileSync(join(dir, "ca.crt")));
      writeFileSync(join(mixed, "orchestrator.crt"), readFileSync(join(dir, "orchestrator.crt")));
      writeFileSync(join(mixed, "orchestrator.key"), readFileSync(join(dir, "trainer.key")));
      expect(() => loadTransportSecurity(mixed, "orchestrator")).toThrow(/orchestrator\.key is not the private key of .*orchestrator\.crt/);
      expect(() => configureTransport({ tlsDir: dir, tlsName: "compute" }, "serving")).toThrow(/compute\.crt carries the role compute \(its OU\); this process is the serving/);
      expect(configureTransport({ tlsDir: dir }, "serving")?.identity).toEqual({ role: "serving", name: "serving" });
    } finally {
      configureTransport({}, "serving");
      rmSync(mixed, { recursive: true, force: true });
    }
  });

  it("a missing file, or a certificate of another CA, stops loading with one line naming the file", () => {
    expect(() => as("nobody")).toThrow(/--tls-dir: cannot read the certificate .*nobody\.crt \(ENOENT\)/);
    const mixed = mkdtempSync(join(tmpdir(), "pangea-tls-mixed-"));
    writeFileSync(join(mixed, "ca.crt"), readFileSync(join(dir, "ca.crt")));
    writeFileSync(join(mixed, "trainer.crt"), readFileSync(join(other, "trainer.crt")));
    writeFileSync(join(mixed, "trainer.key"), readFileSync(join(other, "trainer.key")));
    try {
      expect(() => as("trainer", mixed)).toThrow(/trainer\.crt was not issued by the cluster CA/);
      expect(RpcErrors.is(catching(() => as("trainer", mixed)), "RPC_ERR_TLS_FILES")).toBe(true);
    } finally {
      rmSync(mixed, { recursive: true, force: true });
    }
  });
});

function catching(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

describe("mutual TLS with roles", () => {
  it("lets a trainer pull and push", async () => {
    expect(await call("pull", as("trainer"))).toEqual({ code: grpc.status.OK, details: "ok 3" });
    expect(await call("push", as("trainer-0"))).toEqual({ code: grpc.status.OK, details: "ok 3" });
  });

  it("refuses a method to a role it is not for, naming the method, the roles allowed and the caller's", async () => {
    const r = await call("push", as("compute"));
    expect(r.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(r.details).toBe("RPC_ERR_PERMISSION_DENIED: /pangea.v1.ParameterServer/Push is for trainer; the caller has a compute certificate");
    const e = await call("evict", as("trainer-0"));
    expect(e.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(e.details).toContain('is for admin; the caller has a trainer certificate "trainer-0"');
    expect((await call("evict", as("admin"))).code).toBe(grpc.status.OK);
  });

  it("refuses a caller without a certificate, or with one of another CA, as UNAUTHENTICATED", async () => {
    const anonymous = new (grpc.makeGenericClientConstructor(ParameterServerService, "ParameterServer"))(
      server.address,
      grpc.credentials.createSsl(readFileSync(join(dir, "ca.crt")), null, null, { checkServerIdentity: () => undefined }),
      CHANNEL_OPTIONS,
    ) as unknown as { push(b: Buffer, cb: (e: grpc.ServiceError | null) => void): void; close(): void };
    const err = await new Promise<grpc.ServiceError | null>((resolve) => anonymous.push(Buffer.from("x"), resolve));
    anonymous.close();
    expect(err?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(err?.details).toBe("RPC_ERR_UNAUTHENTICATED: /pangea.v1.ParameterServer/Push needs a client certificate of the cluster CA with role trainer");
    // A certificate of another cluster's CA: the client does not trust the server either, so nothing gets through.
    const foreign = await call("push", as("trainer", other));
    expect(foreign.code).toBe(grpc.status.UNAVAILABLE);
  });

  it("a plaintext client cannot talk to a TLS server", async () => {
    const r = await call("pull", null);
    expect(r.code).toBe(grpc.status.UNAVAILABLE);
  });

  it("a client checks the server's role: a compute certificate cannot pose as the orchestrator", async () => {
    const fake = await startServer("127.0.0.1", 0, (s) => s.addService(ParameterServerService, { pull: echo, push: echo, assign: echo, evict: echo, tableStats: echo }), [], undefined, { security: as("compute") });
    try {
      const client = parameterServerClient(fake.address, as("trainer"));
      const err = await unary<Buffer, Buffer>("orchestrator", client.pull.bind(client), Buffer.from("x"), 5_000).catch((e: grpc.ServiceError) => e);
      client.close();
      expect((err as grpc.ServiceError).code).toBe(grpc.status.UNAVAILABLE);
      expect((err as grpc.ServiceError).details).toContain("presented a compute certificate; expected orchestrator or shard");
    } finally {
      await fake.shutdown(100);
    }
  });
});

describe("why a TLS peer looks unreachable", () => {
  it("names a TLS server called in plaintext, a plaintext server called with TLS, and another CA", async () => {
    expect((await diagnoseConnection(server.address, null)).reason).toContain("it speaks TLS; give this process the cluster's certificates (--tls-dir)");
    expect((await diagnoseConnection(server.address, as("trainer", other))).reason).toContain("its certificate is not from the cluster CA in");
    expect((await diagnoseConnection(server.address, as("trainer"))).reason).toBe("");
    const plain = await startServer("127.0.0.1", 0, () => {}, [], undefined, { security: null });
    try {
      expect((await diagnoseConnection(plain.address, as("trainer"))).reason).toContain("it speaks plaintext, not TLS");
    } finally {
      await plain.shutdown(100);
    }
  });
});

describe("serving's API token", () => {
  const PredictClient = grpc.makeGenericClientConstructor(Predict, "PredictionService");
  const predict = async (meta: grpc.Metadata, creds: grpc.ChannelCredentials) => {
    const c = new PredictClient(tokenServer.address, creds, CHANNEL_OPTIONS) as unknown as { Predict(b: Buffer, m: grpc.Metadata, cb: (e: grpc.ServiceError | null, r?: Buffer) => void): void; close(): void };
    try {
      return await new Promise<{ code: number; details: string }>((resolve) => c.Predict(Buffer.from("x"), meta, (e, r) => resolve(e ? { code: e.code, details: e.details } : { code: 0, details: r!.toString() })));
    } finally {
      c.close();
    }
  };
  // A client outside the cluster: trusts the CA, presents no certificate.
  const plainTls = () => grpc.credentials.createSsl(readFileSync(join(dir, "ca.crt")));

  it("a client with the CA and the token is answered; without the token, or with a wrong one, UNAUTHENTICATED", async () => {
    const good = new grpc.Metadata();
    good.set("authorization", "Bearer s3cret-token");
    expect(await predict(good, plainTls())).toEqual({ code: 0, details: "ok 1" });
    const none = await predict(new grpc.Metadata(), plainTls());
    expect(none.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(none.details).toContain('needs "authorization: Bearer <token>"');
    const wrong = new grpc.Metadata();
    wrong.set("authorization", "Bearer s3cret-tokeN");
    expect((await predict(wrong, plainTls())).code).toBe(grpc.status.UNAUTHENTICATED);
  });

  it("a client with only the CA (trustOnlyCredentials) and the token is answered", async () => {
    const good = new grpc.Metadata();
    good.set("authorization", "bearer s3cret-token");
    expect(await predict(good, trustOnlyCredentials(dir, ["serving"]))).toEqual({ code: 0, details: "ok 1" });
  });

  it("an admin certificate passes without the token", async () => {
    expect((await predict(new grpc.Metadata(), channelCredentials(["serving"], as("admin")))).code).toBe(0);
  });
});
