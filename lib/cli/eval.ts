/**
 * `kdloss eval`: streams student/teacher logits (and optional labels) from .npy files in row chunks,
 * computes each chunk with {@link DistillationLoss.forwardAsync} while the next chunk is read (two
 * preallocated buffer sets, so memory is bounded by two chunks whatever the file size), and
 * aggregates what the report needs.
 * @module
 */
import { setTimeout as sleep } from 'timers/promises';
import { DistillationLoss, getBackend, isa } from '../index';
import type { DistillationResult } from '../distillation';
import { CliError, FileError, InterruptedError } from './errors';
import { NpyF64Writer, NpyReader, shapeStr } from './npy';

/** What `kdloss eval` is asked to do. */
export interface EvalConfig {
  /** Student logits: 2-D float32/float64 .npy. */
  student: string;
  /** Teacher logits: same shape and dtype. */
  teacher: string;
  /** Optional labels: 1-D integer class indices, or a one-hot float matrix of the logits' shape. */
  labels?: string;
  temperature: number;
  /** Weight of the soft term; forced to 1 without labels. */
  alpha: number;
  /** Where to write each row's loss as a 1-D float64 .npy. */
  perSample?: string;
  /** Threads per chunk (default: the library's default for async calls). */
  threads?: number;
  /** Rows per chunk (default: about {@link DEFAULT_CHUNK_BYTES} per input, at most {@link MAX_CHUNK_ROWS}). */
  chunkRows?: number;
  /** Aborting stops reading and the in-flight computation; {@link evaluate} then rejects with an InterruptedError. */
  signal?: AbortSignal;
  /** Called after each chunk with the rows done so far. */
  onProgress?: (rowsDone: number, rowsTotal: number) => void;
  /** Called once the files are open and checked, before the first chunk. */
  onStart?: (info: { rows: number; cols: number; dtype: string; chunkRows: number }) => void;
}

/** Per-class figures (classes present in the labels). */
export interface ClassStats {
  class: number;
  /** Rows with this label. */
  support: number;
  /** Rows with this label whose student top-1 is the label. */
  studentCorrect: number;
  /** Rows with this label whose teacher top-1 is the label. */
  teacherCorrect: number;
  studentAccuracy: number;
  teacherAccuracy: number;
  /** Mean per-row KL(p_t || p_s) at T (the unweighted soft term) over these rows. */
  meanKl: number;
}

/** One histogram bin: [lo, hi); lo null is "below the smallest edge", hi null "at or above the largest". */
export interface HistogramBin {
  lo: number | null;
  hi: number | null;
  count: number;
}

/** Histogram of the per-row KL (unweighted soft term). */
export interface KlHistogram {
  /** 'log10': bin edges are log-spaced. */
  scale: 'log10';
  bins: HistogramBin[];
  /** Rows whose KL is NaN (NaN logits), not in any bin. */
  nan: number;
  /** Smallest and largest finite-or-infinite KL seen (null without rows). */
  min: number | null;
  max: number | null;
}

/** The outcome of an evaluation. */
export interface EvalSummary {
  files: { student: string; teacher: string; labels: string | null; perSample: string | null };
  rows: number;
  cols: number;
  dtype: 'float32' | 'float64';
  /** 'indices' (1-D integers), 'one-hot' (float matrix) or null without labels. */
  labelsKind: 'indices' | 'one-hot' | null;
  labelsDtype: string | null;
  temperature: number;
  /** The alpha the loss was computed with (1 without labels). */
  alpha: number;
  /** The alpha given on the command line. */
  requestedAlpha: number;
  /** alpha * T^2 * soft + (1 - alpha) * hard: the library's mean loss over all rows. */
  loss: number;
  /** Mean per-row KL(p_t || p_s) at T, unweighted (the library's `soft`). */
  soft: number;
  /** Mean per-row cross-entropy of the student against the labels (null without labels). */
  hard: number | null;
  /** Fraction of rows where student and teacher top-1 classes agree. */
  agreement: number;
  agreementCount: number;
  studentAccuracy: number | null;
  teacherAccuracy: number | null;
  studentCorrect: number | null;
  teacherCorrect: number | null;
  perClass: ClassStats[] | null;
  klHistogram: KlHistogram;
  seconds: number;
  rowsPerSecond: number;
  chunkRows: number;
  /** Threads per chunk as requested (null: the library's default). */
  threads: number | null;
  backend: string;
  isa: string | null;
}

/** Default chunk size per input, in bytes. */
export const DEFAULT_CHUNK_BYTES = 2 << 20;
/** Default upper bound of rows per chunk. */
export const MAX_CHUNK_ROWS = 65536;

type FloatArray = Float32Array | Float64Array;

/** Neumaier-compensated float64 sum. */
class Sum {
  private s = 0;
  private c = 0;

  add(x: number): void {
    const t = this.s + x;
    if (Math.abs(this.s) >= Math.abs(x)) this.c += this.s - t + x;
    else this.c += x - t + this.s;
    this.s = t;
  }

  get value(): number {
    return this.s + this.c;
  }
}

/**
 * Streaming histogram of non-negative values on log-spaced fine bins (32 per decade over
 * [1e-12, 1e6)), regrouped at the end into at most `maxBins` display bins over the range seen.
 */
export class LogHistogram {
  static readonly PER_DECADE = 32;
  static readonly LO_EXP = -12;
  static readonly HI_EXP = 6;
  private readonly counts = new Float64Array((LogHistogram.HI_EXP - LogHistogram.LO_EXP) * LogHistogram.PER_DECADE);
  private under = 0;
  private over = 0;
  private nan = 0;
  private min = Infinity;
  private max = -Infinity;

  add(v: number): void {
    if (Number.isNaN(v)) {
      this.nan++;
      return;
    }
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
    if (v < 10 ** LogHistogram.LO_EXP) {
      this.under++;
    } else if (v >= 10 ** LogHistogram.HI_EXP) {
      this.over++;
    } else {
      const i = Math.floor((Math.log10(v) - LogHistogram.LO_EXP) * LogHistogram.PER_DECADE);
      this.counts[Math.min(Math.max(i, 0), this.counts.length - 1)]++;
    }
  }

  private edge(i: number): number {
    // Round to 6 significant digits: exact decade edges print as 1e-3, not 0.0009999999.
    return Number((10 ** (LogHistogram.LO_EXP + i / LogHistogram.PER_DECADE)).toPrecision(6));
  }

  /** The display histogram: at most `maxBins` log-spaced bins over the range seen (plus open-ended ones). */
  summary(maxBins = 16): KlHistogram {
    const bins: HistogramBin[] = [];
    if (this.under > 0) bins.push({ lo: null, hi: 10 ** LogHistogram.LO_EXP, count: this.under });
    let i0 = -1;
    let i1 = -1;
    for (let i = 0; i < this.counts.length; i++) {
      if (this.counts[i] > 0) {
        if (i0 < 0) i0 = i;
        i1 = i;
      }
    }
    if (i0 >= 0) {
      const group = Math.max(1, Math.ceil((i1 - i0 + 1) / maxBins));
      for (let i = i0; i <= i1; i += group) {
        let count = 0;
        for (let j = i; j < i + group && j < this.counts.length; j++) count += this.counts[j];
        bins.push({ lo: this.edge(i), hi: this.edge(i + group), count });
      }
    }
    if (this.over > 0) bins.push({ lo: 10 ** LogHistogram.HI_EXP, hi: null, count: this.over });
    const seen = this.min <= this.max;
    return { scale: 'log10', bins, nan: this.nan, min: seen ? this.min : null, max: seen ? this.max : null };
  }
}

/** One set of chunk buffers: filled by reads, then computed while the other set is filled. */
interface ChunkSet {
  student: FloatArray;
  teacher: FloatArray;
  /** Raw label bytes (null without labels). */
  labelsRaw: Uint8Array | null;
  /** Class indices passed to the loss (the labels, or zeros without labels). */
  targets: Int32Array;
  /** Rows currently held. */
  rows: number;
}

function allocFloat(dtype: 'float32' | 'float64', n: number): FloatArray {
  return dtype === 'float32' ? new Float32Array(n) : new Float64Array(n);
}

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Checks the logits' headers: 2-D float, non-empty, student and teacher alike. */
function checkLogits(student: NpyReader, teacher: NpyReader): { rows: number; cols: number; dtype: 'float32' | 'float64' } {
  for (const r of [student, teacher]) {
    const h = r.header;
    if (h.dtype !== 'float32' && h.dtype !== 'float64') {
      throw new FileError(r.file, `unsupported dtype '${h.descr}' (${h.dtype}) for logits (expected float32 or float64)`);
    }
    if (h.shape.length !== 2) throw new FileError(r.file, `expected a 2-D array of logits (rows, classes), got shape ${shapeStr(h.shape)}`);
    if (h.shape[0] === 0) throw new FileError(r.file, `no rows (shape ${shapeStr(h.shape)})`);
    if (h.shape[1] === 0) throw new FileError(r.file, `no classes (shape ${shapeStr(h.shape)})`);
  }
  const [sr, sc] = student.header.shape;
  const [tr, tc] = teacher.header.shape;
  if (student.header.dtype !== teacher.header.dtype) {
    throw new CliError(
      `${teacher.file}: dtype ${teacher.header.dtype} does not match ${student.file} (${student.header.dtype}); student and teacher logits must share a dtype`,
    );
  }
  if (tr !== sr) throw new CliError(`${teacher.file}: ${tr} rows, but ${student.file} has ${sr} rows`);
  if (tc !== sc) throw new CliError(`${teacher.file}: ${tc} classes, but ${student.file} has ${sc} classes`);
  return { rows: sr, cols: sc, dtype: student.header.dtype as 'float32' | 'float64' };
}

/** Checks the labels' header against the logits; returns the kind of labels. */
function checkLabels(labels: NpyReader, student: NpyReader, rows: number, cols: number): 'indices' | 'one-hot' {
  const h = labels.header;
  const isFloat = h.dtype === 'float32' || h.dtype === 'float64';
  if (isFloat) {
    if (h.shape.length !== 2) {
      throw new FileError(labels.file, `float labels must be a one-hot matrix (rows, classes), got shape ${shapeStr(h.shape)}`);
    }
    if (h.shape[0] !== rows) throw new CliError(`${labels.file}: ${h.shape[0]} rows, but ${student.file} has ${rows} rows`);
    if (h.shape[1] !== cols) throw new CliError(`${labels.file}: ${h.shape[1]} classes, but ${student.file} has ${cols} classes`);
    return 'one-hot';
  }
  if (h.shape.length !== 1) {
    throw new FileError(labels.file, `integer labels must be 1-D class indices, got shape ${shapeStr(h.shape)}`);
  }
  if (h.shape[0] !== rows) throw new CliError(`${labels.file}: ${h.shape[0]} labels, but ${student.file} has ${rows} rows`);
  return 'indices';
}

/**
 * Converts a chunk of raw labels to class indices in [0, cols).
 * @throws FileError naming the file and the (absolute) row of the first bad label
 */
function convertLabels(reader: NpyReader, raw: Uint8Array, n: number, cols: number, firstRow: number, out: Int32Array): void {
  const file = reader.file;
  const bad = (r: number, v: string | number | bigint): never => {
    throw new FileError(file, `row ${firstRow + r}: class index ${v} out of range [0, ${cols}) (the logits have ${cols} classes)`);
  };
  const buf = raw.buffer as ArrayBuffer;
  const off = raw.byteOffset;
  switch (reader.header.dtype) {
    case 'int8':
    case 'uint8':
    case 'int16':
    case 'uint16':
    case 'int32':
    case 'uint32': {
      const Ctor = { int8: Int8Array, uint8: Uint8Array, int16: Int16Array, uint16: Uint16Array, int32: Int32Array, uint32: Uint32Array }[
        reader.header.dtype
      ];
      const v = new Ctor(buf, off, n);
      for (let r = 0; r < n; r++) {
        const c = v[r];
        if (c < 0 || c >= cols) bad(r, c);
        out[r] = c;
      }
      return;
    }
    case 'int64':
    case 'uint64': {
      // Little-endian 64-bit values as (low, high) 32-bit halves: in range iff high == 0 and low < cols.
      const w = new Uint32Array(buf, off, 2 * n);
      for (let r = 0; r < n; r++) {
        const lo = w[2 * r];
        if (w[2 * r + 1] !== 0 || lo >= cols) {
          const big = reader.header.dtype === 'int64' ? new BigInt64Array(buf, off + 8 * r, 1)[0] : new BigUint64Array(buf, off + 8 * r, 1)[0];
          bad(r, big);
        }
        out[r] = lo;
      }
      return;
    }
    case 'float32':
    case 'float64': {
      const v = reader.header.dtype === 'float32' ? new Float32Array(buf, off, n * cols) : new Float64Array(buf, off, n * cols);
      for (let r = 0; r < n; r++) {
        const o = r * cols;
        let hot = -1;
        for (let j = 0; j < cols; j++) {
          const x = v[o + j];
          if (x === 1 && hot < 0) hot = j;
          else if (x !== 0) {
            hot = -2;
            break;
          }
        }
        if (hot < 0) {
          throw new FileError(file, `row ${firstRow + r} is not one-hot (float labels must be rows of zeros with a single 1)`);
        }
        out[r] = hot;
      }
      return;
    }
  }
}

/** Index of the largest element of each row (first of ties; -1 for a row of NaNs), as the library's `argmax`. */
function rowArgmax(data: FloatArray, n: number, cols: number): Int32Array {
  const out = new Int32Array(n);
  for (let r = 0; r < n; r++) {
    const o = r * cols;
    let best = -1;
    let m = -Infinity;
    for (let j = 0; j < cols; j++) {
      const x = data[o + j];
      if (x > m || (best < 0 && x === m)) {
        m = x;
        best = j;
      }
    }
    out[r] = best;
  }
  return out;
}

/** Default rows per chunk for rows of `rowBytes` bytes. */
export function defaultChunkRows(rowBytes: number): number {
  return Math.max(1, Math.min(MAX_CHUNK_ROWS, Math.floor(DEFAULT_CHUNK_BYTES / Math.max(1, rowBytes))));
}

function isAbort(err: unknown): boolean {
  return (err as { name?: string })?.name === 'AbortError' || (err as { code?: string })?.code === 'ABORT_ERR';
}

/**
 * Runs the evaluation.
 * @throws FileError / CliError for bad input (exit code 2); InterruptedError when `signal` aborts
 */
export async function evaluate(config: EvalConfig): Promise<EvalSummary> {
  const readers: NpyReader[] = [];
  let writer: NpyF64Writer | null = null;
  let done = 0;
  const signal = config.signal;
  try {
    const student = await NpyReader.open(config.student);
    readers.push(student);
    const teacher = await NpyReader.open(config.teacher);
    readers.push(teacher);
    const labels = config.labels !== undefined ? await NpyReader.open(config.labels) : null;
    if (labels) readers.push(labels);
    const { rows, cols, dtype } = checkLogits(student, teacher);
    const labelsKind = labels ? checkLabels(labels, student, rows, cols) : null;

    const hasLabels = labels !== null;
    const T = config.temperature;
    const alpha = hasLabels ? config.alpha : 1;
    const kd = new DistillationLoss(T, alpha);
    const softWeight = alpha * T * T;
    const chunkRows = Math.min(rows, config.chunkRows ?? defaultChunkRows(student.rowBytes));

    const makeSet = (): ChunkSet => ({
      student: allocFloat(dtype, chunkRows * cols),
      teacher: allocFloat(dtype, chunkRows * cols),
      labelsRaw: labels ? new Uint8Array(chunkRows * labels.rowBytes) : null,
      targets: new Int32Array(chunkRows),
      rows: 0,
    });
    const sets = [makeSet(), makeSet()];

    if (config.perSample !== undefined) writer = await NpyF64Writer.create(config.perSample, rows);
    config.onStart?.({ rows, cols, dtype, chunkRows });

    const interrupted = (): InterruptedError => new InterruptedError(done);
    const testDelay = Number(process.env.KDLOSS_CLI_TEST_DELAY_MS) || 0; // tests: slows each chunk down

    const read = async (set: ChunkSet, row: number): Promise<void> => {
      const n = Math.min(chunkRows, rows - row);
      await Promise.all([
        student.readRows(row, n, bytesOf(set.student)),
        teacher.readRows(row, n, bytesOf(set.teacher)),
        labels ? labels.readRows(row, n, set.labelsRaw!) : undefined,
      ]);
      if (labels) convertLabels(labels, set.labelsRaw!, n, cols, row, set.targets);
      set.rows = n;
    };

    // Aggregates.
    const softSum = new Sum();
    const hardSum = new Sum();
    let agree = 0;
    let studentCorrect = 0;
    let teacherCorrect = 0;
    const support = hasLabels ? new Float64Array(cols) : null;
    const classStudent = hasLabels ? new Float64Array(cols) : null;
    const classTeacher = hasLabels ? new Float64Array(cols) : null;
    const classKlSum = hasLabels ? new Float64Array(cols) : null;
    const classKlComp = hasLabels ? new Float64Array(cols) : null;
    const hist = new LogHistogram();

    const aggregate = (set: ChunkSet, res: DistillationResult): void => {
      const n = set.rows;
      const rowSoft = res.perSampleSoft!;
      const rowHard = res.perSampleHard!;
      const sArg = res.studentArgmax ?? rowArgmax(set.student, n, cols);
      const tArg = res.teacherArgmax ?? rowArgmax(set.teacher, n, cols);
      const y = set.targets;
      for (let r = 0; r < n; r++) {
        const kl = rowSoft[r];
        softSum.add(kl);
        hist.add(kl);
        const sa = sArg[r];
        const ta = tArg[r];
        if (sa === ta && sa >= 0) agree++;
        if (hasLabels) {
          hardSum.add(rowHard[r]);
          const c = y[r];
          support![c]++;
          if (sa === c) {
            studentCorrect++;
            classStudent![c]++;
          }
          if (ta === c) {
            teacherCorrect++;
            classTeacher![c]++;
          }
          // Neumaier per class.
          const s = classKlSum![c];
          const t = s + kl;
          classKlComp![c] += Math.abs(s) >= Math.abs(kl) ? s - t + kl : kl - t + s;
          classKlSum![c] = t;
        }
      }
      if (writer) {
        let perSample: Float64Array;
        if (hasLabels) {
          perSample = res.perSample!;
        } else {
          perSample = new Float64Array(n);
          for (let r = 0; r < n; r++) perSample[r] = softWeight * rowSoft[r];
        }
        writer.write(perSample);
      }
    };

    const start = performance.now();
    if (signal?.aborted) throw interrupted();
    await read(sets[0], 0);
    let cur = 0;
    while (done < rows) {
      if (signal?.aborted) throw interrupted();
      const set = sets[cur];
      const n = set.rows;
      const computing = kd.forwardAsync(
        { data: set.student.subarray(0, n * cols), rows: n, cols },
        { data: set.teacher.subarray(0, n * cols), rows: n, cols },
        set.targets.subarray(0, n),
        { reduction: 'none', argmax: true, threads: config.threads, signal },
      );
      const next = done + n;
      const reading = next < rows ? read(sets[1 - cur], next) : undefined;
      let res: DistillationResult;
      try {
        [res] = await Promise.all([computing, reading]);
      } catch (err) {
        if (isAbort(err) || signal?.aborted) throw interrupted();
        throw err;
      }
      aggregate(set, res);
      done = next;
      cur = 1 - cur;
      config.onProgress?.(done, rows);
      if (testDelay > 0) {
        try {
          await sleep(testDelay, undefined, { signal });
        } catch {
          throw interrupted();
        }
      }
    }
    if (writer) {
      await writer.close();
      writer = null;
    }
    const seconds = (performance.now() - start) / 1000;

    const perClass: ClassStats[] | null = hasLabels ? [] : null;
    if (perClass) {
      for (let c = 0; c < cols; c++) {
        const n = support![c];
        if (n === 0) continue;
        perClass.push({
          class: c,
          support: n,
          studentCorrect: classStudent![c],
          teacherCorrect: classTeacher![c],
          studentAccuracy: classStudent![c] / n,
          teacherAccuracy: classTeacher![c] / n,
          meanKl: (classKlSum![c] + classKlComp![c]) / n,
        });
      }
    }
    const soft = softSum.value / rows;
    const hard = hasLabels ? hardSum.value / rows : null;
    // The library's own formula: alpha T^2 soft + (1 - alpha) hard.
    const loss = hasLabels ? softWeight * soft + (1 - alpha) * hard! : softWeight * soft;
    return {
      files: { student: config.student, teacher: config.teacher, labels: config.labels ?? null, perSample: config.perSample ?? null },
      rows,
      cols,
      dtype,
      labelsKind,
      labelsDtype: labels ? labels.header.dtype : null,
      temperature: T,
      alpha,
      requestedAlpha: config.alpha,
      loss,
      soft,
      hard,
      agreement: agree / rows,
      agreementCount: agree,
      studentAccuracy: hasLabels ? studentCorrect / rows : null,
      teacherAccuracy: hasLabels ? teacherCorrect / rows : null,
      studentCorrect: hasLabels ? studentCorrect : null,
      teacherCorrect: hasLabels ? teacherCorrect : null,
      perClass,
      klHistogram: hist.summary(),
      seconds,
      rowsPerSecond: seconds > 0 ? rows / seconds : rows,
      chunkRows,
      threads: config.threads ?? null,
      backend: getBackend(),
      isa: getBackend() === 'native' ? isa() : null,
    };
  } catch (err) {
    if (writer) await writer.discard();
    throw err;
  } finally {
    await Promise.all(readers.map((r) => r.close()));
  }
}
