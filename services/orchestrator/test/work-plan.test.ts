import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { WorkPlan } from "../src/job/work-plan.js";

describe("WorkPlan", () => {
  it("sync: deals a step's batches round-robin and moves on once all are finished", () => {
    const p = new WorkPlan("sync", 4, 3);
    p.beginStep(["a", "b"]);
    expect(p.workFor("a")).toEqual([0, 2]);
    expect(p.workFor("b")).toEqual([1, 3]);
    expect([0, 1, 2].map((j) => p.finish(j))).toEqual([false, false, false]);
    expect(p.finish(3)).toBe(true);
    expect(p.step).toBe(1);
    p.beginStep(["a", "b"]);
    expect(p.workFor("a")).toEqual([4, 6]);
  });

  it("sync: a dead trainer's unfinished batches go to the survivors; finished ones stay finished", () => {
    const p = new WorkPlan("sync", 4, 2);
    p.beginStep(["a", "b", "c"]);
    p.finish(1); // b finished one of its batches
    expect(p.workFor("b")).toEqual([]);
    expect(p.release("a", ["b", "c"])).toEqual([0, 3]);
    expect([...p.workFor("b"), ...p.workFor("c")].sort()).toEqual([0, 2, 3]);
    expect(p.isFinished(1)).toBe(true);
    expect(p.isFinished(0)).toBe(false);
    expect(p.reassigned).toBe(2);
  });

  it("sync: with nobody alive, batches wait for the next trainer to join", () => {
    const p = new WorkPlan("sync", 2, 1);
    p.beginStep(["a"]);
    p.release("a", []);
    expect(p.ownerOf(0)).toBeNull();
    p.adopt(["z"]);
    expect(p.workFor("z")).toEqual([0, 1]);
  });

  it("async: hands out one batch at a time; a dead trainer's batch is handed out again first", () => {
    const p = new WorkPlan("async", 2, 2);
    expect(p.workFor("a")).toEqual([0]);
    expect(p.workFor("a")).toEqual([0]); // still holding it
    expect(p.workFor("b")).toEqual([1]);
    p.release("a", ["b"]);
    p.finish(1);
    expect(p.workFor("b")).toEqual([0]);
    expect(p.outstanding()).toEqual([0]);
  });

  it("resumes where a checkpoint left off", () => {
    const s = new WorkPlan("sync", 2, 10, { step: 4, finishedBatches: 8, outstanding: [] });
    s.beginStep(["a"]);
    expect(s.workFor("a")).toEqual([8, 9]);
    const a = new WorkPlan("async", 2, 10, { step: 2, finishedBatches: 5, outstanding: [3] });
    expect(a.workFor("a")).toEqual([3]);
    expect(a.workFor("b")).toEqual([6]);
  });

  it("property: whatever trainers die and join, every batch is finished exactly once", () => {
    fc.assert(
      fc.property(fc.constantFrom("sync" as const, "async" as const, "hybrid" as const), fc.integer({ min: 1, max: 5 }), fc.array(fc.integer({ min: 0, max: 99 }), { minLength: 1, maxLength: 300 }), (mode, W, script) => {
        const steps = 6;
        const p = new WorkPlan(mode, W, steps);
        let live = ["t0", "t1"];
        let next = 2;
        p.beginStep(live);
        const finished: number[] = [];
        for (const r of script) {
          if (p.done) break;
          if (r < 10 && live.length > 1) {
            const dead = live[r % live.length]!;
            live = live.filter((w) => w !== dead);
            p.release(dead, live);
          } else if (r < 15) {
            live = [...live, `t${next++}`];
            p.adopt(live);
          } else {
            const w = live[r % live.length]!;
            const js = p.workFor(w);
            if (js.length) {
              const j = js[0]!;
              finished.push(j);
              if (p.finish(j) && mode !== "async") p.beginStep(live);
            }
          }
        }
        // Drain: whoever is left finishes everything.
        for (let guard = 0; !p.done && guard < 10_000; guard++) {
          for (const w of live) {
            const js = p.workFor(w);
            if (js.length) {
              finished.push(js[0]!);
              if (p.finish(js[0]!) && mode !== "async") p.beginStep(live);
            }
          }
        }
        expect(p.done).toBe(true);
        expect(finished.slice().sort((a, b) => a - b)).toEqual(Array.from({ length: steps * W }, (_, j) => j));
      }),
      { numRuns: 300 },
    );
  });
});
