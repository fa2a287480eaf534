#!/usr/bin/env node
// Usage: node health-probe.js host:port [service]
// Exits 0 when grpc.health.v1 reports SERVING, 1 otherwise: for container
// HEALTHCHECKs and scripts, without installing grpc_health_probe.
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { protoPath } from "grpc-health-check";
import { TLS_SERVER_NAME } from "./security/cluster-certs.js";
import { SERVICE_ROLES } from "./security/roles.js";
import { trustOnlyCredentials } from "./security/transport-security.js";

const [address, service = ""] = process.argv.slice(2);
if (!address || address.startsWith("-")) {
  process.stderr.write("usage: health-probe host:port [service]\n");
  process.exit(2);
}
const def = protoLoader.loadSync(protoPath, { enums: String });
const Health = (grpc.loadPackageDefinition(def) as any).grpc.health.v1.Health;
// With TLS on (PANGEA_TLS_DIR, as the service itself reads it), the probe trusts the cluster CA;
// the health service is public, so it needs no certificate of its own.
const tlsDir = process.env.PANGEA_TLS_DIR;
const credentials = tlsDir ? trustOnlyCredentials(tlsDir, SERVICE_ROLES) : grpc.credentials.createInsecure();
const client = new Health(address, credentials, { "grpc.ssl_target_name_override": TLS_SERVER_NAME });
client.check({ service }, { deadline: Date.now() + 3_000 }, (err: grpc.ServiceError | null, res?: { status: string }) => {
  if (err) {
    process.stderr.write(`health-probe: ${address}: ${grpc.status[err.code]}: ${err.details}\n`);
    process.exit(1);
  }
  process.stdout.write(`${address} ${service || "(server)"}: ${res!.status}\n`);
  process.exit(res!.status === "SERVING" ? 0 : 1);
});
