import { describe, expect, it } from "vitest";
import { compileFeatureList } from "@pangea/features";
import { LABEL_FEATURE, SampleAssembler, WireError, decodeRecordOfKind, encodeExample, encodeExampleBatch, encodeInstance, type MessageKind } from "@pangea/monolith";
import { SyntheticSource } from "../src/sources/synthetic.js";

/**
 * A record naming a feature twice is valid protobuf (two named features, or two feature lists, of one name), which
 * protobuf merges: a dense feature keeps its last value, a slot the ids of both. Monolith's writers name each feature
 * once, so such a record is refused as a bad record, in training and in serving (one decoder), as is an Example giving
 * its labels twice over (the label field and a __LABEL__ feature, which were added one after the other).
 */
const synthetic = new SyntheticSource({ seed: 3, evalRecords: 0 });
const list = compileFeatureList(synthetic.featureListConfig("fid_v2"), "test");
const [a, b] = [0, 1].map((i) => synthetic.plainSample("train", i)) as [ReturnType<typeof synthetic.plainSample>, ReturnType<typeof synthetic.plainSample>];
const concat = (x: Uint8Array, y: Uint8Array) => Uint8Array.from([...x, ...y]);

function decode(kind: MessageKind, bytes: Uint8Array): { samples: number; labels: number[][] } {
  const asm = new SampleAssembler(list);
  const labels: number[][] = [];
  decodeRecordOfKind(kind, bytes, asm, () => labels.push([...asm.labels]));
  return { samples: labels.length, labels };
}

describe("a Monolith record naming a feature twice", () => {
  it.each([
    ["instance", encodeInstance],
    ["example", encodeExample],
  ] as const)("an %s whose features are all given twice (two records' bytes run together) is refused naming one", (kind, encode) => {
    expect(decode(kind, encode(a)).samples).toBe(1);
    expect(() => decode(kind, concat(encode(a), encode(b)))).toThrow(WireError);
    expect(() => decode(kind, concat(encode(a), encode(b)))).toThrow(/^feature '[^']+' is named twice in one example; Monolith's writers name each feature once/);
  });

  it("a dense feature given twice in an Example is refused, not trained on its last value", () => {
    const price = [...a.floats.keys()][0]!;
    const twice = concat(encodeExample({ ...a, ids: new Map() }), encodeExample({ ids: new Map(), floats: new Map([[price, [1000]]]), labels: [] }));
    expect(() => decode("example", twice)).toThrow(`feature '${price}' is named twice in one example`);
  });

  it("an ExampleBatch with two feature lists of one name is refused; each name once decodes every example", () => {
    expect(decode("examplebatch", encodeExampleBatch([a, b])).samples).toBe(2);
    expect(() => decode("examplebatch", concat(encodeExampleBatch([a, b]), encodeExampleBatch([b, a])))).toThrow(/^feature '[^']+' is named twice in one example/);
  });

  it("an Example giving its labels in the label field and in a __LABEL__ feature is refused, in either order", () => {
    const both = encodeExample({ ...a, floats: new Map([...a.floats, [LABEL_FEATURE, [1 - a.labels[0]!]]]) });
    expect(() => decode("example", both)).toThrow(`the example gives labels both in its label field and in a '${LABEL_FEATURE}' feature; give them in one of the two`);
    const featureFirst = concat(encodeExample({ ids: new Map(), floats: new Map([[LABEL_FEATURE, [1]]]), labels: [] }), encodeExample(a));
    expect(() => decode("example", featureFirst)).toThrow("the example gives labels both in its label field");
    // Either alone is an example's labels.
    expect(decode("example", encodeExample(a)).labels).toEqual([a.labels]);
    expect(decode("example", encodeExample({ ...a, labels: [], floats: new Map([...a.floats, [LABEL_FEATURE, [0.5]]]) })).labels).toEqual([[0.5]]);
  });

  it("the assembler forgets what the last example named: a batch of many examples and many records in a row decode", () => {
    const asm = new SampleAssembler(list);
    let n = 0;
    for (let i = 0; i < 50; i++) decodeRecordOfKind("example", encodeExample(synthetic.plainSample("train", i)), asm, () => n++);
    decodeRecordOfKind("examplebatch", encodeExampleBatch(Array.from({ length: 64 }, (_, i) => synthetic.plainSample("train", i))), asm, () => n++);
    expect(n).toBe(114);
  });
});
