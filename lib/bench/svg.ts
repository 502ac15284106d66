/**
 * A dependency-free SVG chart of benchmark results: throughput (elements/s, log scale) against input
 * size (elements, log scale) of the KD float32 one-hot cases, one line per kernel variant and one for
 * the js backend, with the roofline of the default variant (memory bound from its vecmath('sum')
 * probes, exp bound from its vecmath('exp') rate) as dashed lines and the async multi-thread points
 * as separate markers. The output is a standalone SVG 1.1 document (no scripts, fonts or links).
 * @module
 */
import type { BenchResults, CaseResult } from './types';

/** Chart geometry, px. */
const W = 1000;
const H = 660;
const PLOT = { left: 86, right: 700, top: 92, bottom: 552 };
const LEGEND_X = 724;
const FONT = "DejaVu Sans, Verdana, Helvetica, Arial, sans-serif";

const COLORS: Record<string, string> = {
  avx512: '#1f5fbf',
  avx2: '#e07b00',
  neon: '#7b3fb5',
  scalar: '#2a9d3a',
  js: '#d62728',
};
const FALLBACK = ['#17becf', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22'];
const ROOF_MEM = '#555555';
const ROOF_EXP = '#9b2d86';

/** Escapes text for XML character data and attribute values. */
export function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

/** A number with at most 2 decimals and no trailing zeros, for coordinates. */
const n2 = (x: number): string => String(Math.round(x * 100) / 100);

/** '6', '640', '4k', '1M', '4.2M', '10G': short SI notation for axis labels. */
export function si(x: number): string {
  const units: [number, string][] = [
    [1e12, 'T'],
    [1e9, 'G'],
    [1e6, 'M'],
    [1e3, 'k'],
  ];
  for (const [d, u] of units) {
    if (x >= d) {
      const v = x / d;
      return `${Number(v.toPrecision(v < 10 ? 2 : 3))}${u}`;
    }
  }
  return `${Number(x.toPrecision(3))}`;
}

interface Point {
  x: number;
  y: number;
  tip: string;
}

interface Series {
  name: string;
  color: string;
  points: Point[];
  style: 'line' | 'dashed' | 'markers';
  marker: 'circle' | 'diamond' | 'none';
}

/** The KD float32 one-hot forward cases (the chart's x axis), smallest first. */
export function chartCases(r: BenchResults): CaseResult[] {
  return r.cases
    .filter((c) => c.kind === 'kd' && c.dtype === 'float32' && c.targets === 'onehot' && !c.grad)
    .sort((a, b) => a.elements - b.elements);
}

/** The series drawn: one per measured variant, the thread-scaling markers and the roofline. */
export function chartSeries(r: BenchResults): Series[] {
  const cases = chartCases(r);
  const series: Series[] = [];
  let fallback = 0;
  for (const v of r.variants) {
    const points = cases
      .filter((c) => c.results[v] !== undefined)
      .map((c) => {
        const x = c.results[v];
        return { x: c.elements, y: x.elementsPerSec, tip: `${v}, ${c.rows}x${c.cols}: ${si(x.elementsPerSec)} elements/s (${si(x.medianNs)} ns per call)` };
      });
    if (points.length === 0) continue;
    const color = COLORS[v] ?? FALLBACK[fallback++ % FALLBACK.length];
    series.push({ name: v === 'js' ? 'js (TypeScript backend)' : v, color, points, style: 'line', marker: 'circle' });
  }

  const th = r.threads;
  if (th && th.variant !== null && th.counts.length > 1) {
    const hi = th.counts[th.counts.length - 1];
    const points = th.cases
      .filter((c) => c.dtype === 'float32' && c.targets === 'onehot' && c.results[String(hi)] !== undefined)
      .map((c) => {
        const x = c.results[String(hi)];
        return {
          x: c.elements,
          y: x.elementsPerSec,
          tip: `${th.variant}, ${c.rows}x${c.cols}, ${hi} threads (forwardAsync): ${si(x.elementsPerSec)} elements/s, ${c.speedup === null ? '' : `${c.speedup.toFixed(2)}x one thread`}${x.cpuPerWall === undefined ? '' : `, ${x.cpuPerWall.toFixed(2)} cores busy`}`,
        };
      });
    if (points.length > 0) {
      series.push({
        name: `${th.variant}, ${hi} threads (async)`,
        color: COLORS[th.variant] ?? FALLBACK[0],
        points,
        style: 'markers',
        marker: 'diamond',
      });
    }
  }

  const dv = r.defaultVariant;
  if (dv !== null) {
    const mem = cases
      .filter((c) => c.results[dv]?.roofline)
      .map((c) => {
        const rf = c.results[dv].roofline!;
        const y = c.elements / (rf.memNs * 1e-9);
        return { x: c.elements, y, tip: `memory bound, ${c.rows}x${c.cols}: ${si(y)} elements/s (vecmath sum over ${si(c.bytes)} B: ${rf.probeGBs.toFixed(1)} GB/s)` };
      });
    if (mem.length > 0) series.push({ name: `memory bound (${dv})`, color: ROOF_MEM, points: mem, style: 'dashed', marker: 'none' });
    const exp = r.probes[dv]?.expPerSec.float32;
    const perElement = cases.find((c) => c.expsPerElement > 0)?.expsPerElement ?? 0;
    if (exp && perElement > 0 && cases.length > 0) {
      const y = exp / perElement;
      const tip = `exp bound: ${si(exp)} exp/s (vecmath exp, ${dv}) / ${perElement} exps per element = ${si(y)} elements/s`;
      series.push({
        name: `exp bound (${dv})`,
        color: ROOF_EXP,
        points: [
          { x: cases[0].elements, y, tip },
          { x: cases[cases.length - 1].elements, y, tip },
        ],
        style: 'dashed',
        marker: 'none',
      });
    }
  }
  return series;
}

/** [10^a, 10^b] around the values (at least one decade). */
function decades(values: number[]): [number, number] {
  const pos = values.filter((v) => v > 0 && Number.isFinite(v));
  if (pos.length === 0) return [1, 10];
  const lo = Math.floor(Math.log10(Math.min(...pos)));
  let hi = Math.ceil(Math.log10(Math.max(...pos)));
  if (hi <= lo) hi = lo + 1;
  return [10 ** lo, 10 ** hi];
}

function text(x: number, y: number, s: string, attrs = ''): string {
  return `<text x="${n2(x)}" y="${n2(y)}"${attrs ? ` ${attrs}` : ''}>${xmlEscape(s)}</text>`;
}

function markerSvg(kind: Series['marker'], x: number, y: number, color: string, tip: string | null): string {
  const title = tip === null ? '' : `<title>${xmlEscape(tip)}</title>`;
  if (kind === 'circle') return `<circle cx="${n2(x)}" cy="${n2(y)}" r="4" fill="${color}" stroke="#ffffff" stroke-width="1">${title}</circle>`;
  if (kind === 'diamond') {
    const d = 7;
    return `<path d="M${n2(x)} ${n2(y - d)}L${n2(x + d)} ${n2(y)}L${n2(x)} ${n2(y + d)}L${n2(x - d)} ${n2(y)}Z" fill="#ffffff" stroke="${color}" stroke-width="2.2">${title}</path>`;
  }
  return '';
}

/** The whole chart as a standalone SVG document. */
export function renderChart(r: BenchResults): string {
  const series = chartSeries(r);
  const all = series.flatMap((s) => s.points);
  const [xmin, xmax] = decades(all.map((p) => p.x));
  const [ymin, ymax] = decades(all.map((p) => p.y));
  const lx = (v: number): number => PLOT.left + ((Math.log10(v) - Math.log10(xmin)) / (Math.log10(xmax) - Math.log10(xmin))) * (PLOT.right - PLOT.left);
  const ly = (v: number): number => PLOT.bottom - ((Math.log10(v) - Math.log10(ymin)) / (Math.log10(ymax) - Math.log10(ymin))) * (PLOT.bottom - PLOT.top);

  const o: string[] = [];
  o.push('<?xml version="1.0" encoding="UTF-8"?>');
  o.push(
    `<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="${FONT}" font-size="13" fill="#222222">`,
  );
  const m = r.machine;
  const title = `kdloss ${m.kdloss}: distillation loss throughput against input size (float32, one-hot targets)`;
  o.push(`<title>${xmlEscape(title)}</title>`);
  o.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`);
  o.push(text(W / 2, 28, title, 'text-anchor="middle" font-size="17" font-weight="bold"'));
  o.push(
    text(
      W / 2,
      50,
      `${m.cpu}, ${m.cores} cores, ${m.memoryGB} GB RAM, node ${m.node} ${m.platform}-${m.arch}, load average ${m.loadAverage.join(' ')}`,
      'text-anchor="middle" font-size="13"',
    ),
  );
  o.push(
    text(
      W / 2,
      68,
      `${r.date.replace(/\.\d+Z$/, 'Z')}, commit ${m.commit ?? 'unknown'}; T = 4, alpha = 0.7, CrossEntropyLoss; median per call, 1 thread unless marked`,
      'text-anchor="middle" font-size="12" fill="#555555"',
    ),
  );

  // Grid, ticks and tick labels.
  o.push('<g stroke-width="1">');
  o.push(`<rect x="${PLOT.left}" y="${PLOT.top}" width="${PLOT.right - PLOT.left}" height="${PLOT.bottom - PLOT.top}" fill="#fbfbfb" stroke="#999999"/>`);
  for (let d = xmin; d <= xmax * 1.0001; d *= 10) {
    for (let k = 1; k < 10; k++) {
      const v = d * k;
      if (v > xmax * 1.0001) break;
      const x = n2(lx(v));
      o.push(`<line x1="${x}" y1="${PLOT.top}" x2="${x}" y2="${PLOT.bottom}" stroke="${k === 1 ? '#d0d0d0' : '#ececec'}"/>`);
    }
  }
  for (let d = ymin; d <= ymax * 1.0001; d *= 10) {
    for (let k = 1; k < 10; k++) {
      const v = d * k;
      if (v > ymax * 1.0001) break;
      const y = n2(ly(v));
      o.push(`<line x1="${PLOT.left}" y1="${y}" x2="${PLOT.right}" y2="${y}" stroke="${k === 1 ? '#d0d0d0' : '#ececec'}"/>`);
    }
  }
  o.push('</g>');
  o.push('<g font-size="12" fill="#333333">');
  for (let d = xmin; d <= xmax * 1.0001; d *= 10) o.push(text(lx(d), PLOT.bottom + 18, si(d), 'text-anchor="middle"'));
  for (let d = ymin; d <= ymax * 1.0001; d *= 10) o.push(text(PLOT.left - 8, ly(d) + 4, `${si(d)}/s`, 'text-anchor="end"'));
  o.push('</g>');
  o.push(text((PLOT.left + PLOT.right) / 2, PLOT.bottom + 42, 'input size: student elements per call (rows x classes), log scale', 'text-anchor="middle" font-size="14"'));
  const yMid = (PLOT.top + PLOT.bottom) / 2;
  o.push(text(22, yMid, 'throughput: elements/s, log scale', `text-anchor="middle" font-size="14" transform="rotate(-90 22 ${n2(yMid)})"`));

  // Size annotations of the cases on the x axis.
  const cases = chartCases(r);
  if (series.length === 0) {
    o.push(text((PLOT.left + PLOT.right) / 2, yMid, 'no KD float32 one-hot case in these results', 'text-anchor="middle" font-size="15" fill="#888888"'));
  }

  // Roofline first (under the data), then the variants, then the thread markers.
  const order = [...series.filter((s) => s.style === 'dashed'), ...series.filter((s) => s.style === 'line'), ...series.filter((s) => s.style === 'markers')];
  for (const s of order) {
    const pts = s.points.map((p) => `${n2(lx(p.x))},${n2(ly(p.y))}`).join(' ');
    o.push(`<g class="series" data-name="${xmlEscape(s.name)}">`);
    if (s.style !== 'markers') {
      const dash = s.style === 'dashed' ? ' stroke-dasharray="7 5"' : '';
      const width = s.style === 'dashed' ? 1.8 : 2.4;
      o.push(`<polyline points="${pts}" fill="none" stroke="${s.color}" stroke-width="${width}"${dash} stroke-linejoin="round"><title>${xmlEscape(s.name)}</title></polyline>`);
    }
    for (const p of s.points) o.push(markerSvg(s.marker, lx(p.x), ly(p.y), s.color, p.tip));
    o.push('</g>');
  }
  // The case shapes along the bottom of the plot, stacked in rows so that no two labels overlap.
  const rows: [number, number][][] = [];
  o.push('<g font-size="10" fill="#777777">');
  for (const c of cases) {
    const x = lx(c.elements);
    const label = `${c.rows}x${c.cols}`;
    const width = label.length * 6.2 + 4;
    const right = x + width > PLOT.right;
    const span: [number, number] = right ? [x - width, x] : [x, x + width];
    let row = rows.findIndex((spans) => spans.every(([a, b]) => span[1] <= a || span[0] >= b));
    if (row < 0) row = rows.push([]) - 1;
    rows[row].push(span);
    o.push(text(right ? x - 3 : x + 3, PLOT.bottom - 6 - row * 12, label, `text-anchor="${right ? 'end' : 'start'}"`));
  }
  o.push('</g>');

  // Legend.
  o.push('<g font-size="13">');
  o.push(text(LEGEND_X, PLOT.top + 4, 'variant', 'font-weight="bold"'));
  series.forEach((s, i) => {
    const y = PLOT.top + 28 + i * 26;
    if (s.style !== 'markers') {
      const dash = s.style === 'dashed' ? ' stroke-dasharray="7 5"' : '';
      o.push(`<line x1="${LEGEND_X}" y1="${y}" x2="${LEGEND_X + 30}" y2="${y}" stroke="${s.color}" stroke-width="${s.style === 'dashed' ? 1.8 : 2.4}"${dash}/>`);
    }
    o.push(markerSvg(s.marker, LEGEND_X + 15, y, s.color, null));
    o.push(text(LEGEND_X + 38, y + 4, s.name, s.name.length > 26 ? 'font-size="11"' : ''));
  });
  o.push('</g>');

  // Notes under the legend.
  const dv = r.defaultVariant;
  const exp = dv !== null ? r.probes[dv]?.expPerSec.float32 : undefined;
  const notes = [
    'Solid: median per call of the sync',
    'forward, 1 thread. Dashed: the roofline',
    `of the default variant${dv !== null ? ` (${dv})` : ''}, measured:`,
    '- memory: elements / time of',
    '  vecmath(sum) over the bytes a call',
    '  reads (student, teacher, one-hot);',
    '  at small sizes the cost of a call',
    `- exp: vecmath(exp) rate${exp ? ` ${si(exp)}/s` : ''} / 3`,
    '  exps per element',
    'Hover a point for its values.',
  ];
  const ny = PLOT.top + 28 + series.length * 26 + 14;
  o.push('<g font-size="11" fill="#555555">');
  // (SVG collapses leading spaces: continuation lines are indented by position.)
  notes.forEach((s, i) => o.push(text(LEGEND_X + (s.startsWith('  ') ? 10 : 0), ny + i * 15, s.trim())));
  o.push('</g>');

  const foot = `kdloss bench: ${r.variants.length} variant${r.variants.length === 1 ? '' : 's'} measured (${r.variants.join(', ')}), ${cases.length} sizes; bench/README.md explains the cases.`;
  o.push(text(W / 2, H - 14, foot, 'text-anchor="middle" font-size="11" fill="#777777"'));
  o.push('</svg>');
  return `${o.join('\n')}\n`;
}
