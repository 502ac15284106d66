/**
 * `kdloss merge`: the --json reports of the shards of one evaluation (kdloss eval --shard i/n) into
 * the report of one run over all the rows. Each report is checked whole before anything is merged
 * (reports are files, and may be anything); the reports must be of one split, every shard once, with
 * the same settings (a sparse teacher's k, kind and tail among them) and the same inputs (by size and
 * fingerprint, wherever the files were).
 * @module
 */
import { promises as fsp } from 'fs';
import { type AccumulatorState, EvalAccumulator } from './accumulator';
import { CliError, FileError, fsProblem } from './errors';
import { REPORT_FORMAT } from './report';
import { shardRange } from './shards';
import type { EvalInputsInfo, EvalSettings, EvalSummary, InputInfo } from './summary';
import { summarize } from './summary';

/** Reports larger than this are refused before reading. */
export const MAX_REPORT_BYTES = 256 << 20;

/** One report, checked. */
export interface ShardReport {
  file: string;
  settings: EvalSettings;
  inputs: EvalInputsInfo;
  index: number;
  count: number;
  rowStart: number;
  rowEnd: number;
  totalRows: number;
  acc: EvalAccumulator;
  seconds: number;
  backend: string;
  isa: string | null;
  threads: number | null;
}

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** JSON text of `v` with object keys sorted: equal values give equal text. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (isObj(v)) {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v) ?? 'undefined';
}

/** Checks one input's description. */
function inputInfo(v: unknown, role: string, bad: (p: string) => never): InputInfo {
  if (!isObj(v)) return bad(`inputs.${role}: expected an object`);
  const { file, format, key, shape, dtype, bytes, fingerprint } = v;
  if (typeof file !== 'string') bad(`inputs.${role}.file: expected a string`);
  if (format !== 'npy' && format !== 'safetensors') bad(`inputs.${role}.format: expected "npy" or "safetensors"`);
  if (key !== null && typeof key !== 'string') bad(`inputs.${role}.key: expected a string or null`);
  if (!Array.isArray(shape) || !shape.every(isCount)) bad(`inputs.${role}.shape: expected an array of counts`);
  if (typeof dtype !== 'string') bad(`inputs.${role}.dtype: expected a string`);
  if (!isCount(bytes)) bad(`inputs.${role}.bytes: expected a count`);
  if (typeof fingerprint !== 'string') bad(`inputs.${role}.fingerprint: expected a string`);
  return v as unknown as InputInfo;
}

/** Checks the settings' fields (any others are compared between reports, not read). */
function settingsOf(v: unknown, bad: (p: string) => never): EvalSettings {
  if (!isObj(v)) return bad('settings: expected an object');
  const s = v as Partial<EvalSettings>;
  const num = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);
  if (!num(s.temperature) || s.temperature <= 0) bad('settings.temperature: expected a number > 0');
  if (!num(s.alpha) || s.alpha < 0 || s.alpha > 1) bad('settings.alpha: expected a number in [0, 1]');
  if (!num(s.requestedAlpha)) bad('settings.requestedAlpha: expected a number');
  // Reports from before the divergences have none of these (the forward KL, scaled by T^2).
  if (s.divergence !== undefined && !['kl', 'reverse-kl', 'jsd', 'tvd'].includes(s.divergence as string)) bad('settings.divergence: expected kl, reverse-kl, jsd or tvd');
  if (s.beta !== undefined && s.beta !== null && !(num(s.beta) && s.beta > 0 && s.beta < 1)) bad('settings.beta: expected null or a number in (0, 1)');
  if (s.temperatureScaling !== undefined && typeof s.temperatureScaling !== 'boolean') bad('settings.temperatureScaling: expected a boolean');
  if (s.ignoreIndex !== null && !(Number.isInteger(s.ignoreIndex) && Math.abs(s.ignoreIndex!) <= 2 ** 31)) bad('settings.ignoreIndex: expected an integer or null');
  if (!isCount(s.cols) || s.cols < 1) bad('settings.cols: expected a count >= 1');
  if (typeof s.dtype !== 'string') bad('settings.dtype: expected a string');
  const l = s.labels;
  if (l !== null && !(isObj(l) && (l.kind === 'indices' || l.kind === 'one-hot') && typeof l.dtype === 'string')) {
    bad('settings.labels: expected null or { kind, dtype }');
  }
  const t = s.teacher as unknown;
  if (t !== undefined) {
    const ok =
      isObj(t) &&
      t.format === 'sparse' &&
      isCount(t.k) &&
      t.k >= 1 &&
      t.k <= s.cols! &&
      (t.kind === 'logits' || t.kind === 'logprobs') &&
      typeof t.tail === 'boolean' &&
      !(t.kind === 'logits' && t.tail);
    if (!ok) bad("settings.teacher: expected { format: 'sparse', k, kind, tail } (k in 1..cols; tail only with logprobs)");
  }
  return v as unknown as EvalSettings;
}

/**
 * Reads and checks one report.
 * @throws FileError naming the file and the problem
 */
export async function readReport(file: string): Promise<ShardReport> {
  const bad = (problem: string): never => {
    throw new FileError(file, problem);
  };
  let text: string;
  try {
    const st = await fsp.stat(file);
    if (!st.isFile()) bad('not a regular file');
    if (st.size > MAX_REPORT_BYTES) bad(`${st.size} bytes: larger than a kdloss eval --json report may be (${MAX_REPORT_BYTES})`);
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    if (err instanceof CliError) throw err;
    return bad(fsProblem(err));
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    return bad(`not valid JSON (${String((err as Error).message).slice(0, 120)})`);
  }
  if (!isObj(doc)) return bad('not a kdloss eval --json report (not a JSON object)');
  if (doc.format !== REPORT_FORMAT) {
    return bad(`not a kdloss eval --json report of this version (format ${JSON.stringify(doc.format ?? null).slice(0, 60)}, expected "${REPORT_FORMAT}")`);
  }
  const settings = settingsOf(doc.settings, bad);
  const ins = doc.inputs;
  if (!isObj(ins)) return bad('inputs: expected an object');
  const sparse = settings.teacher !== undefined;
  const inputs: EvalInputsInfo = {
    student: inputInfo(ins.student, 'student', bad),
    teacher: sparse && ins.teacher === null ? null : inputInfo(ins.teacher, 'teacher', bad),
    labels: ins.labels === null ? null : inputInfo(ins.labels, 'labels', bad),
  };
  if (sparse) {
    if (inputs.teacher !== null) bad('inputs.teacher: expected null with a sparse teacher');
    inputs.teacherIndices = inputInfo(ins.teacherIndices, 'teacherIndices', bad);
    inputs.teacherValues = inputInfo(ins.teacherValues, 'teacherValues', bad);
  } else if (ins.teacherIndices !== undefined || ins.teacherValues !== undefined) {
    bad('inputs.teacherIndices: only with a sparse teacher (settings.teacher)');
  }
  if ((inputs.labels === null) !== (settings.labels === null)) bad('inputs.labels and settings.labels disagree');
  if (!isCount(doc.rows)) bad('rows: expected a count');
  const rows = doc.rows as number;
  let shard = { index: 1, count: 1, rowStart: 0, rowEnd: rows, totalRows: rows };
  if (doc.shard !== null) {
    const s = doc.shard;
    if (!isObj(s) || ![s.index, s.count, s.rowStart, s.rowEnd, s.totalRows].every(isCount)) return bad('shard: expected null or { index, count, rowStart, rowEnd, totalRows }');
    shard = s as typeof shard;
    const { index, count, totalRows } = shard;
    if (index < 1 || index > count) bad(`shard ${index}/${count}: the index is not in 1..${count}`);
    const r = shardRange(totalRows, index, count);
    if (r.start !== shard.rowStart || r.end !== shard.rowEnd) {
      bad(`shard ${index}/${count} of ${totalRows} rows covers rows [${r.start}, ${r.end}), not [${shard.rowStart}, ${shard.rowEnd})`);
    }
    if (rows !== shard.rowEnd - shard.rowStart) bad(`rows ${rows} do not match the shard's range`);
  }
  let acc: EvalAccumulator;
  try {
    acc = EvalAccumulator.fromState(doc.state as AccumulatorState);
  } catch (err) {
    return bad(`state: ${String((err as Error).message).slice(0, 200)}`);
  }
  const st = acc.toState();
  if (st.cols !== settings.cols || st.hasLabels !== (settings.labels !== null) || st.ignoreIndex !== settings.ignoreIndex) {
    bad('state: its classes, labels or ignore index disagree with the settings');
  }
  if (st.rows + st.ignored !== rows) bad(`state: ${st.rows} evaluated and ${st.ignored} ignored rows, not the report's ${rows}`);
  const seconds = typeof doc.seconds === 'number' && Number.isFinite(doc.seconds) && doc.seconds >= 0 ? doc.seconds : bad('seconds: expected a number >= 0');
  const backend = typeof doc.backend === 'string' ? doc.backend : bad('backend: expected a string');
  const isa = doc.isa === null || typeof doc.isa === 'string' ? doc.isa : bad('isa: expected a string or null');
  const threads = doc.threads === null || isCount(doc.threads) ? doc.threads : bad('threads: expected a count or null');
  return { file, settings, inputs, ...shard, acc, seconds, backend, isa, threads };
}

/** The one value all reports share, or `mixed`. */
function common<T>(values: T[], mixed: T): T {
  return values.every((v) => v === values[0]) ? values[0] : mixed;
}

/**
 * Checks that the reports are the shards of one evaluation, every shard once, and merges them.
 * @throws CliError naming the files and the problem
 */
export function mergeReports(reports: ShardReport[]): EvalSummary {
  const first = reports[0];
  const sameInputs = (r: ShardReport): string | null => {
    for (const role of ['student', 'teacher', 'teacherIndices', 'teacherValues', 'labels'] as const) {
      const a = first.inputs[role] ?? null;
      const b = r.inputs[role] ?? null;
      const strip = (i: InputInfo | null): unknown => (i === null ? null : { ...i, file: undefined });
      if (canonical(strip(a)) !== canonical(strip(b))) {
        const what =
          a === null || b === null
            ? 'one has labels, the other none'
            : (['format', 'key', 'shape', 'dtype', 'bytes', 'fingerprint'] as const)
                .filter((k) => canonical(a[k]) !== canonical(b[k]))
                .map((k) => `${k} ${canonical(b[k]).slice(0, 80)} vs ${canonical(a[k]).slice(0, 80)}`)
                .join(', ');
        const flag = role === 'teacherIndices' ? 'teacher-indices' : role === 'teacherValues' ? 'teacher-values' : role;
        return `its --${flag} input is not ${first.file}'s (${what})`;
      }
    }
    return null;
  };
  const teacherOf = (r: ShardReport): string => {
    const t = r.settings.teacher;
    return t === undefined ? 'a dense teacher' : `a sparse teacher (top-${t.k} ${t.kind}${t.kind === 'logprobs' ? (t.tail ? ' with the tail bucket' : ', no tail') : ''})`;
  };
  for (const r of reports.slice(1)) {
    if (canonical(r.settings.teacher) !== canonical(first.settings.teacher)) {
      throw new CliError(`${r.file}: settings differ from ${first.file}'s (${teacherOf(r)} vs ${teacherOf(first)})`);
    }
    if (canonical(r.settings) !== canonical(first.settings)) {
      const keys = [...new Set([...Object.keys(first.settings), ...Object.keys(r.settings)])];
      const diff = keys
        .filter((k) => canonical((r.settings as unknown as Obj)[k]) !== canonical((first.settings as unknown as Obj)[k]))
        .map((k) => `${k} ${canonical((r.settings as unknown as Obj)[k]).slice(0, 60)} vs ${canonical((first.settings as unknown as Obj)[k]).slice(0, 60)}`);
      throw new CliError(`${r.file}: settings differ from ${first.file}'s (${diff.join(', ')})`);
    }
    const inputs = sameInputs(r);
    if (inputs !== null) throw new CliError(`${r.file}: ${inputs}`);
    if (r.totalRows !== first.totalRows) throw new CliError(`${r.file}: a split of ${r.totalRows} rows, but ${first.file} splits ${first.totalRows}`);
    if (r.count !== first.count) {
      throw new CliError(`${r.file}: shard ${r.index}/${r.count}, but ${first.file} is shard ${first.index}/${first.count}: reports of different splits`);
    }
  }
  const n = first.count;
  const byIndex = new Map<number, ShardReport>();
  for (const r of reports) {
    const twin = byIndex.get(r.index);
    if (twin) throw new CliError(`${r.file}: shard ${r.index}/${n} again (${twin.file} is shard ${r.index}/${n} too)`);
    byIndex.set(r.index, r);
  }
  const missing: number[] = [];
  for (let i = 1; i <= n; i++) if (!byIndex.has(i)) missing.push(i);
  if (missing.length > 0) {
    const list = missing.slice(0, 10).map((i) => `${i}/${n}`).join(', ') + (missing.length > 10 ? ` and ${missing.length - 10} more` : '');
    throw new CliError(`missing shard${missing.length > 1 ? 's' : ''} ${list} (${reports.length} of ${n} reports given)`);
  }
  const ordered = [...byIndex.keys()].sort((a, b) => a - b).map((i) => byIndex.get(i)!);
  const acc = new EvalAccumulator(first.settings.cols, first.settings.labels !== null, first.settings.ignoreIndex);
  for (const r of ordered) acc.merge(r.acc);
  return summarize(first.settings, first.inputs, null, acc, {
    seconds: ordered.reduce((a, r) => a + r.seconds, 0),
    chunkRows: null,
    threads: common(ordered.map((r) => r.threads), null),
    backend: common(ordered.map((r) => r.backend), 'mixed'),
    isa: common(ordered.map((r) => r.isa), 'mixed'),
    perSample: null,
    merged: reports.map((r) => r.file),
  });
}
