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
  /** The first update with a step trained, the ETA's start: steps before this process saw the job (a resume's) do not count. */
  private since: { at: number; step: number } | null = null;

  constructor(private readonly out: NodeJS.WriteStream = process.stdout) {}

  update(s: JobStatus__Output): void {
    const steps = Number(s.steps) || 1;
    const step = Number(s.step);
    const frac = Math.min(1, step / steps);
    const loss = Number.isFinite(s.smoothedLoss) ? s.smoothedLoss.toFixed(4) : "n/a";
    const rate = Math.round(s.samplesPerSecond);
    if (this.out.isTTY) {
      const now = Date.now();
      if (!this.since || step < this.since.step) this.since = { at: now, step };
      const perStep = step > this.since.step ? (now - this.since.at) / 1000 / (step - this.since.step) : NaN;
      const eta = etaText(step >= steps ? 0 : (steps - step) * perStep);
      if (!this.bar) {
        this.bar = new cliProgress.SingleBar(
          { stream: this.out, format: "{state} [{bar}] step {value}/{total}  loss {loss}  {rate} samples/s  eta {timeLeft}", hideCursor: true, clearOnComplete: false },
          cliProgress.Presets.shades_classic,
        );
        this.bar.start(steps, step, { state: stateName(s.state).padEnd(10), loss, rate, timeLeft: eta });
      }
      this.bar.update(step, { state: stateName(s.state).padEnd(10), loss, rate, timeLeft: eta });
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

/** Seconds left as 45s, 3m05s or 2h07m; n/a before any step has been timed. */
export function etaText(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "n/a";
  const total = Math.round(seconds);
  if (total < 60) return `${total}s`;
  if (total < 3600) return `${Math.floor(total / 60)}m${String(total % 60).padStart(2, "0")}s`;
  const minutes = Math.round(total / 60);
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, "0")}m`;
}
