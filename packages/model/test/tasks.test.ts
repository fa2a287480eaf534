import { describe, expect, it } from "vitest";
import { canonical, denseParams, modelIdentity, modelSpecFromWire, modelSpecToWire, parseModelSpec, specDifference, validateSpec, type ModelSpec } from "../src/spec.js";
import { tasksOf } from "../src/architectures/architecture.js";

const base = { numDense: 3, numSlots: 2, embeddingDim: 4 };
const dlrm = { name: "dlrm", bottomMlp: [8, 4], topMlp: [8] };
const twoTasks = [
  { name: "click", loss: "bce" as const, weight: 1 },
  { name: "watch_time", loss: "mse" as const, weight: 0.5 },
];

describe("a model's tasks", () => {
  it("absent, or the one default task, is the same model as before tasks existed (old checkpoints match)", () => {
    const plain = validateSpec({ ...base, architecture: dlrm });
    const explicit = validateSpec({ ...base, tasks: [{ name: "ctr", loss: "bce", weight: 1 }], architecture: dlrm });
    expect(canonical(explicit)).toBe(canonical(plain));
    expect(explicit.tasks).toBeUndefined();
    expect(tasksOf(plain)).toEqual([{ name: "ctr", loss: "bce", weight: 1 }]);
  });

  it("give every architecture's output layer a column per task", () => {
    const spec = validateSpec({ ...base, tasks: twoTasks, architecture: dlrm });
    const params = new Map(denseParams(spec).map((p) => [p.name, p.shape]));
    expect(params.get("top.logit.w")).toEqual([8, 2]);
    expect(params.get("top.logit.b")).toEqual([2]);
    for (const architecture of [{ name: "dcn-v2" }, { name: "deepfm" }, { name: "wide-deep" }]) {
      const p = denseParams(validateSpec({ ...base, tasks: twoTasks, architecture }));
      expect(p.at(-1)!.shape, architecture.name).toEqual([2]);
      expect(p.at(-2)!.shape[1], architecture.name).toBe(2);
    }
  });

  it("travel in checkpoints (JSON) and the job spec (wire) and come back equal", () => {
    const spec = validateSpec({ ...base, tasks: twoTasks, architecture: dlrm });
    expect(canonical(parseModelSpec(JSON.parse(JSON.stringify(spec))))).toBe(canonical(spec));
    const wire = modelSpecToWire(spec, [1, 2]);
    expect(wire.tasks).toEqual(twoTasks);
    expect(canonical(modelSpecFromWire(wire))).toBe(canonical(spec));
    expect(modelSpecToWire(validateSpec({ ...base, architecture: dlrm }), [1, 2]).tasks).toEqual([]);
  });

  it("differences name the tasks; task weights alone are no difference", () => {
    const one = validateSpec({ ...base, architecture: dlrm });
    const two = validateSpec({ ...base, tasks: twoTasks, architecture: dlrm });
    expect(specDifference(one, two)).toBe("tasks [click (bce), watch_time (mse)] against [ctr (bce)]");
    // Loss weights weigh training, not the model: a checkpoint restores under other weights.
    const reweighted: ModelSpec = validateSpec({ ...base, tasks: [twoTasks[0]!, { ...twoTasks[1]!, weight: 2 }], architecture: dlrm });
    expect(specDifference(two, reweighted)).toBeNull();
    expect(specDifference(one, validateSpec({ ...base, tasks: [{ name: "ctr", loss: "bce", weight: 3 }], architecture: dlrm }))).toBeNull();
  });

  it("a model's identity (what serving computes) leaves out task weights but not names, losses, shape or hyper-parameters", () => {
    const two = validateSpec({ ...base, tasks: twoTasks, architecture: dlrm });
    const reweighted = validateSpec({ ...base, tasks: [{ ...twoTasks[0]!, weight: 3 }, { ...twoTasks[1]!, weight: 0 }], architecture: dlrm });
    expect(modelIdentity(reweighted)).toBe(modelIdentity(two));
    const others: ModelSpec[] = [
      validateSpec({ ...base, tasks: [twoTasks[0]!, { name: "conversion", loss: "bce", weight: 0.5 }], architecture: dlrm }),
      validateSpec({ ...base, tasks: [twoTasks[0]!, { ...twoTasks[1]!, loss: "bce" }], architecture: dlrm }),
      validateSpec({ ...base, tasks: twoTasks, architecture: { ...dlrm, topMlp: [6] } }),
      validateSpec({ ...base, slotPooling: ["sum", "mean"], tasks: twoTasks, architecture: dlrm }),
      validateSpec({ ...base, numDense: 4, tasks: twoTasks, architecture: dlrm }),
    ];
    for (const o of others) expect(modelIdentity(o), canonical(o)).not.toBe(modelIdentity(two));
    // One default-named task of any weight is the plain model; the identity reads back as a spec.
    const plain = validateSpec({ ...base, architecture: dlrm });
    expect(modelIdentity(validateSpec({ ...base, tasks: [{ name: "ctr", loss: "bce", weight: 2 }], architecture: dlrm }))).toBe(modelIdentity(plain));
    expect(specDifference(parseModelSpec(JSON.parse(modelIdentity(two))), parseModelSpec(JSON.parse(modelIdentity(others[0]!))))).toBe("tasks [click (bce), conversion (bce)] against [click (bce), watch_time (mse)]");
  });

  it("a model's identity is the same through the job spec (a parameter-server shard's) and an export manifest (serving's)", () => {
    const specs: ModelSpec[] = [
      validateSpec({ ...base, architecture: dlrm }),
      validateSpec({ ...base, tasks: twoTasks, slotPooling: ["mean", "sum"], architecture: dlrm }),
      validateSpec({ ...base, slotDims: [4, 8], tasks: [{ name: "ctr", loss: "bce", weight: 0.5 }], architecture: { name: "wide-deep" } }),
    ];
    for (const spec of specs) {
      expect(modelIdentity(modelSpecFromWire(modelSpecToWire(spec, [1, 2])))).toBe(modelIdentity(spec));
      expect(modelIdentity(parseModelSpec(JSON.parse(JSON.stringify(spec))))).toBe(modelIdentity(spec));
    }
  });

  it.each([
    [[], "a model needs at least one task, got []"],
    [[{ name: "a b", loss: "bce" }], 'task #0: name must be a letter then letters, digits or _ (at most 64), got "a b"'],
    [[{ name: "click" }, { name: "click" }], "task click is declared twice"],
    [[{ name: "click", loss: "hinge" }], 'task click: loss must be "bce" or "mse", got "hinge"'],
    [[{ name: "click", weight: -1 }], "task click: weight must be a number >= 0, got -1"],
    [[{ name: "click", weight: 0 }, { name: "watch", loss: "mse", weight: 0 }], "every task has weight 0: the loss would be 0 and nothing learned"],
    [[{ name: "probabilities" }], "task probabilities: the name is serving's own output's (probabilities, predictions, scores); choose another"],
    [Array.from({ length: 17 }, (_, i) => ({ name: `t${i}` })), "a model has at most 16 tasks, got 17"],
  ])("refused with one line naming the task: %j", (tasks, message) => {
    expect(() => validateSpec({ ...base, tasks: tasks as never, architecture: dlrm })).toThrow(message);
  });
});
