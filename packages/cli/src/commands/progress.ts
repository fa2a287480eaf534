import type { JobStatus__Output } from "@pangea/schema";
import { stateName } from "./summary.js";

/**
 * Prints training progress: a redrawn bar on a terminal, a plain line every
 * tenth of the job otherwise (logs and CI).
 */
export class ProgressPrinter {
  private lastDecile = -1;
  private lastState = "";

  constructor(private readonly out: NodeJS.WriteStream = process.stdout) {}

  update(s: JobStatus__Output): void {
    const steps = Number(s.steps) || 1;
    const step = Number(s.step);
    const frac = Math.min(1, step / steps);
    const loss = Number.isFinite(s.smoothedLoss) ? s.smoothedLoss.toFixed(4) : "n/a";
    const line = `${stateName(s.state).padEnd(10)} step ${String(step).padStart(String(steps).length)}/${steps}  loss ${loss}  ${Math.round(s.samplesPerSecond)} samples/s`;
    if (this.out.isTTY) {
      const width = 24;
      const filled = Math.round(frac * width);
      this.out.write(`\r[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${line}   `);
    } else {
      const decile = Math.floor(frac * 10);
      if (decile !== this.lastDecile || s.state !== this.lastState) this.out.write(`${line}\n`);
      this.lastDecile = decile;
    }
    this.lastState = s.state;
  }

  done(): void {
    if (this.out.isTTY) this.out.write("\n");
  }
}
