import { slotOfV2 } from "@pangea/features";
import { WireWriter } from "./protowire-writer.js";
import { LABEL_FEATURE } from "./monolith-decode.js";

/** A sample in the shape Monolith's writers start from: named id lists, named float values, labels. */
export interface PlainSample {
  /** Feature name -> v2 ids as (lo, hi) word pairs. */
  ids: Map<string, Uint32Array>;
  floats: Map<string, number[]>;
  labels: number[];
  weight?: number;
}

/** The v1 form of a v2 id with a slot below 1024: slot to bits 63..54, hash bits kept. */
export function v2ToV1Words(lo: number, hi: number): [number, number] {
  const slot = slotOfV2(hi);
  return [lo, ((slot << 22) | (hi & 0xffff)) >>> 0];
}

/** parser.proto.Instance: ids as v1 fids in `fid`, floats as named feature columns. */
export function encodeInstance(s: PlainSample): Uint8Array {
  const w = new WireWriter();
  const all: number[] = [];
  for (const ids of s.ids.values()) {
    for (let i = 0; i < ids.length; i += 2) all.push(...v2ToV1Words(ids[i]!, ids[i + 1]!));
  }
  w.packedFixed64(1, Uint32Array.from(all), all.length / 2);
  w.packedFloat(3, s.labels);
  if (s.weight !== undefined) w.tag(4, 5).float(s.weight);
  for (const [name, values] of s.floats) {
    w.message(9, (f) => f.string(1, name).packedFloat(3, values));
  }
  return w.finish();
}

function writeExampleFeature(f: WireWriter, ids: Uint32Array | undefined, floats: number[] | undefined): void {
  if (ids) f.message(2, (l) => l.packedFixed64(1, ids, ids.length / 2));
  if (floats) f.message(3, (l) => l.packedFloat(1, floats));
}

/** monolith.io.proto.Example: ids as fid_v2_list, floats as float_list, labels in `label`. */
export function encodeExample(s: PlainSample): Uint8Array {
  const w = new WireWriter();
  for (const [name, ids] of s.ids) w.message(1, (nf) => nf.string(1, name).message(2, (f) => writeExampleFeature(f, ids, undefined)));
  for (const [name, values] of s.floats) w.message(1, (nf) => nf.string(1, name).message(2, (f) => writeExampleFeature(f, undefined, values)));
  w.packedFloat(101, s.labels);
  if (s.weight !== undefined) w.tag(102, 5).float(s.weight);
  return w.finish();
}

/** monolith.io.proto.ExampleBatch: one INDIVIDUAL feature list per name, labels as the __LABEL__ list. */
export function encodeExampleBatch(samples: readonly PlainSample[]): Uint8Array {
  const w = new WireWriter();
  const first = samples[0];
  if (first) {
    for (const name of first.ids.keys()) {
      w.message(1, (l) => {
        l.string(1, name);
        for (const s of samples) l.message(2, (f) => writeExampleFeature(f, s.ids.get(name) ?? new Uint32Array(0), undefined));
      });
    }
    for (const name of first.floats.keys()) {
      w.message(1, (l) => {
        l.string(1, name);
        for (const s of samples) l.message(2, (f) => writeExampleFeature(f, undefined, s.floats.get(name) ?? []));
      });
    }
    w.message(1, (l) => {
      l.string(1, LABEL_FEATURE);
      for (const s of samples) l.message(2, (f) => writeExampleFeature(f, undefined, s.labels));
    });
  }
  w.tag(3, 0).varint(samples.length);
  return w.finish();
}
