/**
 * Hard-target losses: the seed's `Loss` trait and its built-ins.
 * @module
 */
import { backend } from './backend';
import { DivergenceCode, HardKind, type KdJob, ReductionCode, reductionScale } from './backend/types';
import { ConfigError } from './errors';
import { allocFloat, callDType, type FloatArray, type Matrix, type MatrixInput, readMatrix, type Targets, toMatrix } from './matrix';
import { prepareTargets, readTargets, targetsMatrixRead } from './targets';

/**
 * A hard-target loss, as the seed's `Loss` trait. A user-written object implementing it can be given
 * to {@link DistillationLoss}; it is then computed in JS on the student logits as a {@link Matrix}
 * and the targets as given (a {@link Matrix}, or Int32Array / Uint32Array class indices).
 */
export interface Loss {
  /** Name for messages and reports. */
  readonly name: string;
  /** The batch loss (conventionally the mean over rows). */
  compute(predictions: Matrix, targets: Matrix | Int32Array | Uint32Array): number;
  /** d(compute)/d(predictions), `rows x cols`; needed only when a gradient is requested. */
  gradient?(predictions: Matrix, targets: Matrix | Int32Array | Uint32Array): Matrix | FloatArray | number[][];
}

/** Options of {@link CrossEntropyLoss}. */
export interface CrossEntropyOptions {
  /** true (default): predictions are logits and log-softmax is applied, like PyTorch's cross_entropy. */
  fromLogits?: boolean;
  /** Clamp of probabilities to [epsilon, 1 - epsilon] when `fromLogits` is false (default 1e-10). */
  epsilon?: number;
  /** Label smoothing in [0, 1]: targets become (1 - eps) * y + eps / C, as in PyTorch (default 0). */
  labelSmoothing?: number;
  /** Class index whose rows are left out (default -100, as in PyTorch). */
  ignoreIndex?: number;
}

/** Specification of a built-in loss that the distillation kernel runs fused. */
export interface FusedHardLoss {
  readonly kind: HardKind;
  readonly epsilon: number;
  readonly labelSmoothing: number;
  readonly ignoreIndex: number;
}

/** Receives the sums of the built-in losses' own calls. */
const results = new Float64Array(3);

/** A built-in loss on its own: the distillation kernel with only the hard term weighted. */
function computeBuiltin(spec: FusedHardLoss, predictions: MatrixInput, targets: Targets, grad: boolean) {
  const pRead = readMatrix(predictions);
  const tRead = readTargets(targets);
  const dtype = callDType(pRead, targetsMatrixRead(tRead));
  const p = toMatrix(pRead, 'predictions', dtype);
  const t = prepareTargets(tRead, p.rows, p.cols, dtype, 'targets', null);
  const g = grad ? allocFloat(dtype, p.rows * p.cols) : null;
  const job: KdJob = {
    op: 'kd',
    dtype,
    student: p.data,
    teacher: p.data,
    rows: p.rows,
    cols: p.cols,
    targets: t.data,
    targetKind: t.kind,
    mask: null,
    temperature: 1,
    divergence: DivergenceCode.Kl,
    beta: 0,
    hard: spec.kind,
    epsilon: spec.epsilon,
    labelSmoothing: spec.labelSmoothing,
    ignoreIndex: spec.ignoreIndex,
    softWeight: 0,
    hardWeight: 1,
    reduction: ReductionCode.Mean,
    normalizer: 0,
    rowSoft: null,
    rowHard: null,
    argmax: null,
    grad: g,
  };
  backend().run(job, 1, results);
  // The mean over kept rows (0 when none is kept).
  return { loss: results[1] * reductionScale(ReductionCode.Mean, 0, results[2]), grad: g, rows: p.rows, cols: p.cols };
}

function finiteIn(v: unknown, lo: number, hi: number, hiOpen: boolean, name: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || (hiOpen ? v >= hi : v > hi)) {
    throw new ConfigError(`${name}: expected a number in [${lo}, ${hi}${hiOpen ? ')' : ']'}, got ${String(v)}`);
  }
  return v;
}

/**
 * Cross-entropy against one-hot/probability rows or class indices, averaged over the rows kept.
 * Runs fused inside the native distillation kernel.
 */
export class CrossEntropyLoss implements Loss, FusedHardLoss {
  readonly name = 'CrossEntropyLoss';
  /** Whether predictions are logits (log-softmax applied) or probabilities. */
  readonly fromLogits: boolean;
  /** Probability clamp when `fromLogits` is false. */
  readonly epsilon: number;
  /** Label smoothing in [0, 1]. */
  readonly labelSmoothing: number;
  /** Class index whose rows are ignored. */
  readonly ignoreIndex: number;
  /** @internal */
  readonly kind: HardKind;

  /** @param options see {@link CrossEntropyOptions} */
  constructor(options: CrossEntropyOptions = {}) {
    if (typeof options !== 'object' || options === null) throw new ConfigError('options: expected an object');
    const { fromLogits = true, epsilon = 1e-10, labelSmoothing = 0, ignoreIndex = -100 } = options;
    if (typeof fromLogits !== 'boolean') throw new ConfigError(`fromLogits: expected a boolean, got ${String(fromLogits)}`);
    this.fromLogits = fromLogits;
    this.epsilon = finiteIn(epsilon, 0, 0.5, true, 'epsilon');
    this.labelSmoothing = finiteIn(labelSmoothing, 0, 1, false, 'labelSmoothing');
    if (typeof ignoreIndex !== 'number' || !Number.isSafeInteger(ignoreIndex)) {
      throw new ConfigError(`ignoreIndex: expected an integer, got ${String(ignoreIndex)}`);
    }
    this.ignoreIndex = ignoreIndex;
    this.kind = fromLogits ? HardKind.CrossEntropyLogits : HardKind.CrossEntropyProbs;
  }

  /** Mean cross-entropy over the rows kept (0 when no row is kept). */
  compute(predictions: MatrixInput, targets: Targets): number {
    return computeBuiltin(this, predictions, targets, false).loss;
  }

  /** Gradient of {@link compute} with respect to the predictions (dtype of the predictions). */
  gradient(predictions: MatrixInput, targets: Targets): Matrix {
    const r = computeBuiltin(this, predictions, targets, true);
    return { data: r.grad!, rows: r.rows, cols: r.cols };
  }
}

/** Mean squared error over all elements (class indices are read as one-hot rows). */
export class MseLoss implements Loss, FusedHardLoss {
  readonly name = 'MseLoss';
  /** @internal */
  readonly kind = HardKind.Mse;
  /** @internal */
  readonly epsilon = 0;
  /** @internal */
  readonly labelSmoothing = 0;
  /** @internal */
  readonly ignoreIndex = Number.MIN_SAFE_INTEGER;

  /** Mean over all elements of (predictions - targets)^2. */
  compute(predictions: MatrixInput, targets: Targets): number {
    return computeBuiltin(this, predictions, targets, false).loss;
  }

  /** Gradient of {@link compute} with respect to the predictions. */
  gradient(predictions: MatrixInput, targets: Targets): Matrix {
    const r = computeBuiltin(this, predictions, targets, true);
    return { data: r.grad!, rows: r.rows, cols: r.cols };
  }
}

/** The fused spec of a built-in loss, or null for a user-written one. */
export function fusedSpec(loss: Loss): FusedHardLoss | null {
  return loss instanceof CrossEntropyLoss || loss instanceof MseLoss ? loss : null;
}
