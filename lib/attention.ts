/**
 * Attention transfer: a = |x|^beta, each row divided by its sum where that sum > 1e-8; the loss is the
 * mean over all elements of (a_student - a_teacher)^2.
 * @module
 */
import { backend } from './backend';
import { ConfigError } from './errors';
import { allocFloat, callDType, checkOut, expectShape, type FloatArray, type MatrixInput, toMatrix } from './matrix';
import type { AttentionJob } from './backend/types';
import { type AsyncOptions, optionsOf, type Reduction, reductionOf, settle, signalOf, threadsOf } from './options';

/** Options of {@link AttentionTransferLoss.forward}. */
export interface AttentionForwardOptions {
  /** 'mean' (default, over all elements), 'sum' over rows of row means, or 'none' (adds `perSample`). */
  reduction?: Reduction;
  /** Return the gradient of `loss` with respect to the student attention map. */
  grad?: boolean;
  /** Caller-owned gradient buffer (student dtype, rows * cols); implies `grad`. */
  gradOut?: FloatArray;
  /** Threads for this call (default 1 for sync calls). */
  threads?: number;
}

/** Result of {@link AttentionTransferLoss.forward}. */
export interface AttentionResult {
  /** The reduced loss. */
  loss: number;
  /** With reduction 'none': each row's mean squared difference (their mean is `loss`). */
  perSample?: Float64Array;
  /** With `grad` or `gradOut`: d(loss)/d(student attention). */
  grad?: FloatArray;
}

/** Attention transfer with beta-power normalised attention maps. */
export class AttentionTransferLoss {
  /** Power applied to |attention| before row normalisation (finite, > 0). */
  readonly beta: number;

  /**
   * @param beta power, finite and > 0 (typically 2)
   * @throws ConfigError for a beta out of domain
   */
  constructor(beta: number) {
    if (typeof beta !== 'number' || !Number.isFinite(beta) || beta <= 0) {
      throw new ConfigError(`beta: expected a finite number > 0, got ${String(beta)}`);
    }
    this.beta = beta;
  }

  /**
   * The attention transfer loss (the seed's `compute_attention_loss`).
   * @param studentAttention student attention maps, rows x cols
   * @param teacherAttention teacher attention maps of the same shape
   */
  computeAttentionLoss(studentAttention: MatrixInput, teacherAttention: MatrixInput): number {
    return this.forward(studentAttention, teacherAttention).loss;
  }

  /** Loss and optionally per-row losses and the gradient. */
  forward(studentAttention: MatrixInput, teacherAttention: MatrixInput, options?: AttentionForwardOptions): AttentionResult {
    const call = this.prepare(studentAttention, teacherAttention, options, false);
    return call.finish(backend().attention(call.job, call.threads));
  }

  /** {@link forward} off the main thread, split over row blocks (bitwise the same for any thread count). */
  async forwardAsync(
    studentAttention: MatrixInput,
    teacherAttention: MatrixInput,
    options?: AttentionForwardOptions & AsyncOptions,
  ): Promise<AttentionResult> {
    const signal = signalOf(options?.signal);
    const call = this.prepare(studentAttention, teacherAttention, options, true);
    const { job, threads } = call;
    return call.finish(
      await settle(() => backend().attentionAsync(job, threads), signal, job.rows * job.cols, () => backend().attention(job, 1)),
    );
  }

  /** {@link computeAttentionLoss} off the main thread (see {@link forwardAsync}). */
  async computeAttentionLossAsync(
    studentAttention: MatrixInput,
    teacherAttention: MatrixInput,
    options?: AsyncOptions,
  ): Promise<number> {
    const opts = optionsOf(options);
    return (await this.forwardAsync(studentAttention, teacherAttention, { signal: opts.signal, threads: opts.threads })).loss;
  }

  private prepare(
    studentAttention: MatrixInput,
    teacherAttention: MatrixInput,
    options: (AttentionForwardOptions & AsyncOptions) | undefined,
    async: boolean,
  ): { job: AttentionJob; threads: number; finish: (total: number) => AttentionResult } {
    const opts = optionsOf(options);
    const reduction = reductionOf(opts.reduction);
    const dtype = callDType(studentAttention, teacherAttention);
    const s = toMatrix(studentAttention, 'studentAttention', dtype);
    const t = toMatrix(teacherAttention, 'teacherAttention', dtype);
    expectShape(t, s.rows, s.cols, 'teacherAttention');
    const n = s.rows * s.cols;
    const threads = threadsOf(opts.threads, n, async);
    const wantGrad = opts.grad === true || opts.gradOut !== undefined;
    const grad = wantGrad ? (opts.gradOut !== undefined ? checkOut(opts.gradOut, dtype, n, 'gradOut') : allocFloat(dtype, n)) : null;
    // 'sum' sums row means; 'mean' and 'none' report the mean over all elements.
    const scale = reduction === 'sum' ? 1 / s.cols : 1 / n;
    const perSample = reduction === 'none' ? new Float64Array(s.rows) : null;
    const job: AttentionJob = {
      student: s.data,
      teacher: t.data,
      rows: s.rows,
      cols: s.cols,
      beta: this.beta,
      rowOut: perSample,
      grad,
      gradScale: scale,
    };
    const finish = (total: number): AttentionResult => {
      const result: AttentionResult = { loss: total * scale };
      if (perSample !== null) result.perSample = perSample;
      if (grad !== null) result.grad = grad;
      return result;
    };
    return { job, threads, finish };
  }
}
