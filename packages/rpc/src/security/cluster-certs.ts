import { createHash, createPrivateKey, generateKeyPairSync, randomBytes, sign, X509Certificate, type KeyObject } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { isIP } from "node:net";
import { join } from "node:path";
import { bitString, boolean, explicit, implicitPrimitive, namedBits, octetString, oid, sequence, set, time, toPem, unsignedInteger, utf8String } from "./der.js";
import { UsageError, makeDirs, unwritableDirReason } from "@pangea/kit";
import { SERVICE_ROLES, type ServiceRole } from "./roles.js";

// Object identifiers (RFC 5280, RFC 5758).
const ECDSA_WITH_SHA256 = "1.2.840.10045.4.3.2";
const AT_ORGANIZATION = "2.5.4.10";
const AT_ORG_UNIT = "2.5.4.11";
const AT_COMMON_NAME = "2.5.4.3";
const EXT_SUBJECT_KEY_ID = "2.5.29.14";
const EXT_KEY_USAGE = "2.5.29.15";
const EXT_SUBJECT_ALT_NAME = "2.5.29.17";
const EXT_BASIC_CONSTRAINTS = "2.5.29.19";
const EXT_AUTHORITY_KEY_ID = "2.5.29.35";
const EXT_EXT_KEY_USAGE = "2.5.29.37";
const KP_SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
const KP_CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";
// KeyUsage bit numbers.
const DIGITAL_SIGNATURE = 0;
const KEY_CERT_SIGN = 5;
const CRL_SIGN = 6;

export const CLUSTER_ORGANIZATION = "Pangea";
/**
 * The TLS server name our clients ask for, whatever address they dial (they
 * check the server's role, not its name); every certificate carries it, so
 * a client that does check names accepts it too.
 */
export const TLS_SERVER_NAME = "pangea";
export const CA_FILE = "ca.crt";
export const CA_KEY_FILE = "ca.key";

export interface IssuedPair {
  certPem: string;
  keyPem: string;
}

export interface CertificateRequest {
  /** The CN: the role's name for a certificate every worker of the role shares, or one worker's id. */
  name: string;
  role: ServiceRole;
  /** DNS names and IP addresses clients outside the cluster may reach it by (our own clients check the role instead). */
  hosts: readonly string[];
}

function name(fields: readonly [string, string][]): Buffer {
  return sequence(...fields.map(([type, value]) => set(sequence(oid(type), utf8String(value)))));
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return sequence(oid(id), ...(critical ? [boolean(true)] : []), octetString(value));
}

function keyId(spki: Buffer): Buffer {
  return createHash("sha1").update(spki).digest();
}

function subjectAltNames(hosts: readonly string[]): Buffer {
  return sequence(
    ...hosts.map((h) => {
      const family = isIP(h);
      if (family === 4) return implicitPrimitive(7, Buffer.from(h.split(".").map(Number)));
      if (family === 6) return implicitPrimitive(7, ipv6Bytes(h));
      return implicitPrimitive(2, Buffer.from(h, "ascii"));
    }),
  );
}

function ipv6Bytes(addr: string): Buffer {
  const [head, tail] = addr.includes("::") ? addr.split("::") : [addr, undefined];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g || "0", 16), i * 2));
  return out;
}

interface Signer {
  subject: Buffer;
  key: KeyObject;
  spki: Buffer;
}

function certificate(issuer: Signer, subject: Buffer, subjectKey: KeyObject, days: number, extensions: Buffer[]): string {
  const spki = subjectKey.export({ type: "spki", format: "der" });
  // A minute in the past so that a peer whose clock is slightly behind accepts it at once.
  const notBefore = new Date(Date.now() - 60_000);
  const notAfter = new Date(notBefore.getTime() + days * 86_400_000);
  const algorithm = sequence(oid(ECDSA_WITH_SHA256));
  const tbs = sequence(
    explicit(0, unsignedInteger(Buffer.from([2]))),
    unsignedInteger(Buffer.concat([Buffer.from([0x01]), randomBytes(15)])),
    algorithm,
    issuer.subject,
    sequence(time(notBefore), time(notAfter)),
    subject,
    spki,
    explicit(3, sequence(...extensions)),
  );
  const signature = sign("sha256", tbs, issuer.key);
  return toPem("CERTIFICATE", sequence(tbs, algorithm, bitString(signature)));
}

function newKey(): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairSync("ec", { namedCurve: "P-256" });
}

/** A self-signed certificate authority for one cluster. */
export function makeClusterCa(days = 3650): IssuedPair {
  const { privateKey, publicKey } = newKey();
  const spki = publicKey.export({ type: "spki", format: "der" });
  const subject = name([[AT_ORGANIZATION, CLUSTER_ORGANIZATION], [AT_COMMON_NAME, "Pangea cluster CA"]]);
  const certPem = certificate({ subject, key: privateKey, spki }, subject, publicKey, days, [
    extension(EXT_BASIC_CONSTRAINTS, true, sequence(boolean(true), unsignedInteger(Buffer.from([0])))),
    extension(EXT_KEY_USAGE, true, namedBits([KEY_CERT_SIGN, CRL_SIGN])),
    extension(EXT_SUBJECT_KEY_ID, false, octetString(keyId(spki))),
  ]);
  return { certPem, keyPem: privateKey.export({ type: "pkcs8", format: "pem" }) as string };
}

/** A certificate of `ca` for one service or worker: its role in OU, its name in CN; valid as TLS server and client. */
export function issueCertificate(ca: IssuedPair, req: CertificateRequest, days = 365): IssuedPair {
  const caCert = new X509Certificate(ca.certPem);
  const caKey = createPrivateKey(ca.keyPem);
  const caSpki = caCert.publicKey.export({ type: "spki", format: "der" });
  const issuer: Signer = { subject: Buffer.from(subjectDer(caCert)), key: caKey, spki: caSpki };
  const { privateKey, publicKey } = newKey();
  const spki = publicKey.export({ type: "spki", format: "der" });
  const subject = name([[AT_ORGANIZATION, CLUSTER_ORGANIZATION], [AT_ORG_UNIT, req.role], [AT_COMMON_NAME, req.name]]);
  const certPem = certificate(issuer, subject, publicKey, days, [
    extension(EXT_BASIC_CONSTRAINTS, true, sequence()),
    extension(EXT_KEY_USAGE, true, namedBits([DIGITAL_SIGNATURE])),
    extension(EXT_EXT_KEY_USAGE, false, sequence(oid(KP_SERVER_AUTH), oid(KP_CLIENT_AUTH))),
    extension(EXT_SUBJECT_KEY_ID, false, octetString(keyId(spki))),
    extension(EXT_AUTHORITY_KEY_ID, false, sequence(implicitPrimitive(0, keyId(caSpki)))),
    ...(req.hosts.length ? [extension(EXT_SUBJECT_ALT_NAME, false, subjectAltNames(req.hosts))] : []),
  ]);
  return { certPem, keyPem: privateKey.export({ type: "pkcs8", format: "pem" }) as string };
}

/**
 * The CA's subject exactly as encoded in its certificate (an issuer field
 * must match it byte for byte): the certificate's second SEQUENCE element
 * after version, serial and algorithm inside tbsCertificate.
 */
function subjectDer(cert: X509Certificate): Buffer {
  const der = cert.raw;
  const children = (at: number): { start: number; end: number }[] => {
    const out: { start: number; end: number }[] = [];
    const [, contentStart, contentEnd] = header(der, at);
    for (let p = contentStart; p < contentEnd; p = out[out.length - 1]!.end) out.push({ start: p, end: header(der, p)[2] });
    return out;
  };
  const tbs = children(0)[0]!;
  // tbsCertificate: [0] version, serial, signature algorithm, issuer, validity, subject, ...
  const fields = children(tbs.start);
  const subject = fields[5]!;
  return der.subarray(subject.start, subject.end);
}

/** [tag, content start, element end] of the DER element at `at`. */
function header(buf: Buffer, at: number): [number, number, number] {
  const tag = buf[at]!;
  let len = buf[at + 1]!;
  let p = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p + i]!;
    p += n;
  }
  return [tag, p, p + len];
}

export interface ClusterCertsOptions {
  /** Extra DNS names / IPs for every certificate (beyond localhost, loopback and the role's name). */
  hosts?: readonly string[];
  /** Per-worker certificates to make besides one per role, as role:name (e.g. trainer:trainer-0). */
  workers?: readonly { role: ServiceRole; name: string }[];
  days?: number;
  /** The flag that named the directory, for errors: pangea certs' --out (the default), pangea run's --tls-dir. */
  flag?: string;
}

export interface ClusterCertsResult {
  dir: string;
  written: string[];
  kept: string[];
  caReused: boolean;
}

/**
 * Makes (or completes) a directory of cluster credentials: ca.crt and ca.key,
 * and NAME.crt/NAME.key for each role and each named worker. Files already
 * there are kept, so issuing one more worker certificate later reuses the CA
 * and leaves the others as they are.
 */
export function writeClusterCerts(dir: string, opts: ClusterCertsOptions = {}): ClusterCertsResult {
  const flag = opts.flag ?? "--out";
  const unusable = unwritableDirReason(dir);
  if (unusable) throw new UsageError(`invalid ${flag}: ${unusable}`);
  makeDirs(dir, 0o700);
  const written: string[] = [];
  const kept: string[] = [];
  const caCertPath = join(dir, CA_FILE);
  const caKeyPath = join(dir, CA_KEY_FILE);
  // Half a pair is refused, never replaced: a new CA beside certificates of the old one (a services' directory,
  // which holds ca.crt but not ca.key) would leave every certificate there unverifiable.
  const half = (crt: string, key: string) => existsSync(join(dir, crt)) !== existsSync(join(dir, key)) ? (existsSync(join(dir, crt)) ? `${crt} but no ${key}` : `${key} but no ${crt}`) : null;
  const caHalf = half(CA_FILE, CA_KEY_FILE);
  if (caHalf) throw new UsageError(`${flag} ${dir} holds ${caHalf}; run pangea certs on the directory that holds the CA's key (a services' directory has none), or on an empty one for a new CA`);
  const requests = [...SERVICE_ROLES.map((role) => ({ role, name: role })), ...(opts.workers ?? [])];
  for (const { name: n } of requests) {
    const h = half(`${n}.crt`, `${n}.key`);
    if (h) throw new UsageError(`${flag} ${dir} holds ${h}; remove it (or bring its other half) and run pangea certs again`);
  }
  const caReused = existsSync(caCertPath) && existsSync(caKeyPath);
  const ca = caReused ? readCa(caCertPath, caKeyPath) : makeClusterCa();
  if (!caReused) {
    writeFileSync(caKeyPath, ca.keyPem, { mode: 0o600 });
    writeFileSync(caCertPath, ca.certPem, { mode: 0o644 });
    written.push(CA_FILE, CA_KEY_FILE);
  }
  for (const { role, name: n } of requests) {
    const certPath = join(dir, `${n}.crt`);
    const keyPath = join(dir, `${n}.key`);
    if (existsSync(certPath) && existsSync(keyPath)) {
      kept.push(`${n}.crt`);
      continue;
    }
    const hosts = [...new Set([TLS_SERVER_NAME, "localhost", "127.0.0.1", "::1", role, ...(opts.hosts ?? [])])];
    const pair = issueCertificate(ca, { name: n, role, hosts }, opts.days);
    writeFileSync(keyPath, pair.keyPem, { mode: 0o600 });
    writeFileSync(certPath, pair.certPem, { mode: 0o644 });
    written.push(`${n}.crt`, `${n}.key`);
  }
  return { dir, written, kept, caReused };
}

/** The CA's certificate and key as files hold them, checked to be PEM a certificate and key can be made from. */
function readCa(certPath: string, keyPath: string): { certPem: string; keyPem: string } {
  const certPem = readFileSync(certPath, "utf8");
  const keyPem = readFileSync(keyPath, "utf8");
  try {
    new X509Certificate(certPem);
  } catch (err) {
    throw new UsageError(`${certPath} is not a PEM certificate (${(err as Error).message})`);
  }
  try {
    createPrivateKey(keyPem);
  } catch (err) {
    throw new UsageError(`${keyPath} is not a PEM private key (${(err as Error).message})`);
  }
  return { certPem, keyPem };
}
