import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { answersHttp1, channelCredentials, diagnoseConnection, loadTransportSecurity, waitReady, writeClusterCerts } from "../src/index.js";

/**
 * What answers at an address where a gRPC channel did not become ready (the
 * wrong-port messages of every client, `pangea status` and `pangea predict`
 * among them), against real HTTP/1, gRPC and silent servers.
 */
const dir = mkdtempSync(join(tmpdir(), "pangea-probe-"));
const closers: Array<() => void> = [];
const at = (s: HttpServer | TcpServer) => `127.0.0.1:${(s.address() as AddressInfo).port}`;
const listening = <S extends HttpServer | TcpServer>(s: S): Promise<S> => new Promise((resolve) => s.listen(0, "127.0.0.1", () => (closers.push(() => s.close()), resolve(s))));

async function grpcServer(credentials: grpc.ServerCredentials): Promise<string> {
  const server = new grpc.Server();
  const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", credentials, (err, p) => (err ? reject(err) : resolve(p))));
  closers.push(() => server.forceShutdown());
  return `127.0.0.1:${port}`;
}

let tlsFiles: { key: Buffer; cert: Buffer; ca: Buffer };
beforeAll(() => {
  writeClusterCerts(dir);
  tlsFiles = { key: readFileSync(join(dir, "serving.key")), cert: readFileSync(join(dir, "serving.crt")), ca: readFileSync(join(dir, "ca.crt")) };
});
afterAll(() => {
  for (const close of closers) close();
  rmSync(dir, { recursive: true, force: true });
});

describe("answersHttp1", () => {
  it("is true for a plaintext HTTP/1 server, false for one behind TLS", async () => {
    const http = await listening(createHttpServer((_req, res) => res.end("hi")));
    expect(await answersHttp1(at(http))).toBe(true);
    const https = await listening(createHttpsServer({ key: tlsFiles.key, cert: tlsFiles.cert }, (_req, res) => res.end("hi")));
    expect(await answersHttp1(at(https))).toBe(false);
  });

  it("diagnoses an HTTP/1 port as such, plaintext or TLS, with or without the cluster's certificates", async () => {
    const http = at(await listening(createHttpServer((_req, res) => res.end("hi"))));
    const https = at(await listening(createHttpsServer({ key: tlsFiles.key, cert: tlsFiles.cert }, (_req, res) => res.end("hi"))));
    const admin = loadTransportSecurity(dir, "admin");
    for (const security of [null, admin]) {
      expect(await diagnoseConnection(http, security)).toEqual({ kind: "http1", reason: ": it speaks HTTP/1, not gRPC: a REST, dashboard or metrics port?" });
      // The handshake offers HTTP/1.1 beside HTTP/2: an HTTP/1-only TLS server would refuse one that offers only h2.
      expect(await diagnoseConnection(https, security)).toEqual({ kind: "http1", reason: ": it speaks HTTP/1 over TLS, not gRPC: serving's REST port?" });
    }
  });

  it("diagnoses a gRPC server of another role, TLS against plaintext, and says nothing of the right server", async () => {
    const admin = loadTransportSecurity(dir, "admin");
    const secure = await grpcServer(grpc.ServerCredentials.createSsl(tlsFiles.ca, [{ private_key: tlsFiles.key, cert_chain: tlsFiles.cert }], false));
    expect(await diagnoseConnection(secure, admin, ["orchestrator"])).toEqual({ kind: "role", reason: ": it presented a serving certificate; expected orchestrator" });
    expect(await diagnoseConnection(secure, admin, ["serving"])).toEqual({ kind: "", reason: "" });
    expect(await diagnoseConnection(secure, null)).toEqual({ kind: "tls", reason: ": it speaks TLS; give this process the cluster's certificates (--tls-dir)" });
    const plain = await grpcServer(grpc.ServerCredentials.createInsecure());
    expect(await diagnoseConnection(plain, admin)).toEqual({ kind: "tls", reason: ": it speaks plaintext, not TLS; start it with --tls-dir too, or drop --tls-dir here" });
    expect(await diagnoseConnection(plain, null)).toEqual({ kind: "", reason: "" });
  });

  it("is false for a gRPC server", async () => {
    expect(await answersHttp1(await grpcServer(grpc.ServerCredentials.createInsecure()))).toBe(false);
  });

  it("is false where nothing listens, and within its timeout where a server never answers", async () => {
    const gone = await listening(createTcpServer());
    const address = at(gone);
    await new Promise((r) => gone.close(r));
    expect(await answersHttp1(address)).toBe(false);
    const silent = await listening(createTcpServer(() => undefined));
    const t = performance.now();
    expect(await answersHttp1(at(silent), 300)).toBe(false);
    expect(await diagnoseConnection(at(silent), null, [], 300)).toEqual({ kind: "", reason: "" });
    // Two waits of 300 ms: well under the default timeouts (1 and 1.5 s).
    expect(performance.now() - t).toBeLessThan(1_500);
  });

  it("waitReady follows its message with the caller's wrong-port hint for an HTTP/1 port or another role, not for a TLS mismatch", async () => {
    const admin = loadTransportSecurity(dir, "admin");
    const hint = " (--orchestrator takes the orchestrator's gRPC port)";
    const failure = async (address: string, security: typeof admin | null) => {
      const client = new grpc.Client(address, channelCredentials(["orchestrator"], security));
      try {
        await waitReady(client, "orchestrator", address, 300, security, ["orchestrator"], hint);
        throw new Error("waitReady did not fail");
      } catch (err) {
        return { code: (err as { code?: string }).code, message: (err as Error).message };
      } finally {
        client.close();
      }
    };
    const http = at(await listening(createHttpServer((_req, res) => res.end("hi"))));
    expect(await failure(http, null)).toEqual({ code: "RPC_ERR_UNREACHABLE", message: `cannot reach orchestrator at ${http} within 0.3s: it speaks HTTP/1, not gRPC: a REST, dashboard or metrics port?${hint}` });
    const serving = await grpcServer(grpc.ServerCredentials.createSsl(tlsFiles.ca, [{ private_key: tlsFiles.key, cert_chain: tlsFiles.cert }], false));
    expect(await failure(serving, admin)).toEqual({ code: "RPC_ERR_WRONG_PEER", message: `cannot reach orchestrator at ${serving} within 0.3s: it presented a serving certificate; expected orchestrator${hint}` });
    expect(await failure(serving, null)).toEqual({ code: "RPC_ERR_UNREACHABLE", message: `cannot reach orchestrator at ${serving} within 0.3s: it speaks TLS; give this process the cluster's certificates (--tls-dir)` });
  });
});
