/**
 * What `kdloss eval` adds up over the rows: per-term sums, top-1 counts, per-class counts and sums,
 * the KL histogram, and the rows left out by the ignore index. Chunks are added in any order and
 * accumulators of disjoint row ranges merge, through a plain-object state, into what one pass over all
 * the rows gives: counts and histogram exactly, sums exactly too (exact-sum.ts: the exact sum of the
 * per-row values, rounded once), so a merged result equals the one-pass result bit for bit whenever the
 * per-row values are the same.
 * @module
 */
import { ExactSum, type ExactSumState } from './exact-sum';
import { LogHistogram, type LogHistogramState, type KlHistogram } from './histogram';

/** The outcome of one chunk's computation, as {@link EvalAccumulator.add} takes it. */
export interface ChunkResult {
  /** Rows in the chunk. */
  rows: number;
  /** Each row's KL(p_t || p_s) at T (the unweighted soft term). */
  perSampleSoft: Float64Array;
  /** Each row's cross-entropy against its label (null without labels). */
  perSampleHard: Float64Array | null;
  /** Each row's top-1 class of the student and of the teacher (-1 for a row of NaNs). */
  studentArgmax: Int32Array;
  teacherArgmax: Int32Array;
  /** Each row's label: a class index, or the ignore index (null without labels). */
  labels: Int32Array | null;
}

/** Per-class state: the class and its counts and KL sum. */
export interface ClassState {
  class: number;
  support: number;
  studentCorrect: number;
  teacherCorrect: number;
  kl: ExactSumState;
}

export const ACCUMULATOR_FORMAT = 'kdloss-eval-accumulator/2';

/** The serialisable state of an {@link EvalAccumulator} (plain numbers and strings). */
export interface AccumulatorState {
  format: typeof ACCUMULATOR_FORMAT;
  cols: number;
  hasLabels: boolean;
  /** Labels equal to it leave their row out of everything (null: none). */
  ignoreIndex: number | null;
  /** Rows evaluated (not ignored). */
  rows: number;
  /** Rows left out by the ignore index. */
  ignored: number;
  soft: ExactSumState;
  hard: ExactSumState;
  agreement: number;
  studentCorrect: number;
  teacherCorrect: number;
  /** Classes with at least one evaluated row, by class (empty without labels). */
  classes: ClassState[];
  histogram: LogHistogramState;
}

/** Per-class totals (classes present in the evaluated rows' labels). */
export interface ClassTotals {
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

/** What the report needs from the accumulated rows (nothing here depends on T or alpha). */
export interface EvalTotals {
  /** Rows evaluated. */
  rows: number;
  /** Rows left out by the ignore index. */
  ignored: number;
  /** Mean per-row KL at T (null without evaluated rows). */
  soft: number | null;
  /** Mean per-row cross-entropy (null without labels or without evaluated rows). */
  hard: number | null;
  agreementCount: number;
  studentCorrect: number | null;
  teacherCorrect: number | null;
  perClass: ClassTotals[] | null;
  klHistogram: KlHistogram;
}

/** A count read from a state: a non-negative integer. */
function count(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new TypeError(`${what}: expected a count, got ${JSON.stringify(v)?.slice(0, 40)}`);
  return v;
}

/** Sums over rows for `kdloss eval`; see the module comment. */
export class EvalAccumulator {
  private rows = 0;
  private ignored = 0;
  private soft = new ExactSum();
  private hard = new ExactSum();
  private agree = 0;
  private studentCorrect = 0;
  private teacherCorrect = 0;
  private readonly support: Float64Array;
  private readonly classStudent: Float64Array;
  private readonly classTeacher: Float64Array;
  /** Per-class KL sums, made for the classes present. */
  private readonly classKl: (ExactSum | undefined)[];
  private hist = new LogHistogram();

  /**
   * @param cols classes of the logits
   * @param hasLabels whether chunks carry labels (the hard term, accuracies and per-class sums)
   * @param ignoreIndex rows whose label is this are left out of everything (null: none)
   */
  constructor(
    readonly cols: number,
    readonly hasLabels: boolean,
    readonly ignoreIndex: number | null = null,
  ) {
    const n = hasLabels ? cols : 0;
    this.support = new Float64Array(n);
    this.classStudent = new Float64Array(n);
    this.classTeacher = new Float64Array(n);
    this.classKl = new Array<ExactSum | undefined>(n);
  }

  /** Adds one chunk's rows. Labels must be class indices in [0, cols) or the ignore index. */
  add(c: ChunkResult): void {
    if ((c.labels !== null) !== this.hasLabels) throw new Error(`a chunk ${this.hasLabels ? 'without' : 'with'} labels`);
    const { rows: n, perSampleSoft: soft, perSampleHard: hard, studentArgmax: sArg, teacherArgmax: tArg, labels: y } = c;
    const skip = this.ignoreIndex ?? NaN;
    for (let r = 0; r < n; r++) {
      if (y !== null && y[r] === skip) {
        this.ignored++;
        continue;
      }
      this.rows++;
      const kl = soft[r];
      this.soft.add(kl);
      this.hist.add(kl);
      const sa = sArg[r];
      const ta = tArg[r];
      if (sa === ta && sa >= 0) this.agree++;
      if (y !== null) {
        this.hard.add(hard![r]);
        const k = y[r];
        this.support[k]++;
        if (sa === k) {
          this.studentCorrect++;
          this.classStudent[k]++;
        }
        if (ta === k) {
          this.teacherCorrect++;
          this.classTeacher[k]++;
        }
        (this.classKl[k] ??= new ExactSum()).add(kl);
      }
    }
  }

  /** Adds the rows another accumulator (of the same classes, labels and ignore index) has seen. */
  merge(o: EvalAccumulator): void {
    if (o.cols !== this.cols || o.hasLabels !== this.hasLabels || o.ignoreIndex !== this.ignoreIndex) {
      throw new Error(
        `cannot merge ${o.cols} classes ${o.hasLabels ? 'with' : 'without'} labels (ignore index ${o.ignoreIndex}) into ${this.cols} ${this.hasLabels ? 'with' : 'without'} (ignore index ${this.ignoreIndex})`,
      );
    }
    this.rows += o.rows;
    this.ignored += o.ignored;
    this.soft.merge(o.soft);
    this.hard.merge(o.hard);
    this.agree += o.agree;
    this.studentCorrect += o.studentCorrect;
    this.teacherCorrect += o.teacherCorrect;
    for (let k = 0; k < this.support.length; k++) {
      if (o.support[k] === 0) continue;
      this.support[k] += o.support[k];
      this.classStudent[k] += o.classStudent[k];
      this.classTeacher[k] += o.classTeacher[k];
      (this.classKl[k] ??= new ExactSum()).merge(o.classKl[k]!);
    }
    this.hist.merge(o.hist);
  }

  /** The state, a plain object for JSON written by json.ts (see {@link EvalAccumulator.fromState}). */
  toState(): AccumulatorState {
    const classes: ClassState[] = [];
    for (let k = 0; k < this.support.length; k++) {
      if (this.support[k] === 0) continue;
      classes.push({
        class: k,
        support: this.support[k],
        studentCorrect: this.classStudent[k],
        teacherCorrect: this.classTeacher[k],
        kl: this.classKl[k]!.toState(),
      });
    }
    return {
      format: ACCUMULATOR_FORMAT,
      cols: this.cols,
      hasLabels: this.hasLabels,
      ignoreIndex: this.ignoreIndex,
      rows: this.rows,
      ignored: this.ignored,
      soft: this.soft.toState(),
      hard: this.hard.toState(),
      agreement: this.agree,
      studentCorrect: this.studentCorrect,
      teacherCorrect: this.teacherCorrect,
      classes,
      histogram: this.hist.toState(),
    };
  }

  /**
   * The accumulator a state describes, every field checked (states come from files).
   * @throws Error / TypeError for a state of another format, a malformed field, or classes out of range
   */
  static fromState(s: AccumulatorState): EvalAccumulator {
    if (typeof s !== 'object' || s === null) throw new TypeError('expected an accumulator state object');
    if (s.format !== ACCUMULATOR_FORMAT) throw new Error(`unknown accumulator format '${String(s.format).slice(0, 60)}' (expected '${ACCUMULATOR_FORMAT}')`);
    const cols = count(s.cols, 'cols');
    if (cols < 1) throw new Error('cols: expected at least 1 class');
    if (typeof s.hasLabels !== 'boolean') throw new TypeError('hasLabels: expected true or false');
    const ignore = s.ignoreIndex;
    if (ignore !== null && !(typeof ignore === 'number' && Number.isInteger(ignore) && ignore >= -(2 ** 31) && ignore < 2 ** 31)) {
      throw new TypeError('ignoreIndex: expected an int32 or null');
    }
    const a = new EvalAccumulator(cols, s.hasLabels, ignore);
    a.rows = count(s.rows, 'rows');
    a.ignored = count(s.ignored, 'ignored');
    a.soft = ExactSum.fromState(s.soft);
    a.hard = ExactSum.fromState(s.hard);
    a.agree = count(s.agreement, 'agreement');
    a.studentCorrect = count(s.studentCorrect, 'studentCorrect');
    a.teacherCorrect = count(s.teacherCorrect, 'teacherCorrect');
    if (!Array.isArray(s.classes)) throw new TypeError('classes: expected an array');
    let support = 0;
    for (const c of s.classes) {
      if (typeof c !== 'object' || c === null) throw new TypeError('classes: expected objects');
      const k = c.class;
      if (!s.hasLabels || !Number.isInteger(k) || k < 0 || k >= cols) throw new Error(`class ${String(k).slice(0, 40)} out of range`);
      if (a.support[k] !== 0) throw new Error(`class ${k} listed twice`);
      a.support[k] = count(c.support, `class ${k} support`);
      if (a.support[k] === 0) throw new Error(`class ${k} listed without rows`);
      a.classStudent[k] = count(c.studentCorrect, `class ${k} studentCorrect`);
      a.classTeacher[k] = count(c.teacherCorrect, `class ${k} teacherCorrect`);
      a.classKl[k] = ExactSum.fromState(c.kl);
      support += a.support[k];
    }
    if (s.hasLabels && support !== a.rows) throw new Error(`the classes' support adds up to ${support}, not the ${a.rows} rows`);
    a.hist = LogHistogram.fromState(s.histogram);
    if (a.hist.total !== a.rows) throw new Error(`the histogram counts ${a.hist.total} rows, not ${a.rows}`);
    return a;
  }

  /** Means, counts, per-class figures and the display histogram of the rows seen. */
  totals(): EvalTotals {
    const rows = this.rows;
    let perClass: ClassTotals[] | null = null;
    if (this.hasLabels) {
      perClass = [];
      for (let k = 0; k < this.support.length; k++) {
        const n = this.support[k];
        if (n === 0) continue;
        perClass.push({
          class: k,
          support: n,
          studentCorrect: this.classStudent[k],
          teacherCorrect: this.classTeacher[k],
          studentAccuracy: this.classStudent[k] / n,
          teacherAccuracy: this.classTeacher[k] / n,
          meanKl: this.classKl[k]!.value / n,
        });
      }
    }
    const any = rows > 0;
    return {
      rows,
      ignored: this.ignored,
      soft: any ? this.soft.value / rows : null,
      hard: this.hasLabels && any ? this.hard.value / rows : null,
      agreementCount: this.agree,
      studentCorrect: this.hasLabels ? this.studentCorrect : null,
      teacherCorrect: this.hasLabels ? this.teacherCorrect : null,
      perClass,
      klHistogram: this.hist.summary(),
    };
  }
}
