import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parameterServerClient, unary } from "@pangea/rpc";
import { DataType, MessageType, encodeMessage, writeTensor } from "@pangea/schema";
import { ENTRY } from "../support/processes.js";
import { startService, type RunningService } from "../support/service.js";

/**
 * Replays the 272-byte Push whose dense list claims 2^22 zero-sized tensors
 * against a real orchestrator: it answers INVALID_ARGUMENT naming the field
 * at once, and keeps answering (the attack used to hold its event loop for
 * seconds per message).
 */
const tmp = mkdtempSync(join(tmpdir(), "pangea-sec-capnp-"));
let orch: RunningService;

beforeAll(async () => {
  orch = await startService(ENTRY.orchestrator, ["--host", "127.0.0.1", "--port", "0", "--trainers", "1", "--checkpoint-dir", join(tmp, "ckpt"), "--register-timeout-ms", "600000"]);
});
afterAll(async () => {
  await orch?.stop();
});

function hostilePush(): Buffer {
  const b = encodeMessage(MessageType.GRADIENT_UPDATE, "trainer-0", (g) => {
    g.step = 1n;
    writeTensor(g._initDense(1).get(0), "w", DataType.FLOAT32, [2], Float32Array.of(0.5, -0.5));
    writeTensor(g._initSparseIds(), "ids", DataType.UINT64, [1], Uint32Array.of(7, 1 << 16));
    writeTensor(g._initSparseGrads(), "g", DataType.FLOAT32, [1, 4], new Float32Array(4));
  });
  // Root (word 1 of the segment, byte 8) -> Message; its pointer 1 -> GradientUpdate; its pointer 0 -> the dense list's tag.
  const target = (at: number) => at + 8 + (b.readInt32LE(at) >> 2) * 8;
  const slot = (at: number, i: number) => target(at) + b.readUInt16LE(at + 4) * 8 + i * 8;
  const tag = target(slot(slot(8, 1), 0));
  b.writeUInt32LE((2 ** 22) << 2, tag);
  b.writeUInt32LE(0, tag + 4);
  return b;
}

describe("a Push whose list claims 2^22 elements", () => {
  it("is refused by a real orchestrator with INVALID_ARGUMENT naming the field, 20 times in a row, quickly", async () => {
    const bytes = hostilePush();
    expect(bytes.length).toBeLessThan(400);
    const c = parameterServerClient(orch.address);
    try {
      const started = performance.now();
      for (let i = 0; i < 20; i++) {
        const err = (await unary("orchestrator", c.push.bind(c), bytes, 5_000).then(() => null, (e: unknown) => e)) as { code: number; details: string } | null;
        expect(err?.code).toBe(3);
        expect(err?.details).toMatch(/^SCHEMA_ERR_BAD_MESSAGE: push from .*: gradientUpdate\.dense: list claims 4194304 elements of 0 bytes/);
      }
      // 20 refusals in well under the time one such message used to take.
      expect(performance.now() - started).toBeLessThan(2_000);
    } finally {
      c.close();
    }
  });
});
