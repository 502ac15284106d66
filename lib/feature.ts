/**
 * Feature distillation: sum over layers of w_l * mean(|student_l - teacher_l|^p).
 * @module
 */
import { backend } from './backend';
import type { FeatureJob } from './backend/types';
import { ConfigError, InputError, ShapeError } from './errors';
import { allocFloat, callDType, checkOut, expectShape, type FloatArray, type Matrix, type MatrixInput, toMatrix } from './matrix';
import { type AsyncOptions, optionsOf, type Reduction, reductionOf, settle, signalOf, threadsOf } from './options';

/** Options of {@link FeatureDistillationLoss.forward}. */
export interface FeatureForwardOptions {
  /** 'mean' (default), 'sum' over rows, or 'none' (adds `perSample`). */
  reduction?: Reduction;
  /** Return the gradient of `loss` with respect to each student layer. */
  grad?: boolean;
  /** Caller-owned gradient buffers, one per layer (that layer's dtype and size); implies `grad`. */
  gradOut?: FloatArray[];
  /** Threads for this call (default 1 for sync calls). */
  threads?: number;
}

/** Result of {@link FeatureDistillationLoss.forward}. */
export interface FeatureResult {
  /** Sum over layers of weight * perLayer. */
  loss: number;
  /** Each layer's unweighted distance: the reduction over rows of the row mean of |s - t|^p. */
  perLayer: Float64Array;
  /** With reduction 'none': each row's weighted loss (their mean is `loss`). */
  perSample?: Float64Array;
  /** With `grad` or `gradOut`: d(loss)/d(student layer), one buffer per layer. */
  grads?: FloatArray[];
}

/** Matches intermediate representations layer by layer. */
export class FeatureDistillationLoss {
  /** Weight of each layer (finite, >= 0). */
  readonly layerWeights: readonly number[];
  /** Distance norm: 1 (mean absolute) or 2 (mean squared). */
  readonly pNorm: 1 | 2;

  /**
   * @param layerWeights one finite weight >= 0 per layer (at least one)
   * @param pNorm 1 or 2
   * @throws ConfigError for empty or invalid weights or another norm
   */
  constructor(layerWeights: readonly number[], pNorm: 1 | 2) {
    if (!Array.isArray(layerWeights) || layerWeights.length === 0) {
      throw new ConfigError('layerWeights: expected a non-empty array of numbers');
    }
    layerWeights.forEach((w, i) => {
      if (typeof w !== 'number' || !Number.isFinite(w) || w < 0) {
        throw new ConfigError(`layerWeights[${i}]: expected a finite number >= 0, got ${String(w)}`);
      }
    });
    if (pNorm !== 1 && pNorm !== 2) throw new ConfigError(`pNorm: expected 1 or 2, got ${String(pNorm)}`);
    this.layerWeights = Object.freeze([...layerWeights]);
    this.pNorm = pNorm;
  }

  /**
   * The weighted feature loss (the seed's `compute_feature_loss`).
   * @param studentFeatures one matrix per layer; layers may differ in width but share the row count
   * @param teacherFeatures the teacher's matrices, each the shape of the student's
   */
  computeFeatureLoss(studentFeatures: readonly MatrixInput[], teacherFeatures: readonly MatrixInput[]): number {
    return this.forward(studentFeatures, teacherFeatures).loss;
  }

  /** Loss, per-layer distances, and optionally per-row losses and gradients. */
  forward(
    studentFeatures: readonly MatrixInput[],
    teacherFeatures: readonly MatrixInput[],
    options?: FeatureForwardOptions,
  ): FeatureResult {
    const call = this.prepare(studentFeatures, teacherFeatures, options, false);
    backend().feature(call.job, call.perLayer, call.threads);
    return call.finish();
  }

  /** {@link forward} off the main thread, split over row blocks (bitwise the same for any thread count). */
  async forwardAsync(
    studentFeatures: readonly MatrixInput[],
    teacherFeatures: readonly MatrixInput[],
    options?: FeatureForwardOptions & AsyncOptions,
  ): Promise<FeatureResult> {
    const signal = signalOf(options?.signal);
    const call = this.prepare(studentFeatures, teacherFeatures, options, true);
    const { job, perLayer, threads } = call;
    const elements = job.students.reduce((n, s) => n + s.length, 0);
    await settle(() => backend().featureAsync(job, perLayer, threads), signal, elements, () => (backend().feature(job, perLayer, 1), 0));
    return call.finish();
  }

  /** {@link computeFeatureLoss} off the main thread (see {@link forwardAsync}). */
  async computeFeatureLossAsync(
    studentFeatures: readonly MatrixInput[],
    teacherFeatures: readonly MatrixInput[],
    options?: AsyncOptions,
  ): Promise<number> {
    const opts = optionsOf(options);
    return (await this.forwardAsync(studentFeatures, teacherFeatures, { signal: opts.signal, threads: opts.threads })).loss;
  }

  private prepare(
    studentFeatures: readonly MatrixInput[],
    teacherFeatures: readonly MatrixInput[],
    options: (FeatureForwardOptions & AsyncOptions) | undefined,
    async: boolean,
  ): { job: FeatureJob; perLayer: Float64Array; threads: number; finish: () => FeatureResult } {
    const opts = optionsOf(options);
    const reduction = reductionOf(opts.reduction);
    if (!Array.isArray(studentFeatures)) throw new InputError('studentFeatures: expected an array of matrices');
    if (!Array.isArray(teacherFeatures)) throw new InputError('teacherFeatures: expected an array of matrices');
    const L = this.layerWeights.length;
    if (studentFeatures.length !== L) {
      throw new ShapeError(`studentFeatures: expected ${L} layers (one per layer weight), got ${studentFeatures.length}`);
    }
    if (teacherFeatures.length !== L) {
      throw new ShapeError(`teacherFeatures: expected ${L} layers like studentFeatures, got ${teacherFeatures.length}`);
    }
    const dtype = callDType(...studentFeatures, ...teacherFeatures);
    const students: Matrix[] = [];
    const teachers: Matrix[] = [];
    let elements = 0;
    for (let l = 0; l < L; l++) {
      const s = toMatrix(studentFeatures[l], `studentFeatures[${l}]`, dtype);
      const t = toMatrix(teacherFeatures[l], `teacherFeatures[${l}]`, dtype);
      expectShape(t, s.rows, s.cols, `teacherFeatures[${l}]`);
      if (l > 0 && s.rows !== students[0].rows) {
        throw new ShapeError(`studentFeatures[${l}]: expected ${students[0].rows} rows like layer 0, got ${s.rows}`);
      }
      students.push(s);
      teachers.push(t);
      elements += s.data.length;
    }
    const rows = students[0].rows;
    const threads = threadsOf(opts.threads, elements, async);
    const wantGrad = opts.grad === true || opts.gradOut !== undefined;
    let grads: FloatArray[] | null = null;
    if (wantGrad) {
      if (opts.gradOut !== undefined && (!Array.isArray(opts.gradOut) || opts.gradOut.length !== L)) {
        throw new InputError(`gradOut: expected an array of ${L} buffers, one per layer`);
      }
      grads = students.map((s, l) =>
        opts.gradOut !== undefined
          ? checkOut(opts.gradOut[l], dtype, s.rows * s.cols, `gradOut[${l}]`)
          : allocFloat(dtype, s.rows * s.cols),
      );
    }
    const rowScale = reduction === 'sum' ? 1 : 1 / rows;
    const cols = Float64Array.from(students, (s) => s.cols);
    const rowWeights = Float64Array.from(this.layerWeights, (w, l) => w / cols[l]);
    const perRow = reduction === 'none' ? new Float64Array(rows) : null;
    const job: FeatureJob = {
      rows,
      p: this.pNorm,
      students: students.map((s) => s.data),
      teachers: teachers.map((t) => t.data),
      cols,
      rowWeights,
      rowOut: perRow,
      grads,
      gradScales: grads ? rowWeights.map((w) => w * rowScale) : null,
    };
    const perLayer = new Float64Array(L);
    const finish = (): FeatureResult => {
      let loss = 0;
      for (let l = 0; l < L; l++) {
        perLayer[l] *= rowScale / cols[l];
        loss += this.layerWeights[l] * perLayer[l];
      }
      const result: FeatureResult = { loss, perLayer };
      if (perRow !== null) result.perSample = perRow;
      if (grads !== null) result.grads = grads;
      return result;
    };
    return { job, perLayer, threads, finish };
  }
}
