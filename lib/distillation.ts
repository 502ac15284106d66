/**
 * Hinton knowledge distillation: alpha * T^2 * KL(softmax(teacher/T) || softmax(student/T)) +
 * (1 - alpha) * hard loss.
 * @module
 */
import { backend } from './backend';
import { HardKind, type KdJob, TargetKind } from './backend/types';
import { ConfigError, InputError } from './errors';
import { CrossEntropyLoss, fusedSpec, type Loss } from './losses';
import {
  allocFloat,
  callDType,
  checkOut,
  expectShape,
  type FloatArray,
  type Matrix,
  type MatrixInput,
  type Targets,
  toMatrix,
} from './matrix';
import { type AsyncOptions, maskOf, optionsOf, type Reduction, reductionOf, settle, signalOf, threadsOf } from './options';
import { countKept, type PreparedTargets, prepareTargets } from './targets';

/** Options of {@link DistillationLoss.forward}. */
export interface DistillationForwardOptions {
  /** 'mean' (default: mean over kept rows), 'sum' or 'none' (adds `perSample`). */
  reduction?: Reduction;
  /** Return the gradient of `loss` with respect to the student logits. */
  grad?: boolean;
  /** Caller-owned gradient buffer (student dtype, rows * cols); implies `grad`. Returned as `grad`. */
  gradOut?: FloatArray;
  /** One entry per row; rows whose entry is 0 are left out of both terms. */
  mask?: Uint8Array;
  /** Threads for this call (default 1 for sync calls; see {@link AsyncOptions} for async ones). */
  threads?: number;
  /** Also return each row's top-1 class for student and teacher (`studentArgmax`, `teacherArgmax`). */
  argmax?: boolean;
}

/** Result of {@link DistillationLoss.forward}. */
export interface DistillationResult {
  /** alpha * T^2 * soft + (1 - alpha) * hard. */
  loss: number;
  /** The unweighted soft term: KL(p_teacher || p_student) at temperature T, reduced. */
  soft: number;
  /** The unweighted hard term, reduced. */
  hard: number;
  /** With reduction 'none': each row's loss (0 for rows left out). */
  perSample?: Float64Array;
  /** With reduction 'none': each row's unweighted soft term, KL(p_teacher || p_student) at T. */
  perSampleSoft?: Float64Array;
  /** With reduction 'none': each row's unweighted hard term. */
  perSampleHard?: Float64Array;
  /** With `grad` or `gradOut`: d(loss)/d(student), the student's dtype and shape. */
  grad?: FloatArray;
  /** With `argmax`: index of each row's largest student logit (first of ties; NaN logits are skipped; -1 for rows left out and rows of NaN only). */
  studentArgmax?: Int32Array;
  /** With `argmax`: index of each row's largest teacher logit. */
  teacherArgmax?: Int32Array;
}

const NO_IGNORE = Number.MIN_SAFE_INTEGER;
/** Receives [soft sum, hard sum, kept rows] from sync calls; read before any user code runs. */
const kdOut = new Float64Array(3);

function checkNumber(v: unknown, name: string): number {
  if (typeof v !== 'number') throw new ConfigError(`${name}: expected a number, got ${typeof v}`);
  return v;
}

/** Knowledge-distillation loss (Hinton et al., 2015). */
export class DistillationLoss {
  /** Softening temperature T (> 0, finite). */
  readonly temperature: number;
  /** Weight of the soft term in [0, 1]; the hard term gets 1 - alpha. */
  readonly alpha: number;
  /** The hard-target loss. Built-ins run fused in the native kernel; other objects run in JS. */
  readonly hardLoss: Loss;
  /** The soft term's weight in the loss, alpha * T^2 (Hinton's scaling). */
  private readonly softWeight: number;

  /**
   * @param temperature softening temperature, finite and > 0 (typically 2 to 5)
   * @param alpha weight of the soft term in [0, 1] (typically 0.5 to 0.9)
   * @param hardLoss hard-target loss (default: `new CrossEntropyLoss()`)
   * @throws ConfigError for a temperature, alpha or hard loss out of domain
   */
  constructor(temperature: number, alpha: number, hardLoss: Loss = new CrossEntropyLoss()) {
    const t = checkNumber(temperature, 'temperature');
    if (!Number.isFinite(t) || t <= 0) throw new ConfigError(`temperature: expected a finite number > 0, got ${t}`);
    const a = checkNumber(alpha, 'alpha');
    if (!(a >= 0 && a <= 1)) throw new ConfigError(`alpha: expected a number in [0, 1], got ${a}`);
    if (typeof hardLoss !== 'object' || hardLoss === null || typeof hardLoss.compute !== 'function') {
      throw new ConfigError('hardLoss: expected an object with a compute(predictions, targets) function');
    }
    this.temperature = t;
    this.alpha = a;
    this.softWeight = a * this.temperature * this.temperature;
    this.hardLoss = hardLoss;
  }

  /**
   * The combined distillation loss, averaged over rows (the seed's `compute_distillation`).
   * @param student student logits, rows x cols
   * @param teacher teacher logits of the same shape
   * @param hardTargets one-hot/probability rows of the same shape, or one class index per row
   */
  computeDistillation(student: MatrixInput, teacher: MatrixInput, hardTargets: Targets): number {
    return this.forward(student, teacher, hardTargets).loss;
  }

  /**
   * Loss, its two terms, and optionally per-row losses and the gradient, in one native pass per row.
   * @throws ShapeError, InputError for bad inputs (see README)
   */
  forward(
    student: MatrixInput,
    teacher: MatrixInput,
    hardTargets: Targets,
    options?: DistillationForwardOptions,
  ): DistillationResult {
    const call = this.prepare(student, teacher, hardTargets, options, false);
    backend().kd(call.job, kdOut, call.threads);
    return this.finish(call, kdOut);
  }

  /**
   * {@link forward} off the main thread, split over row blocks on `threads` threads. The result is
   * bitwise the same for every thread count. Inputs stay referenced until the promise settles.
   */
  async forwardAsync(
    student: MatrixInput,
    teacher: MatrixInput,
    hardTargets: Targets,
    options?: DistillationForwardOptions & AsyncOptions,
  ): Promise<DistillationResult> {
    const out = new Float64Array(3);
    const signal = signalOf(options?.signal);
    const call = this.prepare(student, teacher, hardTargets, options, true);
    const { job, threads } = call;
    await settle(() => backend().kdAsync(job, out, threads), signal, job.rows * job.cols, () => (backend().kd(job, out, 1), 0));
    return this.finish(call, out);
  }

  /** {@link computeDistillation} off the main thread (see {@link forwardAsync}). */
  async computeDistillationAsync(
    student: MatrixInput,
    teacher: MatrixInput,
    hardTargets: Targets,
    options?: AsyncOptions,
  ): Promise<number> {
    const opts = optionsOf(options);
    return (await this.forwardAsync(student, teacher, hardTargets, { signal: opts.signal, threads: opts.threads })).loss;
  }

  /** Validates a call and builds its job; {@link finish} then turns the backend's sums into a result. */
  private prepare(
    student: MatrixInput,
    teacher: MatrixInput,
    hardTargets: Targets,
    options: (DistillationForwardOptions & AsyncOptions) | undefined,
    async: boolean,
  ): KdCall {
    const opts = optionsOf(options);
    const reduction = reductionOf(opts.reduction);
    const dtype = callDType(student, teacher, hardTargets);
    const s = toMatrix(student, 'student', dtype);
    const t = toMatrix(teacher, 'teacher', dtype);
    expectShape(t, s.rows, s.cols, 'teacher');
    const { rows, cols } = s;
    const threads = threadsOf(opts.threads, rows * cols, async);
    const fused = fusedSpec(this.hardLoss);
    const ignoreIndex = fused ? fused.ignoreIndex : NO_IGNORE;
    const targets = prepareTargets(hardTargets, rows, cols, dtype, ignoreIndex, 'hardTargets');
    const mask = maskOf(opts.mask, rows);
    const wantGrad = opts.grad === true || opts.gradOut !== undefined;
    if (!fused) {
      if (reduction === 'none') throw new InputError(`reduction 'none' needs a built-in hard loss, not ${this.hardLoss.name}`);
      if (mask !== null) throw new InputError(`mask needs a built-in hard loss, not ${this.hardLoss.name}`);
      if (wantGrad && typeof this.hardLoss.gradient !== 'function') {
        throw new InputError(`grad: hardLoss ${this.hardLoss.name} has no gradient(predictions, targets) function`);
      }
    }
    const grad = wantGrad
      ? opts.gradOut !== undefined
        ? checkOut(opts.gradOut, dtype, rows * cols, 'gradOut')
        : allocFloat(dtype, rows * cols)
      : null;

    const kept = fused ? countKept(mask, targets, ignoreIndex, rows) : rows;
    const scale = reduction === 'sum' ? 1 : kept > 0 ? 1 / kept : 0;
    const { alpha, softWeight } = this;
    const perRow = reduction === 'none';
    const rowSoft = perRow ? new Float64Array(rows) : null;
    const rowHard = perRow ? new Float64Array(rows) : null;
    const argmax = opts.argmax === true ? new Int32Array(2 * rows) : null;
    const job: KdJob = {
      student: s.data,
      teacher: t.data,
      rows,
      cols,
      targets: fused ? targets.data : null,
      targetKind: fused ? targets.kind : TargetKind.None,
      mask,
      temperature: this.temperature,
      hard: fused ? fused.kind : HardKind.None,
      epsilon: fused ? fused.epsilon : 0,
      labelSmoothing: fused ? fused.labelSmoothing : 0,
      ignoreIndex,
      rowSoft,
      rowHard,
      argmax,
      grad,
      gradSoftScale: softWeight * scale,
      gradHardScale: fused ? (1 - alpha) * scale : 0,
    };
    return new KdCall(job, threads, s, targets, reduction, scale, fused !== null);
  }

  /** Turns the backend's sums of a prepared call (in `out`) into its result. */
  private finish(call: KdCall, out: Float64Array): DistillationResult {
    const { job, scale } = call;
    const { rows, cols, grad, rowSoft, rowHard, argmax } = job;
    const { alpha, softWeight } = this;
    const soft = out[0] * scale;
    let hard: number;
    if (call.fused) {
      hard = out[1] * scale;
    } else {
      const { targets, student: s } = call;
      const custom =
        targets.kind === TargetKind.Matrix ? ({ data: targets.data, rows, cols } as Matrix) : (targets.data as Int32Array | Uint32Array);
      const h = this.hardLoss.compute(s, custom);
      if (typeof h !== 'number') throw new InputError(`hardLoss ${this.hardLoss.name}: compute returned ${typeof h}, expected a number`);
      const hardScale = call.reduction === 'sum' ? rows : 1;
      hard = h * hardScale;
      if (grad !== null) addCustomGradient(this.hardLoss, s, custom, grad, (1 - alpha) * hardScale);
    }
    const result: DistillationResult = { loss: softWeight * soft + (1 - alpha) * hard, soft, hard };
    if (rowSoft !== null && rowHard !== null) {
      const perSample = new Float64Array(rows);
      for (let r = 0; r < rows; r++) perSample[r] = softWeight * rowSoft[r] + (1 - alpha) * rowHard[r];
      result.perSample = perSample;
      result.perSampleSoft = rowSoft;
      result.perSampleHard = rowHard;
    }
    if (grad !== null) result.grad = grad;
    if (argmax !== null) {
      result.studentArgmax = argmax.subarray(0, rows);
      result.teacherArgmax = argmax.subarray(rows);
    }
    return result;
  }
}

/**
 * A validated call between {@link DistillationLoss.prepare} and {@link DistillationLoss.finish}: one
 * object of a fixed shape instead of a result closure and its context per call.
 */
class KdCall {
  constructor(
    readonly job: KdJob,
    readonly threads: number,
    /** The student as validated (a custom hard loss computes on it). */
    readonly student: Matrix,
    readonly targets: PreparedTargets,
    readonly reduction: Reduction,
    /** What the sums are multiplied by: 1 for 'sum', else 1 / kept rows (0 when none is kept). */
    readonly scale: number,
    /** Whether the hard loss runs fused in the kernel. */
    readonly fused: boolean,
  ) {}
}

function addCustomGradient(
  loss: Loss,
  s: Matrix,
  targets: Matrix | Int32Array | Uint32Array,
  grad: FloatArray,
  weight: number,
): void {
  const g = loss.gradient!(s, targets);
  const name = `hardLoss ${loss.name}: gradient`;
  let data: ArrayLike<number>;
  if (Array.isArray(g)) {
    data = toMatrix(g, name, 'float64').data;
  } else if (g instanceof Float32Array || g instanceof Float64Array) {
    data = g;
  } else if (typeof g === 'object' && g !== null && 'data' in g) {
    data = (g as Matrix).data;
  } else {
    throw new InputError(`${name}: expected a matrix, got ${typeof g}`);
  }
  if (data.length !== grad.length) {
    throw new InputError(`${name}: expected ${grad.length} elements (the student's shape), got ${data.length}`);
  }
  for (let i = 0; i < grad.length; i++) grad[i] += weight * data[i];
}
