import { z } from "zod";
import { integerNumber, parseConfig, usageText, type FlagTable } from "@pangea/kit";
import { isServiceRole, writeClusterCerts, type ServiceRole } from "@pangea/rpc";

export const CERTS_FLAGS: FlagTable = {
  out: { description: "directory to write ca.crt, ca.key and NAME.crt/NAME.key into (files already there are kept)", default: ".pangea/tls" },
  hosts: { description: "extra DNS names/IPs put in every certificate, for clients outside the cluster that check host names (comma-separated)" },
  workers: { description: "per-worker certificates besides one per role, as role:name[,role:name...] (e.g. trainer:trainer-0): such a certificate may act only for that worker id" },
  days: { description: "validity of the service certificates in days (the CA: 10 years)", default: "365" },
};

const workerList = z
  .string()
  .regex(/^[a-z]+:[A-Za-z0-9._:@-]{1,128}(,[a-z]+:[A-Za-z0-9._:@-]{1,128})*$/, "expected role:name[,role:name...]")
  .transform((s, ctx) => {
    const seen = new Set<string>();
    return s.split(",").map((w) => {
      const [role, ...rest] = w.split(":");
      if (!isServiceRole(role)) ctx.addIssue({ code: "custom", message: `unknown role "${role}" (expected orchestrator, shard, compute, trainer, serving or admin)` });
      const name = rest.join(":");
      // One file per name (<name>.crt): the second would overwrite the first.
      if (isServiceRole(name) || name === "ca") ctx.addIssue({ code: "custom", message: `worker name ${name} is the name of a role's or the CA's certificate (${name}.crt); give the worker another name` });
      else if (seen.has(name)) ctx.addIssue({ code: "custom", message: `worker ${name} is named twice (each gets one certificate, ${name}.crt)` });
      seen.add(name);
      return { role: role as ServiceRole, name };
    });
  });

const schema = z.object({
  out: z.string().min(1, "expected a path").default(".pangea/tls"),
  hosts: z.string().regex(/^[A-Za-z0-9.:_-]+(,[A-Za-z0-9.:_-]+)*$/, "expected host names or IPs, comma-separated").optional(),
  workers: workerList.optional(),
  days: integerNumber("expected days").pipe(z.number().min(1, "expected at least 1 day").max(3650, "expected at most 3650 days")).default(365),
});

const certsUsage = () =>
  usageText(
    "pangea certs",
    "Make a cluster CA and a certificate per role (orchestrator, shard, compute, trainer, serving, admin) for mutual TLS; give a service the directory with --tls-dir (env PANGEA_TLS_DIR).",
    CERTS_FLAGS,
  );

/** `pangea certs [--out DIR] [--hosts ...] [--workers role:name,...] [--days N]`. */
export function certsCommand(argv: string[]): number {
  const c = parseConfig(schema, CERTS_FLAGS, argv, {});
  if (!c) {
    process.stdout.write(certsUsage());
    return 0;
  }
  const r = writeClusterCerts(c.out, { hosts: c.hosts?.split(",") ?? [], workers: c.workers ?? [], days: c.days });
  process.stdout.write(`${r.caReused ? "reused the CA in" : "made a new cluster CA in"} ${c.out}\n`);
  if (r.written.length) process.stdout.write(`wrote ${r.written.join(", ")}\n`);
  if (r.kept.length) process.stdout.write(`kept ${r.kept.join(", ")} (already there)\n`);
  process.stdout.write(`keep ca.key away from the services: only 'pangea certs' needs it. Each service needs ca.crt and its own NAME.crt/NAME.key.\n`);
  return 0;
}
