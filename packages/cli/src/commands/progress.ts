import cliProgress from "cli-progress";
import type { JobStatus__Output } from "@pangea/schema";
import { stateName } from "./summary.js";

/**
 * Prints training progress: a live progress bar (cli-progress) on a
 * terminal, a plain line every tenth of the job otherwise (logs and CI).
 */
export class ProgressPrinter {
  private lastDecile = -1;
  private lastState = "";
  private bar: cliProgress.SingleBar | null = null;

  constructor(private readonly out: NodeJS.WriteStream = process.stdout) {}

  update(s: JobStatus__Output): void {
    const steps = Number(s.steps) || 1;
    const step = Number(s.step);
    const frac = Math.min(1, step / steps);
    const loss = Number.isFinite(s.smoothedLoss) ? s.smoothedLoss.toFixed(4) : "n/a";
    const rate = Math.round(s.samplesPerSecond);
    if (this.out.isTTY) {
      if (!this.bar) {
        this.bar = new cliProgress.SingleBar(
          { stream: this.out, format: "{state} [{bar}] step {value}/{total}  loss {loss}  {rate} samples/s  eta {eta_formatted}", hideCursor: true, clearOnComplete: false },
          cliProgress.Presets.shades_classic,
        );
        this.bar.start(steps, step, { state: stateName(s.state).padEnd(10), loss, rate });
      }
      this.bar.update(step, { state: stateName(s.state).padEnd(10), loss, rate });
    } else {
      const line = `${stateName(s.state).padEnd(10)} step ${String(step).padStart(String(steps).length)}/${steps}  loss ${loss}  ${rate} samples/s`;
      const decile = Math.floor(frac * 10);
      if (decile !== this.lastDecile || s.state !== this.lastState) this.out.write(`${line}\n`);
      this.lastDecile = decile;
    }
    this.lastState = s.state;
  }

  done(): void {
    this.bar?.stop();
    this.bar = null;
  }
}
