/**
 * The project's performance targets (contributors' goals for the kernels on the machine they are
 * developed on; `kdloss bench --targets`, listed in bench/README.md). A user's report leaves them
 * out: it compares each figure with this machine's own limits instead.
 * @module
 */
import { largeMapCaseId } from './cases';
import { fmtPct, fmtRate, fmtRatio, fmtTime, table } from './text';
import type { BenchResults, CaseResult, Check, Timing, VariantCaseResult } from './types';

/** Evaluates the targets on every measured native variant. */
export function evaluateChecks(
  cases: CaseResult[],
  api: Record<string, Timing>,
  asyncApi: Record<string, Timing>,
  threads: BenchResults['threads'],
  variants: string[],
): Check[] {
  const get = (id: string, v: string): VariantCaseResult | undefined => cases.find((c) => c.id === id)?.results[v];
  const checks: Check[] = [];
  for (const v of variants) {
    const add = (name: string, value: number | null | undefined, target: string, ok: (x: number) => boolean): void => {
      const val = value ?? null;
      checks.push({ name, variant: v, value: val, target, met: val === null ? null : ok(val) });
    };
    // The variant's own roofline: its probes ran in the same process right after the case, while on a
    // shared machine memory bandwidth moves by a third between one child process and the next. Where
    // the variant's own sum probe took more than twice the run's fastest one, that probe is not
    // bandwidth-bound (the scalar variant's), and the machine's roofline counts instead.
    const fraction = (x: VariantCaseResult | undefined): number | null | undefined => {
      if (!x || x.rooflineFraction === null || x.machineRooflineFraction === null) return x?.machineRooflineFraction;
      return x.rooflineFraction <= 2 * x.machineRooflineFraction ? x.rooflineFraction : x.machineRooflineFraction;
    };
    const kd32 = get('kd 4096x1000 onehot float32', v);
    add('KD float32 4096x1000 one-hot throughput (elem/s)', kd32?.elementsPerSec, '>= 1.5e9', (x) => x >= 1.5e9);
    add('KD float32 4096x1000 one-hot roofline fraction', fraction(kd32), '>= 0.75', (x) => x >= 0.75);
    add('KD float32 4096x1000 one-hot x js', kd32?.vsJs, '>= 50', (x) => x >= 50);
    add('KD float64 4096x1000 one-hot throughput (elem/s)', get('kd 4096x1000 onehot float64', v)?.elementsPerSec, '>= 0.6e9', (x) => x >= 0.6e9);
    for (const kind of ['feature', 'attention'] as const) {
      const id = largeMapCaseId(kind);
      add(`${kind} float32 memory roofline fraction, larger than cache (${id})`, fraction(get(id, v)), '>= 0.80', (x) => x >= 0.8);
    }
    add('API 64x10 float32 computeDistillation (ns)', api[v]?.medianNs, '<= 2000', (x) => x <= 2000);
    add('async 64x10 float32 computeDistillationAsync (ns)', asyncApi[v]?.medianNs, '<= 30000', (x) => x <= 30000);
    if (v === threads.variant && threads.counts.length > 1) {
      const [lo, hi] = [threads.counts[0], threads.counts[threads.counts.length - 1]];
      for (const c of threads.cases) {
        add(`${c.label} ${c.dtype} async ${hi} vs ${lo} thread${lo === 1 ? '' : 's'} speedup`, c.speedup, '>= 1.8', (x) => x >= 1.8);
      }
    }
  }
  return checks;
}

/** The targets table: each target's goal and each variant's value with ok / MISS. */
export function formatTargets(r: BenchResults): string {
  const vs = [...new Set(r.checks.map((c) => c.variant))];
  const names = [...new Set(r.checks.map((c) => c.name))];
  const fmtVal = (name: string, v: number | null): string => {
    if (v === null) return '-';
    if (name.includes('elem/s')) return fmtRate(v);
    if (name.includes('fraction')) return fmtPct(v);
    if (name.includes('(ns)')) return fmtTime(v);
    return fmtRatio(v);
  };
  const checkRows = names.map((name) => {
    const cs = r.checks.filter((c) => c.name === name);
    return [
      name,
      cs[0].target,
      ...vs.map((v) => {
        const c = cs.find((x) => x.variant === v);
        return c ? `${fmtVal(name, c.value)} ${c.met === null ? '' : c.met ? 'ok' : 'MISS'}`.trim() : '-';
      }),
    ];
  });
  const out: string[] = [];
  out.push(`Targets (the library's default variant: ${r.defaultVariant ?? 'none'}; roofline fractions against the variant's own probes, run right after each case, or the run's fastest sum probe where the variant's own took more than twice as long):`);
  out.push(table(['target', 'goal', ...vs], checkRows, ['l', 'l', ...vs.map(() => 'r' as const)]));
  return out.join('\n');
}
