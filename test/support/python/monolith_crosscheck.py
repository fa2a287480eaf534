"""Independent reader/writer of Monolith records for Pangea's cross-check tests.

Uses Google's protobuf runtime (Debian's python3-protobuf) with classes that
protoc generated from schemas/proto/idl. Usage:
  monolith_crosscheck.py read KIND FILE        print every record as JSON lines
  monolith_crosscheck.py write-instances SPEC OUT   write Instances from a JSON spec
The pb framing here is written from its description (sort id header, then a
little-endian uint64 size), independently of Pangea's TypeScript.
"""
import json
import struct
import sys

from idl.matrix.proto import example_pb2, proto_parser_pb2


def frames(data):
    at = 0
    while at < len(data):
        (sort_len,) = struct.unpack_from("<Q", data, at)
        at += 8 + sort_len
        (size,) = struct.unpack_from("<Q", data, at)
        at += 8
        yield data[at:at + size]
        at += size


def read(kind, path):
    with open(path, "rb") as f:
        data = f.read()
    for rec in frames(data):
        if kind == "example":
            ex = example_pb2.Example.FromString(rec)
            out = {"ids": {}, "floats": {}, "labels": list(ex.label)}
            for nf in ex.named_feature:
                which = nf.feature.WhichOneof("type")
                if which == "fid_v2_list":
                    out["ids"][nf.name] = [str(v) for v in nf.feature.fid_v2_list.value]
                elif which == "float_list":
                    out["floats"][nf.name] = list(nf.feature.float_list.value)
        else:
            ins = proto_parser_pb2.Instance.FromString(rec)
            out = {"fids": [str(v) for v in ins.fid], "labels": list(ins.label),
                   "floats": {f.name: list(f.float_value) for f in ins.feature}}
        print(json.dumps(out))


def write_instances(spec_path, out_path):
    with open(spec_path) as f:
        spec = json.load(f)
    with open(out_path, "wb") as out:
        for s in spec:
            ins = proto_parser_pb2.Instance()
            ins.fid.extend(int(v) for v in s["fids"])
            ins.label.extend(s["labels"])
            for name, values in s["floats"].items():
                col = ins.feature.add()
                col.name = name
                col.float_value.extend(values)
            body = ins.SerializeToString()
            sort_id = s.get("sort_id", "").encode()
            out.write(struct.pack("<Q", len(sort_id)) + sort_id + struct.pack("<Q", len(body)) + body)


if __name__ == "__main__":
    if sys.argv[1] == "read":
        read(sys.argv[2], sys.argv[3])
    else:
        write_instances(sys.argv[2], sys.argv[3])
