/** Summary of repeated wall-time samples (ms). Medians, not means: the shared dockerd makes outliers. */
export interface Summary {
  n: number;
  median: number;
  p25: number;
  p75: number;
  min: number;
  max: number;
  samples: number[];
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  const a = sorted[lo] as number;
  const b = sorted[hi] as number;
  return a + (b - a) * (pos - lo);
}

export function summarize(samples: number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  const round = (x: number) => Math.round(x * 10) / 10;
  return {
    n: sorted.length,
    median: round(quantile(sorted, 0.5)),
    p25: round(quantile(sorted, 0.25)),
    p75: round(quantile(sorted, 0.75)),
    min: round(sorted[0] ?? Number.NaN),
    max: round(sorted[sorted.length - 1] ?? Number.NaN),
    samples: samples.map(round),
  };
}

export const ratio = (a: number, b: number): number => Math.round((a / b) * 100) / 100;

/** "123 ms (110–140)": the median and the interquartile range. */
export function fmt(s: Summary | undefined): string {
  if (!s || s.n === 0) return '—';
  const v = (x: number) => (x >= 10_000 ? `${(x / 1000).toFixed(1)}s` : `${Math.round(x)}`);
  return s.n === 1 ? `${v(s.median)} ms` : `${v(s.median)} ms (${v(s.p25)}–${v(s.p75)})`;
}

/** Plain-text table with padded columns. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}
