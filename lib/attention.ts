/**
 * Attention transfer: a = |x|^beta, each row divided by its sum where that sum > 1e-8; the loss is the
 * mean over all elements of (a_student - a_teacher)^2.
 * @module
 */
import type { AttentionJob } from './backend/types';
import { Call, runAsync, runSync } from './call';
import { ConfigError } from './errors';
import { allocFloat, callDType, checkNoOverlap, checkOut, expectShape, type FloatArray, type MatrixInput, readMatrix, toMatrix } from './matrix';
import { type AsyncOptions, optionsOf, type Reduction, reductionCode, reductionOf, signalOf, threadsOf } from './options';

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
    return runSync(this.prepare(studentAttention, teacherAttention, options, false));
  }

  /** {@link forward} off the main thread, split over row blocks (bitwise the same for any thread count). */
  async forwardAsync(
    studentAttention: MatrixInput,
    teacherAttention: MatrixInput,
    options?: AttentionForwardOptions & AsyncOptions,
  ): Promise<AttentionResult> {
    return runAsync(this.prepare(studentAttention, teacherAttention, options, true));
  }

  /** {@link computeAttentionLoss} off the main thread (see {@link forwardAsync}). */
  async computeAttentionLossAsync(studentAttention: MatrixInput, teacherAttention: MatrixInput, options?: AsyncOptions): Promise<number> {
    const opts = optionsOf(options);
    return (await this.forwardAsync(studentAttention, teacherAttention, { signal: opts.signal, threads: opts.threads })).loss;
  }

  /** Validates a call, reading every argument and option once, and builds its job. */
  private prepare(
    studentAttention: MatrixInput,
    teacherAttention: MatrixInput,
    options: (AttentionForwardOptions & AsyncOptions) | undefined,
    async: boolean,
  ): AttentionCall {
    const opts = optionsOf(options);
    const reduction = reductionOf(opts.reduction);
    const { grad: gradOpt, gradOut, threads: threadsOpt } = opts;
    const signal = async ? signalOf(opts.signal) : undefined;
    const sRead = readMatrix(studentAttention);
    const tRead = readMatrix(teacherAttention);
    const dtype = callDType(sRead, tRead);
    const s = toMatrix(sRead, 'studentAttention', dtype);
    const t = toMatrix(tRead, 'teacherAttention', dtype);
    expectShape(t, s.rows, s.cols, 'teacherAttention');
    const n = s.rows * s.cols;
    const threads = threadsOf(threadsOpt, n, async);
    let grad: FloatArray | null = null;
    if (gradOut !== undefined) {
      grad = checkOut(gradOut, dtype, n, 'gradOut');
      checkNoOverlap(grad, 'gradOut', [[s.data, 'studentAttention'], [t.data, 'teacherAttention']], s.data);
    } else if (gradOpt === true) {
      grad = allocFloat(dtype, n);
    }
    const job: AttentionJob = {
      op: 'attention',
      dtype,
      student: s.data,
      teacher: t.data,
      rows: s.rows,
      cols: s.cols,
      beta: this.beta,
      reduction: reductionCode(reduction),
      rowOut: reduction === 'none' ? new Float64Array(s.rows) : null,
      grad,
    };
    // 'sum' sums row means; 'mean' and 'none' report the mean over all elements.
    return new AttentionCall(job, threads, signal, reduction === 'sum' ? 1 / s.cols : 1 / n);
  }
}

/** A validated attention call. */
class AttentionCall extends Call<AttentionResult> {
  constructor(
    override readonly job: AttentionJob,
    threads: number,
    signal: AbortSignal | undefined,
    private readonly scale: number,
  ) {
    super(job, threads, job.rows * job.cols, new Float64Array(1), signal);
  }

  finish(): AttentionResult {
    const result: AttentionResult = { loss: this.results[0] * this.scale };
    if (this.job.rowOut !== null) result.perSample = this.job.rowOut;
    if (this.job.grad !== null) result.grad = this.job.grad;
    return result;
  }
}
