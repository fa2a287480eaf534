// The pointer layout of schemas/pangea.capnp, read from the Cap'n Proto
// compiler's own CodeGeneratorRequest (`capnp compile -o-`), written as a
// TypeScript table. The schema package's bounds walk names the fields of a
// refused message from it; generating it keeps those names from drifting
// from the schema when a field is added.
import { execFileSync } from "node:child_process";
import * as capnp from "capnp-es";
import { CodeGeneratorRequest } from "capnp-es/capnp/schema";

// Type.which() values that occupy a pointer slot.
const TEXT = 12, DATA = 13, LIST = 14, STRUCT = 16, INTERFACE = 17, ANY_POINTER = 18;
const POINTER_TYPES = new Set([TEXT, DATA, LIST, STRUCT, INTERFACE, ANY_POINTER]);
const NO_DISCRIMINANT = 65535;

/** The struct a pointer of this type leads to (a list's struct elements included), or null. */
function structTarget(type) {
  if (type.which() === STRUCT) return type.struct.typeId;
  if (type.which() === LIST && type.list.elementType.which() === STRUCT) return type.list.elementType.struct.typeId;
  return null;
}

export function capnpPointerTable(root, schemaFile, header) {
  const buf = execFileSync("capnp", ["compile", "-o-", "--src-prefix=schemas", schemaFile], { cwd: root, maxBuffer: 1 << 26 });
  const req = new capnp.Message(buf, false).getRoot(CodeGeneratorRequest);
  const nodes = new Map();
  for (const node of req.nodes) nodes.set(node.id, node);
  const shortName = (node) => node.displayName.slice(node.displayNamePrefixLength);

  const structs = [];
  let payload = null;
  let messageTypes = null;
  for (const node of req.nodes) {
    if (node._isEnum && shortName(node) === "MessageType") messageTypes = node.enum.enumerants.map((e) => e.name);
    if (!node._isStruct) continue;
    const s = node.struct;
    if (s.isGroup) {
      if (node.displayName.endsWith("Message.payload")) {
        payload = s.fields.map((f) => {
          const target = structTarget(f.slot.type);
          if (f.discriminantValue === NO_DISCRIMINANT || target === null) throw new Error(`Message.payload.${f.name}: expected a struct member of the union`);
          return [f.discriminantValue, f.name, shortName(nodes.get(target))];
        });
      }
      continue;
    }
    const ptrs = new Array(s.pointerCount).fill(null);
    for (const f of s.fields) {
      if (!f._isSlot) {
        if (shortName(node) !== "Message") throw new Error(`${shortName(node)}.${f.name}: groups are only expected in Message`);
        continue;
      }
      if (!POINTER_TYPES.has(f.slot.type.which())) continue;
      const target = structTarget(f.slot.type);
      ptrs[f.slot.offset] = target === null ? [f.name] : [f.name, shortName(nodes.get(target))];
    }
    structs.push([shortName(node), ptrs]);
  }
  if (!payload || !messageTypes) throw new Error("schemas/pangea.capnp: expected Message.payload and enum MessageType");
  // The bounds walk picks a payload's shape by Message.type, so each type must name the union member of the same number.
  for (const [d, name] of payload) {
    if (messageTypes[d] !== name) throw new Error(`MessageType ${d} is ${messageTypes[d]}, but Message.payload member ${d} is ${name}`);
  }

  const lines = [header.trimEnd(), "// From the Cap'n Proto compiler's view of schemas/pangea.capnp (scripts/capnp-pointers.mjs).", ""];
  lines.push("/** Each struct's pointer slots by index: the field's name, and the struct it (or its list's elements) points to. */");
  lines.push("export const STRUCT_POINTERS: Readonly<Record<string, readonly (readonly [string, string?] | null)[]>> = {");
  for (const [name, ptrs] of structs) lines.push(`  ${name}: [${ptrs.map((p) => (p ? JSON.stringify(p) : "null")).join(", ")}],`);
  lines.push("};", "");
  lines.push("/** Message.payload's members by MessageType: [field, struct]. */");
  lines.push("export const PAYLOAD_MEMBERS: Readonly<Record<number, readonly [string, string]>> = {");
  for (const [d, name, target] of payload) lines.push(`  ${d}: [${JSON.stringify(name)}, ${JSON.stringify(target)}],`);
  lines.push("};", "");
  return lines.join("\n");
}
