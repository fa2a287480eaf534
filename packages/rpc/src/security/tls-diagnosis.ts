import { connect } from "node:tls";
import { TLS_SERVER_NAME } from "./cluster-certs.js";

/**
 * Why a peer that did not become ready may really be unreachable: one TLS
 * handshake to its address tells a plaintext server from a TLS one, and a
 * certificate of this cluster's CA from another. Empty when the handshake
 * says nothing more (nothing listens, or it agrees with how we connect).
 */
/** What this end trusts and presents; a client outside the cluster has only the CA. */
export interface TlsSide {
  dir: string;
  ca: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

// HTTP/1.1 is offered beside HTTP/2 so that an HTTP/1 server behind TLS (serving's REST port) completes the
// handshake too, rather than refusing it for want of a common protocol: the question here is TLS or not.
export function tlsMismatch(address: string, security: TlsSide | null, timeoutMs = 1_500): Promise<string> {
  const at = address.lastIndexOf(":");
  const host = address.slice(0, at).replace(/^\[|\]$/g, "");
  const port = Number(address.slice(at + 1));
  return new Promise((resolve) => {
    let done = false;
    const finish = (why: string) => {
      if (done) return;
      done = true;
      socket.destroy();
      resolve(why);
    };
    const socket = connect({ host, port, servername: TLS_SERVER_NAME, ALPNProtocols: ["h2", "http/1.1"], ...(security ? { ca: security.ca, ...(security.cert && security.key ? { cert: security.cert, key: security.key } : {}) } : {}), rejectUnauthorized: security !== null });
    socket.setTimeout(timeoutMs, () => finish(""));
    socket.once("secureConnect", () => finish(security ? "" : ": it speaks TLS; give this process the cluster's certificates (--tls-dir)"));
    socket.once("error", (err: NodeJS.ErrnoException) => {
      const text = `${err.code ?? ""} ${err.message}`;
      if (/ECONNREFUSED|EHOSTUNREACH|ENOTFOUND|ETIMEDOUT/.test(text)) return finish("");
      if (security && /wrong version number|packet length too long|WRONG_VERSION/i.test(text)) return finish(": it speaks plaintext, not TLS; start it with --tls-dir too, or drop --tls-dir here");
      if (security && /SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|CERT_SIGNATURE_FAILURE/.test(text)) {
        return finish(`: its certificate is not from the cluster CA in ${security.dir}/ca.crt`);
      }
      finish("");
    });
  });
}
