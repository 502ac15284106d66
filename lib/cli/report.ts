/**
 * Output of `kdloss eval`: the text report, the JSON object, and the progress bar.
 * @module
 */
import { escapeText } from '../util/text';
import type { HistogramBin } from './histogram';
import type { EvalSummary, InputInfo, TeacherInfo } from './summary';

/** Classes listed in the text report's per-class table (all of them are in the JSON). */
export const MAX_TEXT_CLASSES = 50;

/** A loss-like value: 6 decimals in the usual range, exponent notation outside it. */
export function fmtNum(x: number | null): string {
  if (x === null) return 'n/a';
  if (!Number.isFinite(x)) return String(x);
  if (x === 0) return '0';
  const a = Math.abs(x);
  return a >= 1e-3 && a < 1e6 ? x.toFixed(6) : x.toExponential(4);
}

/** A fraction as a percentage with two decimals. */
export function fmtPct(x: number | null): string {
  return x === null ? 'n/a' : `${(100 * x).toFixed(2)}%`;
}

/** An integer with thousands separators. */
export function fmtInt(x: number): string {
  return Math.round(x).toLocaleString('en-US');
}

/** Seconds, with a precision fitting their magnitude. */
export function fmtSeconds(s: number): string {
  return s < 10 ? `${s.toFixed(3)} s` : `${s.toFixed(1)} s`;
}

function fmtEdge(x: number): string {
  return x.toExponential(2);
}

function binLabel(b: HistogramBin): string {
  if (b.lo === null) return `< ${fmtEdge(b.hi!)}`;
  if (b.hi === null) return `>= ${fmtEdge(b.lo)}`;
  return `[${fmtEdge(b.lo)}, ${fmtEdge(b.hi)})`;
}

function padL(s: string, n: number): string {
  return s.length >= n ? s : ' '.repeat(n - s.length) + s;
}

function padR(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

/** The report's JSON format: `kdloss merge` reads this back. */
export const REPORT_FORMAT = 'kdloss-eval/1';

/** How an input is named in the report: its file, and its tensor in a safetensors file. */
function inputName(i: InputInfo): string {
  return i.key === null ? escapeText(i.file) : `${escapeText(i.file)} [${escapeText(i.key)}]`;
}

/** A shape as numpy prints it. */
function shapeText(shape: readonly number[]): string {
  return shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
}

/** How the report names the soft term of `st`'s divergence. */
function divergenceOf(st: EvalSummary['settings']): { name: string; short: string; formula: string; w: string } {
  const w = st.temperatureScaling === false ? '' : `${st.temperature}^2 * `;
  switch (st.divergence ?? 'kl') {
    case 'reverse-kl':
      return { name: 'reverse-kl', short: 'reverse KL', formula: 'KL(p_student || p_teacher)', w };
    case 'jsd':
      return { name: `jsd, beta = ${st.beta}`, short: 'JSD', formula: `${st.beta} KL(p_t || m) + ${+(1 - st.beta!).toFixed(12)} KL(p_s || m), m their mixture`, w };
    case 'tvd':
      return { name: 'tvd', short: 'TVD', formula: '1/2 sum |p_teacher - p_student|', w };
    default:
      return { name: 'kl', short: 'KL', formula: 'KL(p_teacher || p_student)', w };
  }
}

/** Where a sparse teacher's KL is taken. */
function softSupport(t: TeacherInfo): string {
  if (t.format === 'dense') return '';
  return t.tail ? " over the teacher's top-k and the tail bucket" : " over the teacher's top-k";
}

/** A ratio as '1,000x', '42x', '1.7x' or '0.58x'. */
function fmtRatio(x: number): string {
  if (!Number.isFinite(x)) return `${x}x`;
  return x >= 100 ? `${fmtInt(x)}x` : `${+x.toPrecision(2)}x`;
}

/** The teacher's lines of the text report. */
function teacherLines(r: EvalSummary): string[] {
  const { inputs } = r;
  const t: TeacherInfo = r.teacher;
  if (t.format === 'dense') return [`  teacher   ${inputName(inputs.teacher!)}`];
  const idx = inputs.teacherIndices!;
  const val = inputs.teacherValues!;
  const what =
    t.kind === 'logits'
      ? 'logits, renormalised over the entries'
      : t.tail
        ? 'log-probabilities at T, with the tail bucket (the mass outside the entries)'
        : 'log-probabilities at T, renormalised over the entries (--no-tail)';
  const dense = t.denseFloat32BytesPerToken;
  const top = `sparse, top-${fmtInt(t.k)} entries per row`;
  const oneFile = idx.file === val.file && idx.key !== null && val.key !== null;
  const where = oneFile
    ? `${escapeText(idx.file)} [${escapeText(idx.key!)}, ${escapeText(val.key!)}]: ${top} (${idx.dtype} indices, ${val.dtype} values)`
    : `${top}: ${inputName(idx)} (${idx.dtype} indices), ${inputName(val)} (${val.dtype} values)`;
  return [
    `  teacher   ${where}`,
    `            ${what}`,
    `            ${fmtInt(t.bytesPerToken)} bytes per token; a dense float32 teacher takes ${fmtInt(dense)} (${fmtRatio(dense / t.bytesPerToken)} as many)`,
  ];
}

/**
 * The text report.
 * @param width terminal width the histogram bars are scaled to
 */
export function formatText(r: EvalSummary, width = 80): string {
  const out: string[] = [];
  const { settings: st, inputs } = r;
  const T = st.temperature;
  const labelsKind = st.labels?.kind ?? null;
  const labelNote = st.labels === null ? '' : st.labels.kind === 'indices' ? ` (${st.labels.dtype} class indices)` : ` (${st.labels.dtype} one-hot rows)`;
  const shape = inputs.student.shape;
  const from = shape.length > 2 ? `, shape ${shapeText(shape)}` : '';
  out.push(`kdloss eval: ${fmtInt(r.rows)} rows x ${fmtInt(st.cols)} classes (${st.dtype}${from})`);
  // File and tensor names are the user's: escaped, so that they cannot break the report or drive the terminal.
  out.push(`  student   ${inputName(inputs.student)}`);
  out.push(...teacherLines(r));
  out.push(`  labels    ${inputs.labels === null ? '(none)' : inputName(inputs.labels) + labelNote}`);
  if (r.shard !== null) {
    const s = r.shard;
    const empty = s.rowEnd === s.rowStart ? ` (empty: ${fmtInt(s.totalRows)} rows split ${s.count} ways leave none to this shard)` : '';
    out.push(`  shard ${s.index}/${s.count}: rows [${fmtInt(s.rowStart)}, ${fmtInt(s.rowEnd)}) of ${fmtInt(s.totalRows)}${empty}`);
  }
  if (r.run.merged !== null) out.push(`  merged from ${r.run.merged.length} shard report${r.run.merged.length === 1 ? '' : 's'}`);
  out.push(`  T = ${T}, alpha = ${st.alpha}${labelsKind === null && st.requestedAlpha !== 1 ? ` (requested ${st.requestedAlpha})` : ''}`);
  const div = divergenceOf(st);
  out.push(`  divergence ${div.name}${st.temperatureScaling === false ? ', no temperature scaling (soft term not multiplied by T^2)' : ''}`);
  if (st.ignoreIndex !== null) {
    out.push(`  tokens: ${fmtInt(r.evaluated)} evaluated, ${fmtInt(r.ignored)} ignored (label ${st.ignoreIndex})`);
  }
  const engine = r.run.backend === 'native' && r.run.isa !== null ? `native (${r.run.isa})` : r.run.backend;
  const chunks = r.run.chunkRows === null ? '' : `, chunks of ${fmtInt(r.run.chunkRows)} rows`;
  out.push(`  backend ${engine}, ${r.run.threads === null ? 'default' : r.run.threads} threads${chunks}`);
  if (labelsKind === null) {
    out.push(`  no labels: the hard (CE) term is undefined, so alpha is taken as 1 and the loss is ${div.w}${div.short};`);
    out.push('  accuracies and the per-class table need --labels');
  }
  if (r.evaluated === 0) out.push(`  no rows evaluated${r.rows > 0 ? ' (every label is the ignore index)' : ''}: the means are not defined`);
  out.push('');

  out.push(st.ignoreIndex !== null ? 'Loss (mean over evaluated rows)' : 'Loss (mean over rows)');
  const formula = labelsKind === null ? `= ${div.w}soft` : `= ${st.alpha} * ${div.w}soft + ${+(1 - st.alpha).toFixed(12)} * hard`;
  const terms: [string, number | null, string][] = [
    ['KD loss', r.loss, formula],
    [`soft (${div.short} at T=${T})`, r.soft, `${div.formula}${softSupport(r.teacher)}${st.temperatureScaling === false ? '' : ', before the T^2 factor'}`],
    ['hard (CE)', r.hard, labelsKind === null ? 'no labels' : 'cross-entropy of the student against the labels'],
  ];
  const tw = Math.max(...terms.map(([name]) => name.length));
  for (const [name, value, note] of terms) out.push(`  ${padR(name, tw)}  ${padL(fmtNum(value), 12)}   ${note}`);
  out.push('');

  out.push('Top-1');
  const cnt = (k: number | null): string => (k === null ? '' : `  (${fmtInt(k)} / ${fmtInt(r.evaluated)})`);
  out.push(`  teacher/student agreement   ${padL(fmtPct(r.agreement), 8)}${cnt(r.agreementCount)}`);
  out.push(`  student accuracy            ${padL(fmtPct(r.studentAccuracy), 8)}${cnt(r.studentCorrect)}`);
  out.push(`  teacher accuracy            ${padL(fmtPct(r.teacherAccuracy), 8)}${cnt(r.teacherCorrect)}`);
  out.push('');

  if (r.perClass !== null) {
    out.push(`Per class (${fmtInt(r.perClass.length)} of ${fmtInt(st.cols)} classes present in the labels)`);
    const cw = Math.max(5, String(st.cols - 1).length);
    const sw = Math.max(7, fmtInt(r.evaluated).length);
    out.push(`  ${padL('class', cw)}  ${padL('support', sw)}  ${padL('student acc', 11)}  ${padL('teacher acc', 11)}  ${padL('mean KL', 12)}`);
    for (const c of r.perClass.slice(0, MAX_TEXT_CLASSES)) {
      out.push(
        `  ${padL(String(c.class), cw)}  ${padL(fmtInt(c.support), sw)}  ${padL(fmtPct(c.studentAccuracy), 11)}  ${padL(fmtPct(c.teacherAccuracy), 11)}  ${padL(fmtNum(c.meanKl), 12)}`,
      );
    }
    if (r.perClass.length > MAX_TEXT_CLASSES) out.push(`  ... ${fmtInt(r.perClass.length - MAX_TEXT_CLASSES)} more classes (all of them in --json)`);
    out.push('');
  }

  const h = r.klHistogram;
  const range = h.min === null ? '' : `, min ${fmtNum(h.min)}, max ${fmtNum(h.max)}`;
  out.push(`Per-sample KL at T=${T} (log-spaced bins${range})`);
  const labels = h.bins.map(binLabel);
  const lw = Math.max(0, ...labels.map((s) => s.length));
  const maxCount = Math.max(1, ...h.bins.map((b) => b.count));
  const nw = fmtInt(maxCount).length;
  const barWidth = Math.max(10, width - 2 - lw - 2 - nw - 2);
  h.bins.forEach((b, i) => {
    const len = b.count === 0 ? 0 : Math.max(1, Math.round((b.count / maxCount) * barWidth));
    out.push(`  ${padR(labels[i], lw)}  ${padL(fmtInt(b.count), nw)}  ${'#'.repeat(len)}`.trimEnd());
  });
  if (h.nan > 0) out.push(`  NaN: ${fmtInt(h.nan)} rows (NaN logits; the means above are NaN too)`);
  out.push('');

  if (r.run.merged !== null) {
    out.push(`${fmtInt(r.rows)} rows from ${r.run.merged.length} shard reports (${fmtSeconds(r.run.seconds)} of evaluation in all, ${fmtInt(r.rowsPerSecond)} rows/s)`);
  } else {
    const perSample = r.run.perSample === null ? '' : `; per-sample losses written to ${escapeText(r.run.perSample)}`;
    out.push(`${fmtInt(r.rows)} rows in ${fmtSeconds(r.run.seconds)} (${fmtInt(r.rowsPerSecond)} rows/s)${perSample}`);
  }
  return out.join('\n') + '\n';
}

/** The JSON object of `--json`. `maxRssBytes` is the process's peak resident set size. */
export function toJson(r: EvalSummary, maxRssBytes: number): Record<string, unknown> {
  const st = r.settings;
  return {
    format: REPORT_FORMAT,
    rows: r.rows,
    cols: st.cols,
    dtype: st.dtype,
    temperature: st.temperature,
    alpha: st.alpha,
    divergence: st.divergence ?? 'kl',
    beta: st.beta ?? null,
    temperatureScaling: st.temperatureScaling ?? true,
    requestedAlpha: st.requestedAlpha,
    ignoreIndex: st.ignoreIndex,
    loss: r.loss,
    soft: r.soft,
    hard: r.hard,
    agreement: r.agreement,
    studentAccuracy: r.studentAccuracy,
    teacherAccuracy: r.teacherAccuracy,
    counts: { agreement: r.agreementCount, studentCorrect: r.studentCorrect, teacherCorrect: r.teacherCorrect },
    tokens: { rows: r.rows, evaluated: r.evaluated, ignored: r.ignored },
    perClass: r.perClass,
    klHistogram: r.klHistogram,
    labels: st.labels,
    note: st.labels === null ? 'no labels: alpha taken as 1, loss = T^2 * soft; hard and accuracies are null' : null,
    teacher: r.teacher,
    files: {
      student: r.inputs.student.file,
      teacher: r.inputs.teacher?.file ?? null,
      ...(r.inputs.teacherIndices ? { teacherIndices: r.inputs.teacherIndices.file, teacherValues: r.inputs.teacherValues!.file } : {}),
      labels: r.inputs.labels?.file ?? null,
      perSample: r.run.perSample,
    },
    inputs: r.inputs,
    shard: r.shard,
    merged: r.run.merged,
    seconds: r.run.seconds,
    rowsPerSecond: r.rowsPerSecond,
    maxRssBytes,
    chunkRows: r.run.chunkRows,
    threads: r.run.threads,
    backend: r.run.backend,
    isa: r.run.isa,
    settings: st,
    state: r.state,
  };
}

/**
 * A one-line progress bar on a TTY stream: first drawn once the run has taken `delayMs` (short runs
 * get none), then redrawn at most every `intervalMs`, and erased by {@link clear}. Does nothing when
 * the stream is not a TTY (output piped or redirected).
 */
export class ProgressBar {
  private last = 0;
  private shown = false;
  private readonly start = performance.now();

  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly total: number,
    private readonly intervalMs = 100,
    private readonly delayMs = 300,
  ) {}

  /** True when the bar is drawn at all. */
  get enabled(): boolean {
    return this.stream.isTTY === true;
  }

  /** Redraws for `done` rows (throttled). */
  update(done: number): void {
    if (!this.enabled) return;
    const now = performance.now();
    if (now - this.start < this.delayMs) return; // short runs get no bar at all
    if (now - this.last < this.intervalMs && done < this.total) return;
    this.last = now;
    const width = Math.max(40, Math.min(this.stream.columns || 80, 120));
    const frac = this.total > 0 ? done / this.total : 1;
    const secs = (now - this.start) / 1000;
    const rate = secs > 0 ? done / secs : 0;
    const text = `${(100 * frac).toFixed(1).padStart(5)}%  ${fmtInt(done)}/${fmtInt(this.total)} rows  ${fmtInt(rate)} rows/s`;
    const barWidth = Math.max(10, width - text.length - 5);
    const filled = Math.round(frac * barWidth);
    this.stream.write(`\r[${'#'.repeat(filled)}${'.'.repeat(barWidth - filled)}] ${text}\x1b[K`);
    this.shown = true;
  }

  /** Erases the bar. */
  clear(): void {
    if (this.shown) this.stream.write('\r\x1b[K');
    this.shown = false;
  }
}
