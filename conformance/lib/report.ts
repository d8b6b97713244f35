/**
 * Collects check outcomes per category and prints them in the form CI parses: one line per
 * category (`contract: N passed, N failed`), then a final `N passed, N failed`.
 */
export const CATEGORIES = [
  'contract',
  'bad input',
  'faults',
  'concurrency',
  'data safety',
  'secrets',
  'host escape',
] as const;
export type Category = (typeof CATEGORIES)[number];

export interface Outcome {
  category: Category;
  name: string;
  ok: boolean;
  detail?: string;
}

const short = (s: string, max = 1500) =>
  s.length > max ? `${s.slice(0, max)}… (${s.length - max} more chars)` : s;

export class Reporter {
  readonly outcomes: Outcome[] = [];
  private readonly skipped: Array<{ category: Category; name: string; why: string }> = [];

  constructor(private readonly out: (line: string) => void = (l) => process.stdout.write(`${l}\n`)) {}

  /** `quiet` keeps bulk cases (corpus entries) off the output; failures always print. */
  pass(category: Category, name: string, quiet = false): void {
    this.outcomes.push({ category, name, ok: true });
    if (!quiet) this.out(`  ok    [${category}] ${name}`);
  }

  fail(category: Category, name: string, detail: string): void {
    this.outcomes.push({ category, name, ok: false, detail });
    this.out(`  FAIL  [${category}] ${name}\n        ${short(detail).replace(/\n/g, '\n        ')}`);
  }

  /** Records a check whose condition is already known. */
  expect(category: Category, name: string, ok: boolean, detail: () => string): boolean {
    if (ok) this.pass(category, name);
    else this.fail(category, name, detail());
    return ok;
  }

  /** Runs `fn`; anything it throws fails the check with its message. */
  async check(category: Category, name: string, fn: () => unknown): Promise<boolean> {
    try {
      await fn();
      this.pass(category, name);
      return true;
    } catch (e) {
      this.fail(category, name, e instanceof Error ? e.message : String(e));
      return false;
    }
  }

  skip(category: Category, name: string, why: string): void {
    this.skipped.push({ category, name, why });
    this.out(`  skip  [${category}] ${name}: ${why}`);
  }

  log(line: string): void {
    this.out(line);
  }

  counts(category?: Category): { passed: number; failed: number } {
    const of = this.outcomes.filter((o) => category === undefined || o.category === category);
    return { passed: of.filter((o) => o.ok).length, failed: of.filter((o) => !o.ok).length };
  }

  failed(): boolean {
    return this.outcomes.some((o) => !o.ok);
  }

  /** The summary: failures again, per-category counts, then the line CI parses (always last). */
  summary(): string[] {
    const lines: string[] = [''];
    const failures = this.outcomes.filter((o) => !o.ok);
    if (failures.length) {
      lines.push('Failed checks:');
      for (const f of failures) lines.push(`  [${f.category}] ${f.name}`);
      lines.push('');
    }
    if (this.skipped.length)
      lines.push(`${this.skipped.length} checks skipped (not applicable to this CPI)`, '');
    for (const c of CATEGORIES) {
      const { passed, failed } = this.counts(c);
      lines.push(`${c}: ${passed} passed, ${failed} failed`);
    }
    const total = this.counts();
    lines.push(`${total.passed} passed, ${total.failed} failed`);
    return lines;
  }
}
