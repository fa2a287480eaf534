import { describe, expect, it } from "vitest";
import { SERVICE_MALLOC_ENV, SERVICE_V8_FLAGS } from "@pangea/kit";
import { computeMallocEnv, computeV8Flags } from "../src/launcher/local-cluster.js";

describe("compute's heap flags", () => {
  it("keep the services' 64 MB semi-space at the default budget and shrink it to a sixteenth of a small --max-memory-mb, the old generation's first limit to a quarter", () => {
    expect(computeV8Flags([], {})).toEqual(SERVICE_V8_FLAGS);
    expect(computeV8Flags(["--max-memory-mb", "1024"], {})).toEqual(SERVICE_V8_FLAGS);
    expect(computeV8Flags(["--data", "x.tsv", "--max-memory-mb", "64"], {})).toContain("--max-semi-space-size=4");
    expect(computeV8Flags(["--max-memory-mb=16"], {})).toContain("--max-semi-space-size=1");
    expect(computeV8Flags([], { PANGEA_MAX_MEMORY_MB: "128" })).toContain("--max-semi-space-size=8");
    // The old generation's first limit: a quarter of the budget (at least 16 MB), at most the services' 256 MB.
    expect(computeV8Flags(["--max-memory-mb", "64"], {})).toContain("--initial-old-space-size=16");
    expect(computeV8Flags(["--max-memory-mb", "16"], {})).toContain("--initial-old-space-size=16");
    expect(computeV8Flags(["--max-memory-mb", "512"], {})).toContain("--initial-old-space-size=128");
    expect(computeV8Flags(["--max-memory-mb", "2048"], {})).toContain("--initial-old-space-size=256");
  });
});

describe("compute's malloc settings", () => {
  it("are the services' at the default budget; below it, both thresholds are an eighth of --max-memory-mb and no huge pages", () => {
    expect(computeMallocEnv([], {})).toEqual(SERVICE_MALLOC_ENV);
    expect(computeMallocEnv(["--max-memory-mb", "4096"], {})).toEqual(SERVICE_MALLOC_ENV);
    expect(computeMallocEnv(["--max-memory-mb", "64"], {})).toEqual({ MALLOC_MMAP_THRESHOLD_: String(8 << 20), MALLOC_TRIM_THRESHOLD_: String(8 << 20) });
    expect(computeMallocEnv([], { PANGEA_MAX_MEMORY_MB: "512" })).toEqual({ MALLOC_MMAP_THRESHOLD_: String(32 << 20), MALLOC_TRIM_THRESHOLD_: String(64 << 20) });
    // Read as compute reads it: the last --max-memory-mb wins, an empty PANGEA_MAX_MEMORY_MB is unset.
    expect(computeMallocEnv(["--max-memory-mb", "4096", "--max-memory-mb=64"], {})).toEqual({ MALLOC_MMAP_THRESHOLD_: String(8 << 20), MALLOC_TRIM_THRESHOLD_: String(8 << 20) });
    expect(computeMallocEnv([], { PANGEA_MAX_MEMORY_MB: "" })).toEqual(SERVICE_MALLOC_ENV);
  });
});
