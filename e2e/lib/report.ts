import { seconds } from './util.ts';

interface Outcome {
  name: string;
  ok: boolean;
  ms: number;
  detail?: string;
}

/** Checks and timed steps; the last line printed is `N passed, N failed`. */
export class Report {
  readonly outcomes: Outcome[] = [];
  readonly timings: Array<[string, number]> = [];

  log(line: string): void {
    console.log(line);
  }

  /** A check passes when `fn` returns without throwing; its error message is the detail. */
  async check(name: string, fn: () => Promise<unknown> | unknown): Promise<boolean> {
    const started = Date.now();
    try {
      const detail = await fn();
      const ms = Date.now() - started;
      this.outcomes.push({ name, ok: true, ms });
      this.log(
        `  ok    ${name}${typeof detail === 'string' && detail ? ` (${detail})` : ''}  [${seconds(ms)}]`,
      );
      return true;
    } catch (e) {
      const ms = Date.now() - started;
      const detail = e instanceof Error ? e.message : String(e);
      this.outcomes.push({ name, ok: false, ms, detail });
      this.log(`  FAIL  ${name}  [${seconds(ms)}]\n        ${detail.split('\n').join('\n        ')}`);
      return false;
    }
  }

  /** A timed step is a check whose duration goes into the timing table. */
  async step(name: string, fn: () => Promise<unknown>): Promise<boolean> {
    const started = Date.now();
    const ok = await this.check(name, fn);
    this.timings.push([name, Date.now() - started]);
    return ok;
  }

  fail(name: string, detail: string): void {
    this.outcomes.push({ name, ok: false, ms: 0, detail });
    this.log(`  FAIL  ${name}\n        ${detail}`);
  }

  get failed(): number {
    return this.outcomes.filter((o) => !o.ok).length;
  }

  summary(): string {
    const lines = ['', 'timings:'];
    for (const [name, ms] of this.timings) lines.push(`  ${seconds(ms).padStart(8)}  ${name}`);
    const passed = this.outcomes.length - this.failed;
    lines.push('', `${passed} passed, ${this.failed} failed`);
    return lines.join('\n');
  }
}
