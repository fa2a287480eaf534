import { describe, expect, it } from "vitest";
import { criteoFeatureListConfig } from "../src/criteo.js";
import { featureInputsMismatch, featureInputsOf, parseFeatureInputs } from "../src/feature-inputs.js";
import type { FeatureListConfig } from "../src/feature-list.js";

const trained = featureInputsOf(criteoFeatureListConfig());
const changed = (edit: (l: FeatureListConfig) => void) => {
  const l = structuredClone(criteoFeatureListConfig());
  edit(l);
  return l;
};

describe("an export's feature list against the training data's inputs", () => {
  it("takes the same layout, renames, and ids declared for a hashed slot", () => {
    expect(featureInputsMismatch(trained, criteoFeatureListConfig())).toBeNull();
    expect(featureInputsMismatch(trained, changed((l) => ((l.slots[0]!.name = "user"), (l.dense[2]!.name = "price"))))).toBeNull();
    expect(featureInputsMismatch(trained, changed((l) => ((l.slots[3]!.type = "fid_v2"), (l.slots[4]!.type = "fid_v1"))))).toBeNull();
  });

  it("refuses another hashing kind, swapped slot names, reordered dense features, another size or transform", () => {
    expect(featureInputsMismatch(trained, changed((l) => (l.slots[2]!.type = "int64")))).toBe("slot 3 ('C3') was hashed as type bytes in training, this list says int64");
    expect(featureInputsMismatch(trained, changed((l) => (l.slots[0]!.name = "C2")))).toBe("this list names slot 1 'C2', which is slot 2 in the training data's feature list (slot 1 is 'C1' there)");
    expect(featureInputsMismatch(trained, changed((l) => ([l.dense[0], l.dense[1]] = [l.dense[1]!, l.dense[0]!])))).toBe("this list has dense feature 'I2' at position 1, the training data's feature list at 2 ('I1' is at 1 there)");
    expect(featureInputsMismatch(trained, changed((l) => (l.dense[4]!.transform = "none")))).toBe("dense feature 'I5' was read with transform log1p in training, this list says none");
    const sized = featureInputsOf(changed((l) => (l.dense = [{ name: "v", size: 2, transform: "none" }, { name: "w", size: 1, transform: "none" }])));
    expect(featureInputsMismatch(sized, changed((l) => (l.dense = [{ name: "v", size: 1, transform: "none" }, { name: "w", size: 2, transform: "none" }])))).toBe("dense feature 'v' at position 1 has size 1 in this list, 2 in training");
  });

  it("the registration's JSON: empty says nothing, a malformed one names what is wrong", () => {
    expect(parseFeatureInputs("")).toBeNull();
    expect(parseFeatureInputs(JSON.stringify(trained))).toEqual(trained);
    expect(() => parseFeatureInputs("{")).toThrow("feature_inputs is not JSON");
    expect(() => parseFeatureInputs(JSON.stringify({ slots: [{ name: "a", slot: 1, type: "float" }], dense: [] }))).toThrow(/^feature_inputs: slots\.0\.type: /);
  });
});
