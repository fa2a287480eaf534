import { describe, expect, it } from "vitest";
import { etaText } from "../src/commands/progress.js";

describe("the progress bar's time left", () => {
  it("reads n/a before a step is timed, and rounds to whole seconds before splitting into minutes (239.6 s is 4m00s, not 3m60s)", () => {
    expect([NaN, Infinity, -1].map(etaText)).toEqual(["n/a", "n/a", "n/a"]);
    expect([0, 0.4, 45, 59.6, 239.6, 185, 3599.4, 3599.6, 7620].map(etaText)).toEqual(["0s", "0s", "45s", "1m00s", "4m00s", "3m05s", "59m59s", "1h00m", "2h07m"]);
  });
});
