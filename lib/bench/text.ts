/**
 * Number formats and fixed-width tables of the benchmark's terminal report.
 * @module
 */

/** '812 ns', '1.23 us', '4.56 ms', '1.234 s'. */
export function fmtTime(ns: number): string {
  if (ns < 1e3) return `${ns.toFixed(0)} ns`;
  if (ns < 1e6) return `${(ns / 1e3).toFixed(ns < 1e4 ? 2 : 1)} us`;
  if (ns < 1e9) return `${(ns / 1e6).toFixed(ns < 1e7 ? 2 : 1)} ms`;
  return `${(ns / 1e9).toFixed(3)} s`;
}

/** '1.52 G/s', '345 M/s', '12.3 k/s'. */
export function fmtRate(perSec: number, unit = '/s'): string {
  const [div, p] = perSec >= 1e9 ? [1e9, 'G'] : perSec >= 1e6 ? [1e6, 'M'] : perSec >= 1e3 ? [1e3, 'k'] : [1, ''];
  const v = perSec / div;
  return `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${p}${unit}`;
}

/** '1.82x', '54.3x'; '-' for null. */
export function fmtRatio(x: number | null): string {
  if (x === null) return '-';
  return `${x.toFixed(x < 10 ? 2 : x < 100 ? 1 : 0)}x`;
}

/** '78%'; '-' for null. */
export function fmtPct(x: number | null): string {
  return x === null ? '-' : `${(x * 100).toFixed(0)}%`;
}

export type Align = 'l' | 'r';

/** A fixed-width table; a null row is an empty line. */
export function table(header: string[], rows: (string[] | null)[], align: Align[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r ? r[i].length : 0))));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (align[i] === 'l' ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(header), rule, ...rows.map((r) => (r ? line(r) : ''))].join('\n');
}
