/**
 * Fixed-width terminal report of benchmark results.
 * @module
 */
import { formatTargets } from './targets';
import { type Align, fmtPct, fmtRate, fmtRatio, fmtTime, table } from './text';
import type { BenchResults } from './types';

export { fmtRate, fmtTime } from './text';

/** The whole report as `kdloss bench` prints it (the targets table only when they were evaluated). */
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
    out.push("This machine's limits, measured in this run (per variant: its exp rate and the bandwidth of a plain sum over as many bytes as the largest case reads):");
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
    out.push(
      "(roofline: the time the case would take at this machine's limit that binds it, memory bandwidth or exp rate (bound), over its measured time; 100% is as fast as this machine goes)",
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
    out.push('');
    out.push(formatTargets(r));
  }
  out.push('');
  out.push(`total ${(r.elapsedMs / 1000).toFixed(1)} s`);
  return out.join('\n');
}
