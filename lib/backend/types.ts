/**
 * The contract between the loss classes and a compute backend (native addon or pure TypeScript).
 * A job arrives validated by the wrapper; a backend computes it, writes its per-row outputs into the
 * job's buffers and its sums into a results array. The backends re-check what guards memory or
 * decides a value (class index ranges, kept rows), so the wrapper does not walk the rows twice.
 * @module
 */
import type { DType, FloatArray } from '../matrix';
import { type DivergenceCode, type HardKindCode, ReductionCode, type SparseKindCode, type TargetKindCode } from './layout';

export { DivergenceCode, HardKindCode as HardKind, ReductionCode, SparseKindCode, TargetKindCode as TargetKind } from './layout';

/**
 * One distillation computation over `rows x cols` logits. Results: [sum of row soft terms, sum of
 * row hard terms, kept rows]. The gradient is that of the reduced loss: the rows' gradients times
 * softWeight / hardWeight and the reduction's scale (see {@link reductionScale}).
 */
export interface KdJob {
  readonly op: 'kd';
  dtype: DType;
  student: FloatArray;
  teacher: FloatArray;
  rows: number;
  cols: number;
  targets: FloatArray | Int32Array | Uint32Array | null;
  targetKind: TargetKindCode;
  mask: Uint8Array | null;
  temperature: number;
  divergence: DivergenceCode;
  /** The mixture weight of 'jsd' (0 otherwise). */
  beta: number;
  hard: HardKindCode;
  epsilon: number;
  labelSmoothing: number;
  ignoreIndex: number;
  /** Weight of the soft term in the loss (alpha T^2). */
  softWeight: number;
  /** Weight of the hard term in the loss (1 - alpha). */
  hardWeight: number;
  reduction: ReductionCode;
  /** Divides the sums for 'mean' instead of the kept rows when > 0. */
  normalizer: number;
  /** Per-row soft term (unscaled), or null. */
  rowSoft: Float64Array | null;
  /** Per-row hard term, or null. */
  rowHard: Float64Array | null;
  /** Row argmax output (2 * rows: student rows, then teacher rows; -1 for rows left out), or null. */
  argmax: Int32Array | null;
  /** Gradient output (rows * cols), or null. */
  grad: FloatArray | null;
}

/**
 * A distillation job whose teacher is sparse (lib/sparse.ts): everything of a {@link KdJob} but the
 * dense teacher, plus each row's k entries. argmax's teacher half holds the token of each row's largest
 * entry.
 */
export interface SparseKdJob extends Omit<KdJob, 'op' | 'teacher'> {
  readonly op: 'sparseKd';
  /** rows * k tokens, -1 for an unused slot. */
  indices: Int32Array;
  /** rows * k values, the student's dtype. */
  values: FloatArray;
  k: number;
  sparseKind: SparseKindCode;
  /** logprobs only: the tail bucket. */
  tail: boolean;
}

/** One layer of a feature job. */
export interface FeatureLayerJob {
  student: FloatArray;
  teacher: FloatArray;
  cols: number;
  /** The layer's weight in the loss. */
  weight: number;
  grad: FloatArray | null;
}

/**
 * Feature distillation over layers sharing a row count. Results: per layer, the sum over its elements
 * of |s - t|^p. rowOut[r] = sum_l weight_l * mean_j |s - t|^p over row r of layer l.
 */
export interface FeatureJob {
  readonly op: 'feature';
  dtype: DType;
  rows: number;
  p: 1 | 2;
  reduction: ReductionCode;
  layers: FeatureLayerJob[];
  rowOut: Float64Array | null;
}

/** Attention transfer over `rows x cols` maps. Results: [sum over all elements of (a_s - a_t)^2]. */
export interface AttentionJob {
  readonly op: 'attention';
  dtype: DType;
  student: FloatArray;
  teacher: FloatArray;
  rows: number;
  cols: number;
  beta: number;
  reduction: ReductionCode;
  /** Per-row mean of (a_s - a_t)^2, or null. */
  rowOut: Float64Array | null;
  grad: FloatArray | null;
}

/** Any job. */
export type Job = KdJob | SparseKdJob | FeatureJob | AttentionJob;

/** Work running off the main thread. */
export interface AsyncHandle {
  /**
   * Resolves once the results and every output are written; rejects after `cancel()` (or on an error)
   * once no thread touches the job's buffers any more.
   */
  promise: Promise<void>;
  /** Asks the work to stop between row blocks. */
  cancel(): void;
}

/** A compute backend. `threads` >= 1 is a request; backends may use fewer. */
export interface Backend {
  readonly name: 'native' | 'js';
  /** Computes a job now; its sums go into `results` (see each job for the layout). */
  run(job: Job, threads: number, results: Float64Array): void;
  /** {@link run} off the main thread. */
  runAsync(job: Job, threads: number, results: Float64Array): AsyncHandle;
}

/** Length of a job's results array. */
export function resultsLength(job: Job): number {
  return job.op === 'kd' || job.op === 'sparseKd' ? 3 : job.op === 'feature' ? job.layers.length : 1;
}

/**
 * What a distillation job's sums are multiplied by: 1 for 'sum'; for 'mean' and 'none' 1 / normalizer
 * when one is given, else 1 / kept rows (0 when no row is kept). The binding computes the same.
 */
export function reductionScale(reduction: ReductionCode, normalizer: number, kept: number): number {
  if (reduction === ReductionCode.Sum) return 1;
  if (normalizer > 0) return 1 / normalizer;
  return kept > 0 ? 1 / kept : 0;
}

/** Row-sized scratch arrays of a js-backend distillation row (lib/backend/js.ts kdRow). */
export interface RowScratch {
  es: Float64Array;
  et: Float64Array;
  e1: Float64Array;
  /** The soft term's gradient times T (divergences other than 'kl'). */
  dq: Float64Array;
}
