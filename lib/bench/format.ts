/**
 * Fixed-width terminal report of benchmark results.
 * @module
 */
import type { BenchResults } from './types';

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

function fmtRatio(x: number | null): string {
  if (x === null) return '-';
  return `${x.toFixed(x < 10 ? 2 : x < 100 ? 1 : 0)}x`;
}

function fmtPct(x: number | null): string {
  return x === null ? '-' : `${(x * 100).toFixed(0)}%`;
}

type Align = 'l' | 'r';

function table(header: string[], rows: (string[] | null)[], align: Align[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r ? r[i].length : 0))));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (align[i] === 'l' ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(header), rule, ...rows.map((r) => (r ? line(r) : ''))].join('\n');
}

/** The whole report as printed by `npm run bench`. */
export function formatResults(r: BenchResults): string {
  const out: string[] = [];
  const m = r.machine;
  out.push(`kdloss ${m.kdloss} benchmark, ${r.date}`);
  out.push(`${m.cpu}, ${m.cores} cores, ${m.memoryGB} GB, node ${m.node} ${m.platform}-${m.arch}, load average ${m.loadAverage.join(' ')}`);
  out.push(`commit ${m.commit ?? 'unknown'}, addon built ${m.addonBuilt ?? 'unknown'}`);
  const caps = m.capabilities;
  out.push(
    caps
      ? `compiled variants: ${caps.compiled.join(', ')}; CPU: avx2 ${caps.avx2 ? 'yes' : 'no'}, avx512 ${caps.avx512 ? 'yes' : 'no'}${caps.neon ? ', neon yes' : ''}; measured: ${r.variants.join(', ')}`
      : `native addon unavailable; measured: ${r.variants.join(', ')}`,
  );
  for (const [v, e] of Object.entries(r.errors)) out.push(`!! ${v} failed: ${e}`);
  out.push('');
  for (const n of r.notes) out.push(`* ${n}`);
  out.push('');

  const probeRows = Object.entries(r.probes).map(([v, p]) => [
    v,
    fmtRate(p.expPerSec.float32, ' exp/s'),
    fmtRate(p.expPerSec.float64, ' exp/s'),
    p.bandwidthGBs.float32 ? `${p.bandwidthGBs.float32.toFixed(1)} GB/s @ ${(p.probeBytes.float32 / 2 ** 20).toFixed(0)} MiB` : '-',
    p.bandwidthGBs.float64 ? `${p.bandwidthGBs.float64.toFixed(1)} GB/s @ ${(p.probeBytes.float64 / 2 ** 20).toFixed(0)} MiB` : '-',
  ]);
  if (probeRows.length > 0) {
    out.push('Roofline probes (vecmath):');
    out.push(table(['variant', 'exp f32', 'exp f64', 'sum bw f32', 'sum bw f64'], probeRows, ['l', 'r', 'r', 'r', 'r']));
    out.push('');
  }

  const rows: (string[] | null)[] = [];
  let lastLabel = '';
  for (const c of r.cases) {
    const group = c.label;
    if (rows.length > 0 && group !== lastLabel) rows.push(null);
    lastLabel = group;
    for (const v of r.variants) {
      const x = c.results[v];
      if (!x) continue;
      rows.push([
        c.label,
        c.dtype,
        v,
        fmtTime(x.medianNs),
        fmtRate(x.elementsPerSec),
        v === 'js' ? '1.00x' : fmtRatio(x.vsJs),
        c.grad ? fmtRatio(x.vsForward) : '',
        x.rooflineFraction !== null && x.rooflineFraction > 1.05 ? `${fmtPct(x.rooflineFraction)}*` : fmtPct(x.rooflineFraction),
        x.roofline ? (x.roofline.bound === 'exp' ? 'exp' : 'mem') : '',
        String(x.samples * x.batch),
      ]);
    }
  }
  if (rows.length > 0) {
    out.push(
      table(
        ['case', 'dtype', 'variant', 'median', 'elem/s', 'x js', 'grad/fwd', 'roofline', 'bound', 'calls'],
        rows,
        ['l', 'l', 'l', 'r', 'r', 'r', 'r', 'r', 'l', 'r'],
      ),
    );
  } else {
    out.push('(no synchronous case selected)');
  }
  if (r.cases.some((c) => Object.values(c.results).some((x) => x.rooflineFraction !== null && x.rooflineFraction > 1.05))) {
    out.push(
      "\n* over 100%: that variant's own vecmath('sum') is slower than the kernel (the probe is not bandwidth-bound); machineRooflineFraction in the JSON uses the fastest sum probe of the run.",
    );
  }
  out.push('');
  out.push(
    `API latency, 64x10 float32 computeDistillation (validation included, Int32Array targets), median per call: ${r.variants
      .filter((v) => r.api[v])
      .map((v) => `${v} ${fmtTime(r.api[v].medianNs)}`)
      .join(', ')}`,
  );

  out.push(
    `Async latency, 64x10 float32 computeDistillationAsync (default threads, awaited one call at a time), median per call: ${r.variants
      .filter((v) => r.asyncApi?.[v])
      .map((v) => `${v} ${fmtTime(r.asyncApi[v].medianNs)}`)
      .join(', ')}`,
  );

  const th = r.threads;
  if (th && th.variant !== null && th.cases.length > 0) {
    const lo = th.counts[0];
    const hi = th.counts[th.counts.length - 1];
    const threadRows = th.cases.map((c) => [
      c.label,
      c.dtype,
      c.syncMedianNs === null ? '-' : fmtTime(c.syncMedianNs),
      ...th.counts.flatMap((n) => {
        const x = c.results[String(n)];
        return x ? [fmtTime(x.medianNs), fmtRate(x.elementsPerSec), x.cpuPerWall === undefined ? '-' : x.cpuPerWall.toFixed(2)] : ['-', '-', '-'];
      }),
      fmtRatio(c.speedup),
    ]);
    out.push('');
    out.push(`Async thread scaling on ${th.variant} (forwardAsync with { threads }, awaited one call at a time):`);
    out.push(
      table(
        ['case', 'dtype', 'sync 1t', ...th.counts.flatMap((n) => [`${n}t median`, `${n}t elem/s`, `${n}t cores`]), `${hi}t vs ${lo}t`],
        threadRows,
        ['l', 'l', 'r', ...th.counts.flatMap(() => ['r', 'r', 'r'] as Align[]), 'r'],
      ),
    );
    out.push(
      `(cores: CPU time of the process / wall time during the calls, i.e. the cores the threads actually got; load average ${m.loadAverage.join(' ')} on ${m.cores} cores)`,
    );
    if (th.machineScaling !== null && th.machineScaling !== undefined) {
      out.push(
        `The machine's own scaling, the ceiling of the speedups above: vecmath('exp') on ${hi} worker threads at once runs ${fmtRatio(th.machineScaling)} one worker's throughput.`,
      );
    }
  }

  if (r.checks.length > 0) {
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
    out.push('');
    out.push(`Targets (the library's default variant: ${r.defaultVariant ?? 'none'}; roofline fractions against the variant's own probes, run right after each case, or the run's fastest sum probe where the variant's own took more than twice as long):`);
    out.push(table(['target', 'goal', ...vs], checkRows, ['l', 'l', ...vs.map(() => 'r' as const)]));
  }
  out.push('');
  out.push(`total ${(r.elapsedMs / 1000).toFixed(1)} s`);
  return out.join('\n');
}
