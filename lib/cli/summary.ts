/**
 * The outcome of an evaluation, as the report prints it: built from the accumulated rows and the
 * settings, by `kdloss eval` after a run and by `kdloss merge` from shard reports alike, so that the
 * two print the same report for the same rows.
 * @module
 */
import type { AccumulatorState, ClassTotals, EvalAccumulator } from './accumulator';
import type { KlHistogram } from './histogram';
import type { LabelsKind } from './inputs';
import type { Divergence } from '../distillation';
import type { FileFormat } from './source';
import type { SparseTeacherSettings } from './sparse-teacher';

/** What the numbers depend on besides the rows: equal in every shard of one evaluation. */
export interface EvalSettings {
  temperature: number;
  /** The alpha the loss was computed with (1 without labels). */
  alpha: number;
  /** The alpha given on the command line. */
  requestedAlpha: number;
  /** The soft term's divergence. */
  divergence: Divergence;
  /** The beta of 'jsd' (null for the other divergences). */
  beta: number | null;
  /** Whether the soft term is multiplied by T^2. */
  temperatureScaling: boolean;
  /** Labels equal to it leave the row out of everything (null without labels). */
  ignoreIndex: number | null;
  /** Classes of the logits. */
  cols: number;
  /** The logits' dtype. */
  dtype: string;
  labels: { kind: LabelsKind; dtype: string } | null;
  /** A sparse (top-k) teacher (absent with dense teacher logits, so that their reports stay as they were). */
  teacher?: SparseTeacherSettings;
}

/** One input array, identified well enough to refuse merging runs over other data. */
export interface InputInfo {
  file: string;
  format: FileFormat;
  /** The tensor's name in a safetensors file (null for .npy). */
  key: string | null;
  shape: number[];
  dtype: string;
  /** The file's size in bytes. */
  bytes: number;
  /** See fileio.ts's fingerprint. */
  fingerprint: string;
}

export interface EvalInputsInfo {
  student: InputInfo;
  /** Dense teacher logits (null with a sparse teacher). */
  teacher: InputInfo | null;
  labels: InputInfo | null;
  /** A sparse teacher's arrays (present with one only). */
  teacherIndices?: InputInfo;
  teacherValues?: InputInfo;
}

/** The i-th of n contiguous row ranges (1-based), see shards.ts. */
export interface ShardInfo {
  index: number;
  count: number;
  rowStart: number;
  rowEnd: number;
  /** Rows of the whole input. */
  totalRows: number;
}

/** How the rows were computed: one run, or the shard reports merged. */
export interface RunInfo {
  seconds: number;
  chunkRows: number | null;
  /** Threads per chunk as requested (null: the library's default). */
  threads: number | null;
  backend: string;
  isa: string | null;
  /** The per-sample output (null: none). */
  perSample: string | null;
  /** The shard reports merged (null for a run). */
  merged: string[] | null;
}

/** What the teacher is, and the bytes it stores per token (row). */
export type TeacherInfo =
  | { format: 'dense'; bytesPerToken: number }
  | (SparseTeacherSettings & {
      /** k indices and k values. */
      bytesPerToken: number;
      /** What dense float32 teacher logits of the same classes take: 4 * classes. */
      denseFloat32BytesPerToken: number;
    });

/** Bytes per element of the dtypes an input may have. */
const ITEMSIZE: Record<string, number> = { float16: 2, bfloat16: 2, float32: 4, float64: 8, int32: 4, int64: 8 };

/** The teacher of an evaluation, from its settings and inputs. */
export function teacherInfo(settings: EvalSettings, inputs: EvalInputsInfo): TeacherInfo {
  const sp = settings.teacher;
  if (sp === undefined) return { format: 'dense', bytesPerToken: settings.cols * (ITEMSIZE[settings.dtype] ?? NaN) };
  const per = (i: InputInfo | undefined): number => ITEMSIZE[i?.dtype ?? ''] ?? NaN;
  return {
    ...sp,
    bytesPerToken: sp.k * (per(inputs.teacherIndices) + per(inputs.teacherValues)),
    denseFloat32BytesPerToken: 4 * settings.cols,
  };
}

/** The outcome of an evaluation. */
export interface EvalSummary {
  teacher: TeacherInfo;
  settings: EvalSettings;
  inputs: EvalInputsInfo;
  shard: ShardInfo | null;
  /** Rows covered: the shard's, or every row. */
  rows: number;
  /** Rows evaluated (not ignored). */
  evaluated: number;
  /** Rows left out by the ignore index. */
  ignored: number;
  /** alpha * T^2 * soft + (1 - alpha) * hard: the library's mean loss over the evaluated rows (null without any). */
  loss: number | null;
  /** Mean per-row divergence at T (KL(p_t || p_s) by default), unweighted (the library's `soft`). */
  soft: number | null;
  /** Mean per-row cross-entropy of the student against the labels (null without labels). */
  hard: number | null;
  /** Fraction of evaluated rows where student and teacher top-1 classes agree. */
  agreement: number | null;
  agreementCount: number;
  studentAccuracy: number | null;
  teacherAccuracy: number | null;
  studentCorrect: number | null;
  teacherCorrect: number | null;
  perClass: ClassTotals[] | null;
  klHistogram: KlHistogram;
  run: RunInfo;
  rowsPerSecond: number;
  /** The accumulator's state, for `kdloss merge`. */
  state: AccumulatorState;
}

/**
 * The summary of accumulated rows (loss from the library's formula alpha w soft + (1 - alpha) hard, w = T^2
 * or 1 without temperature scaling).
 */
export function summarize(settings: EvalSettings, inputs: EvalInputsInfo, shard: ShardInfo | null, acc: EvalAccumulator, run: RunInfo): EvalSummary {
  const t = acc.totals();
  const T = settings.temperature;
  const alpha = settings.alpha;
  const hasLabels = settings.labels !== null;
  const n = t.rows;
  const ratio = (k: number | null): number | null => (k === null || n === 0 ? null : k / n);
  const w = settings.temperatureScaling === false ? 1 : T * T;
  const loss = t.soft === null ? null : alpha * w * t.soft + (hasLabels ? (1 - alpha) * t.hard! : 0);
  const rows = n + t.ignored;
  return {
    teacher: teacherInfo(settings, inputs),
    settings,
    inputs,
    shard,
    rows,
    evaluated: n,
    ignored: t.ignored,
    loss,
    soft: t.soft,
    hard: t.hard,
    agreement: ratio(t.agreementCount),
    agreementCount: t.agreementCount,
    studentAccuracy: hasLabels ? ratio(t.studentCorrect) : null,
    teacherAccuracy: hasLabels ? ratio(t.teacherCorrect) : null,
    studentCorrect: t.studentCorrect,
    teacherCorrect: t.teacherCorrect,
    perClass: t.perClass,
    klHistogram: t.klHistogram,
    run,
    rowsPerSecond: run.seconds > 0 ? rows / run.seconds : rows,
    state: acc.toState(),
  };
}
