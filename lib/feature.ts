/**
 * Feature distillation: sum over layers of w_l * mean(|student_l - teacher_l|^p).
 * @module
 */
import type { FeatureJob } from './backend/types';
import { Call, runAsync, runSync } from './call';
import { ConfigError, InputError, ShapeError } from './errors';
import {
  allocFloat,
  callDType,
  checkNoOverlap,
  checkOut,
  expectShape,
  type FloatArray,
  type Matrix,
  type MatrixInput,
  readMatrix,
  snapshot,
  toMatrix,
} from './matrix';
import { type AsyncOptions, optionsOf, type Reduction, reductionCode, reductionOf, signalOf, threadsOf } from './options';

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
    return runSync(this.prepare(studentFeatures, teacherFeatures, options, false));
  }

  /** {@link forward} off the main thread, split over row blocks (bitwise the same for any thread count). */
  async forwardAsync(
    studentFeatures: readonly MatrixInput[],
    teacherFeatures: readonly MatrixInput[],
    options?: FeatureForwardOptions & AsyncOptions,
  ): Promise<FeatureResult> {
    return runAsync(this.prepare(studentFeatures, teacherFeatures, options, true));
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

  /** Validates a call, reading every argument and option once, and builds its job. */
  private prepare(
    studentFeatures: readonly MatrixInput[],
    teacherFeatures: readonly MatrixInput[],
    options: (FeatureForwardOptions & AsyncOptions) | undefined,
    async: boolean,
  ): FeatureCall {
    const opts = optionsOf(options);
    const reduction = reductionOf(opts.reduction);
    const { grad: gradOpt, gradOut: gradOutOpt, threads: threadsOpt } = opts;
    const signal = async ? signalOf(opts.signal) : undefined;
    if (!Array.isArray(studentFeatures)) throw new InputError('studentFeatures: expected an array of matrices');
    if (!Array.isArray(teacherFeatures)) throw new InputError('teacherFeatures: expected an array of matrices');
    const sItems = snapshot(studentFeatures);
    const tItems = snapshot(teacherFeatures);
    const L = this.layerWeights.length;
    if (sItems.length !== L) {
      throw new ShapeError(`studentFeatures: expected ${L} layers (one per layer weight), got ${sItems.length}`);
    }
    if (tItems.length !== L) {
      throw new ShapeError(`teacherFeatures: expected ${L} layers like studentFeatures, got ${tItems.length}`);
    }
    const sReads = sItems.map(readMatrix);
    const tReads = tItems.map(readMatrix);
    const dtype = callDType(...sReads, ...tReads);
    const students: Matrix[] = [];
    const teachers: Matrix[] = [];
    let elements = 0;
    for (let l = 0; l < L; l++) {
      const s = toMatrix(sReads[l], `studentFeatures[${l}]`, dtype);
      const t = toMatrix(tReads[l], `teacherFeatures[${l}]`, dtype);
      expectShape(t, s.rows, s.cols, `teacherFeatures[${l}]`);
      if (l > 0 && s.rows !== students[0].rows) {
        throw new ShapeError(`studentFeatures[${l}]: expected ${students[0].rows} rows like layer 0, got ${s.rows}`);
      }
      students.push(s);
      teachers.push(t);
      elements += s.rows * s.cols;
    }
    const rows = students[0].rows;
    const threads = threadsOf(threadsOpt, elements, async);
    let grads: FloatArray[] | null = null;
    if (gradOutOpt !== undefined) {
      if (!Array.isArray(gradOutOpt)) throw new InputError(`gradOut: expected an array of ${L} buffers, one per layer`);
      const outs = snapshot(gradOutOpt);
      if (outs.length !== L) throw new InputError(`gradOut: expected an array of ${L} buffers, one per layer`);
      grads = students.map((s, l) => checkOut(outs[l], dtype, s.rows * s.cols, `gradOut[${l}]`));
      const inputs = students.flatMap((s, l): [FloatArray, string][] => [
        [s.data, `studentFeatures[${l}]`],
        [teachers[l].data, `teacherFeatures[${l}]`],
      ]);
      grads.forEach((g, l) => {
        const others = grads!.filter((_, k) => k !== l).map((o, k): [FloatArray, string] => [o, `gradOut[${k < l ? k : k + 1}]`]);
        checkNoOverlap(g, `gradOut[${l}]`, [...inputs, ...others], students[l].data);
      });
    } else if (gradOpt === true) {
      grads = students.map((s) => allocFloat(dtype, s.rows * s.cols));
    }
    const job: FeatureJob = {
      op: 'feature',
      dtype,
      rows,
      p: this.pNorm,
      reduction: reductionCode(reduction),
      layers: students.map((s, l) => ({
        student: s.data,
        teacher: teachers[l].data,
        cols: s.cols,
        weight: this.layerWeights[l],
        grad: grads ? grads[l] : null,
      })),
      rowOut: reduction === 'none' ? new Float64Array(rows) : null,
    };
    return new FeatureCall(this.layerWeights, job, threads, elements, signal, reduction === 'sum');
  }
}

/** A validated feature call. */
class FeatureCall extends Call<FeatureResult> {
  constructor(
    private readonly weights: readonly number[],
    override readonly job: FeatureJob,
    threads: number,
    elements: number,
    signal: AbortSignal | undefined,
    private readonly sum: boolean,
  ) {
    super(job, threads, elements, new Float64Array(job.layers.length), signal);
  }

  finish(): FeatureResult {
    const { job, results: perLayer } = this;
    const rowScale = this.sum ? 1 : 1 / job.rows;
    let loss = 0;
    for (let l = 0; l < perLayer.length; l++) {
      perLayer[l] *= rowScale / job.layers[l].cols;
      loss += this.weights[l] * perLayer[l];
    }
    const result: FeatureResult = { loss, perLayer };
    if (job.rowOut !== null) result.perSample = job.rowOut;
    if (job.layers[0].grad !== null) result.grads = job.layers.map((l) => l.grad!);
    return result;
  }
}
