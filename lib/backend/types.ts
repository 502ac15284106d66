/**
 * The contract between the loss classes and a compute backend (native addon or pure TypeScript).
 * Jobs arrive fully validated; a backend only computes.
 * @module
 */
import type { FloatArray } from '../matrix';

/** Hard-target loss fused into the distillation kernel (values shared with native/kernels/kernels.h). */
export const enum HardKind {
  None = 0,
  CrossEntropyLogits = 1,
  CrossEntropyProbs = 2,
  Mse = 3,
}

/** Target form (values shared with native/kernels/kernels.h). */
export const enum TargetKind {
  None = 0,
  Matrix = 1,
  Int32 = 2,
  Uint32 = 3,
}

/** One distillation computation over `rows x cols` logits. */
export interface KdJob {
  student: FloatArray;
  teacher: FloatArray;
  rows: number;
  cols: number;
  targets: FloatArray | Int32Array | Uint32Array | null;
  targetKind: TargetKind;
  mask: Uint8Array | null;
  temperature: number;
  hard: HardKind;
  epsilon: number;
  labelSmoothing: number;
  ignoreIndex: number;
  /** Per-row KL (unscaled), or null. */
  rowSoft: Float64Array | null;
  /** Per-row hard loss, or null. */
  rowHard: Float64Array | null;
  /** Row argmax output (2 * rows: student rows, then teacher rows; -1 for rows left out), or null. */
  argmax: Int32Array | null;
  /** Gradient output (rows * cols), or null: gradSoftScale * dKL/ds + gradHardScale * dHard/ds. */
  grad: FloatArray | null;
  gradSoftScale: number;
  gradHardScale: number;
}

/** Feature distillation over layers sharing a row count. */
export interface FeatureJob {
  rows: number;
  p: 1 | 2;
  students: FloatArray[];
  teachers: FloatArray[];
  cols: Float64Array;
  /** rowOut[r] = sum_l rowWeights[l] * sum_j |s - t|^p over row r of layer l. */
  rowWeights: Float64Array;
  rowOut: Float64Array | null;
  grads: FloatArray[] | null;
  gradScales: Float64Array | null;
}

/** Attention transfer over `rows x cols` maps. */
export interface AttentionJob {
  student: FloatArray;
  teacher: FloatArray;
  rows: number;
  cols: number;
  beta: number;
  rowOut: Float64Array | null;
  grad: FloatArray | null;
  gradScale: number;
}

/** Work running off the main thread: settles when every output is written. */
export interface AsyncHandle {
  /** Resolves with the call's scalar value (attention: the sum; others: 0). */
  promise: Promise<number>;
  /** Stops the work between row blocks; the promise then rejects. */
  cancel(): void;
}

/** A compute backend. `threads` >= 1 is a request; backends may use fewer. */
export interface Backend {
  readonly name: 'native' | 'js';
  /** Writes [sum of row KL, sum of row hard loss, kept rows] into out[0..2]. */
  kd(job: KdJob, out: Float64Array, threads: number): void;
  /** Writes each layer's sum of |s - t|^p into layerSums. */
  feature(job: FeatureJob, layerSums: Float64Array, threads: number): void;
  /** Returns the sum over all elements of (a_s - a_t)^2. */
  attention(job: AttentionJob, threads: number): number;
  /** {@link kd} off the main thread. */
  kdAsync(job: KdJob, out: Float64Array, threads: number): AsyncHandle;
  /** {@link feature} off the main thread. */
  featureAsync(job: FeatureJob, layerSums: Float64Array, threads: number): AsyncHandle;
  /** {@link attention} off the main thread. */
  attentionAsync(job: AttentionJob, threads: number): AsyncHandle;
}
