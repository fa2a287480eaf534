import { connect } from "node:tls";
import { TLS_SERVER_NAME } from "./cluster-certs.js";
import { answersHttp1, hostAndPort } from "./http1-probe.js";
import { article, type ServiceRole } from "./roles.js";
import { identityOf } from "./transport-security.js";

/** What this end trusts and presents; a client outside the cluster has only the CA. */
export interface TlsSide {
  dir: string;
  ca: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/**
 * Why a gRPC peer that did not become ready may really be unreachable, with
 * its kind: "tls" (one end speaks TLS, the other not, or a certificate of
 * another CA), "http1" (an HTTP/1 server answers there: a REST, dashboard or
 * metrics port given for a gRPC one), "role" (a server of this cluster, but
 * not of the role the caller expects); "" otherwise, with the network's
 * reason (a refused connection, a name that does not resolve) or none (no
 * answer in time, or a handshake that agrees with how we connect).
 */
export interface Diagnosis {
  kind: "" | "tls" | "http1" | "role";
  /** ": <why>", to follow "cannot reach X at host:port"; "" when nothing more is known. */
  reason: string;
}

const HTTP1_PLAINTEXT = ": it speaks HTTP/1, not gRPC: a REST, dashboard or metrics port?";
const HTTP1_TLS = ": it speaks HTTP/1 over TLS, not gRPC: serving's REST port?";

export async function diagnoseConnection(address: string, security: TlsSide | null, expected: readonly ServiceRole[] = [], timeoutMs = 1_500): Promise<Diagnosis> {
  const { host, port } = hostAndPort(address);
  const handshake = await new Promise<{ ok: true; alpn: string | false; role: ServiceRole | null } | { ok: false; error: string }>((resolve) => {
    let done = false;
    const finish = (r: { ok: true; alpn: string | false; role: ServiceRole | null } | { ok: false; error: string }) => {
      if (done) return;
      done = true;
      socket.destroy();
      resolve(r);
    };
    // HTTP/1.1 is offered beside HTTP/2 so that an HTTP/1 server behind TLS (serving's REST port) completes the
    // handshake too, rather than refusing it for want of a common protocol.
    const socket = connect({ host, port, servername: TLS_SERVER_NAME, ALPNProtocols: ["h2", "http/1.1"], ...(security ? { ca: security.ca, ...(security.cert && security.key ? { cert: security.cert, key: security.key } : {}) } : {}), rejectUnauthorized: security !== null });
    socket.setTimeout(timeoutMs, () => finish({ ok: false, error: "timeout" }));
    socket.once("secureConnect", () => finish({ ok: true, alpn: socket.alpnProtocol ?? false, role: identityOf(socket.getPeerCertificate())?.role ?? null }));
    socket.once("error", (err: NodeJS.ErrnoException) => finish({ ok: false, error: `${err.code ?? ""} ${err.message}` }));
  });
  if (handshake.ok) {
    if (handshake.alpn !== "h2") return { kind: "http1", reason: HTTP1_TLS };
    if (!security) return { kind: "tls", reason: ": it speaks TLS; give this process the cluster's certificates (--tls-dir)" };
    if (expected.length && !(handshake.role && expected.includes(handshake.role))) {
      return { kind: "role", reason: `: it presented ${handshake.role ? `${article(handshake.role)} ${handshake.role} certificate` : "a certificate with no Pangea role"}; expected ${expected.join(" or ")}` };
    }
    return { kind: "", reason: "" };
  }
  const { error } = handshake;
  // The network's own answer, said: a refused connection (nothing listens there) reads otherwise as a slow peer.
  if (/ECONNREFUSED/.test(error)) return { kind: "", reason: ": connection refused (nothing listens at that port)" };
  if (/ENOTFOUND/.test(error)) return { kind: "", reason: ": the host name does not resolve" };
  if (/EAI_AGAIN/.test(error)) return { kind: "", reason: ": the name server did not answer" };
  if (/EHOSTUNREACH|ENETUNREACH/.test(error)) return { kind: "", reason: ": no route to the host" };
  if (error === "timeout" || /ETIMEDOUT/.test(error)) return { kind: "", reason: "" };
  const plaintext = /wrong version number|packet length too long|WRONG_VERSION/i.test(error);
  // Not TLS (a server that hangs up on a TLS hello may be one too): an HTTP/1 port, or a plaintext gRPC server.
  if ((plaintext || /ECONNRESET|disconnected before secure/i.test(error)) && (await answersHttp1(address, timeoutMs))) return { kind: "http1", reason: HTTP1_PLAINTEXT };
  if (security && plaintext) return { kind: "tls", reason: ": it speaks plaintext, not TLS; start it with --tls-dir too, or drop --tls-dir here" };
  if (security && /SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|CERT_SIGNATURE_FAILURE/.test(error)) {
    return { kind: "tls", reason: `: its certificate is not from the cluster CA in ${security.dir}/ca.crt` };
  }
  return { kind: "", reason: "" };
}

/** Whether what answers there is another kind of port (an HTTP/1 one, or a server of another role): the caller's "--flag takes ..." hint applies. */
export function isWrongPort(d: Diagnosis): boolean {
  return d.kind === "http1" || d.kind === "role";
}
