import type { PeerCertificate } from "node:tls";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createPrivateKey, createPublicKey, X509Certificate } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { CA_FILE } from "./cluster-certs.js";
import { article, isServiceRole, type PeerIdentity, type ServiceRole } from "./roles.js";
import { RpcErrors } from "../errors.js";

/** One process's credentials: the cluster CA it trusts and the certificate it presents. */
export interface TransportSecurity {
  readonly dir: string;
  readonly identity: PeerIdentity;
  readonly ca: Buffer;
  readonly cert: Buffer;
  readonly key: Buffer;
}

function read(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw RpcErrors.create("RPC_ERR_TLS_FILES", `--tls-dir: cannot read ${what} ${path} (${(err as NodeJS.ErrnoException).code ?? String(err)})`, {
      hint: "make the cluster's certificates with: pangea certs --out DIR",
    });
  }
}

/** The subject field of a certificate as one string (Node gives an array when a field repeats; we never issue that). */
function field(subject: Record<string, string | string[] | undefined> | undefined, key: string): string | undefined {
  const v = subject?.[key];
  return typeof v === "string" ? v : undefined;
}

/** Role and name from a peer certificate's subject, or null when they are not ours (no role OU, or an unknown one). */
export function identityOf(cert: Pick<PeerCertificate, "subject"> | undefined): PeerIdentity | null {
  const subject = cert?.subject as unknown as Record<string, string | string[] | undefined> | undefined;
  const role = field(subject, "OU");
  const name = field(subject, "CN");
  return isServiceRole(role) && name ? { role, name } : null;
}

/**
 * Reads DIR/ca.crt and DIR/NAME.crt + NAME.key, and checks now what a
 * handshake would find later: the certificate is the CA's, in date, and
 * carries a role.
 */
export function loadTransportSecurity(dir: string, name: string): TransportSecurity {
  const caPath = join(dir, CA_FILE);
  const certPath = join(dir, `${name}.crt`);
  const keyPath = join(dir, `${name}.key`);
  const ca = read(caPath, "the cluster CA");
  const cert = read(certPath, "the certificate");
  const key = read(keyPath, "the private key");
  let parsed: X509Certificate;
  let caCert: X509Certificate;
  try {
    caCert = new X509Certificate(ca);
  } catch (err) {
    throw RpcErrors.create("RPC_ERR_TLS_FILES", `${caPath}: not a PEM certificate (${(err as Error).message})`);
  }
  try {
    parsed = new X509Certificate(cert);
  } catch (err) {
    throw RpcErrors.create("RPC_ERR_TLS_FILES", `${certPath}: not a PEM certificate (${(err as Error).message})`);
  }
  if (!parsed.checkIssued(caCert) || !parsed.verify(caCert.publicKey)) {
    throw RpcErrors.create("RPC_ERR_TLS_FILES", `${certPath} was not issued by the cluster CA ${caPath}`);
  }
  let publicOfKey: Buffer;
  try {
    publicOfKey = createPublicKey(createPrivateKey(key)).export({ type: "spki", format: "der" });
  } catch (err) {
    throw RpcErrors.create("RPC_ERR_TLS_FILES", `${keyPath}: not a PEM private key (${(err as Error).message})`);
  }
  if (!publicOfKey.equals(parsed.publicKey.export({ type: "spki", format: "der" }))) {
    throw RpcErrors.create("RPC_ERR_TLS_FILES", `${keyPath} is not the private key of ${certPath} (the two come from different 'pangea certs' runs?)`);
  }
  const now = Date.now();
  if (now > Date.parse(parsed.validTo) || now < Date.parse(parsed.validFrom)) {
    throw RpcErrors.create("RPC_ERR_TLS_FILES", `${certPath} is valid from ${parsed.validFrom} to ${parsed.validTo}, not now`);
  }
  const subject = Object.fromEntries(parsed.subject.split("\n").map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]));
  const identity = identityOf({ subject } as Pick<PeerCertificate, "subject">);
  if (!identity) {
    throw RpcErrors.create("RPC_ERR_TLS_FILES", `${certPath}: subject "${parsed.subject.replace(/\n/g, ", ")}" carries no Pangea role in OU (expected one of orchestrator, shard, compute, trainer, serving, admin)`);
  }
  return Object.freeze({ dir, identity, ca, cert, key });
}

// One process, one identity: main.ts sets it once from --tls-dir before any
// server or client exists, and every client and server of the process uses it.
let processSecurity: TransportSecurity | null = null;

export function useTransportSecurity(security: TransportSecurity | null): void {
  processSecurity = security;
}

export function transportSecurity(): TransportSecurity | null {
  return processSecurity;
}

/**
 * Credentials for a channel to a peer of one of `expected` roles. The peer is
 * checked by its certificate's role, not its host name: clusters reach each
 * other by container names, pod IPs and loopback alike.
 */
export function channelCredentials(expected: readonly ServiceRole[], security: TransportSecurity | null = processSecurity): grpc.ChannelCredentials {
  if (!security) return grpc.credentials.createInsecure();
  return grpc.credentials.createSsl(security.ca, security.key, security.cert, { checkServerIdentity: roleCheck(expected) });
}

/**
 * Credentials of a client outside the cluster: it trusts the CA (DIR/ca.crt)
 * and checks the server's role, but presents no certificate (serving's
 * client API with a bearer token).
 */
export function trustOnlyCredentials(dir: string, expected: readonly ServiceRole[]): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(read(join(dir, CA_FILE), "the cluster CA"), null, null, { checkServerIdentity: roleCheck(expected) });
}

function roleCheck(expected: readonly ServiceRole[]): (host: string, cert: PeerCertificate) => Error | undefined {
  return (_host, cert) => {
    const peer = identityOf(cert);
    if (peer && expected.includes(peer.role)) return undefined;
    return new Error(`the server presented ${peer ? `${article(peer.role)} ${peer.role} certificate` : "a certificate with no Pangea role"}; expected ${expected.join(" or ")}`);
  };
}

/**
 * Server credentials: TLS with this process's certificate; a client
 * certificate is asked for but not required at the handshake, so that a call
 * without one gets a clear UNAUTHENTICATED from the method's check (and
 * serving's public API and health checks stay open to plain TLS clients).
 */
export function serverCredentials(security: TransportSecurity | null = processSecurity): grpc.ServerCredentials {
  if (!security) return grpc.ServerCredentials.createInsecure();
  const provider = staticProvider(security);
  return grpc.experimental.createCertificateProviderServerCredentials(provider, provider, false);
}

// grpc-js subscribes to a provider before it starts watching for the result,
// so an answer given synchronously is lost: answer on the next tick.
function staticProvider(s: TransportSecurity): grpc.experimental.CertificateProvider {
  return {
    addCaCertificateListener: (l) => process.nextTick(() => l({ caCertificate: s.ca })),
    removeCaCertificateListener: () => {},
    addIdentityCertificateListener: (l) => process.nextTick(() => l({ certificate: s.cert, privateKey: s.key })),
    removeIdentityCertificateListener: () => {},
  };
}

/** Any server call: grpc-js gives each the TLS context of its connection. */
export interface AuthenticatedCall {
  getAuthContext?: () => { sslPeerCertificate?: PeerCertificate } | null;
}

/** The verified identity behind a server call, or null (no certificate, one the CA did not sign, or an insecure server). */
export function peerIdentity(call: AuthenticatedCall): PeerIdentity | null {
  return identityOf(call.getAuthContext?.()?.sslPeerCertificate);
}

/**
 * Sets this process's credentials from its --tls-dir/--tls-name (the
 * certificate named after the service's role unless --tls-name says
 * otherwise); without --tls-dir the process speaks plaintext.
 */
export function configureTransport(config: { tlsDir?: string | undefined; tlsName?: string | undefined }, role: ServiceRole): TransportSecurity | null {
  const security = config.tlsDir ? loadTransportSecurity(config.tlsDir, config.tlsName ?? role) : null;
  if (security && security.identity.role !== role) {
    throw RpcErrors.create(
      "RPC_ERR_TLS_FILES",
      `${join(security.dir, `${config.tlsName ?? role}.crt`)} carries the role ${security.identity.role} (its OU); this process is the ${role}: give it a ${role} certificate`,
    );
  }
  useTransportSecurity(security);
  return security;
}
