/**
 * Hinton knowledge distillation: alpha * T^2 * KL(softmax(teacher/T) || softmax(student/T)) +
 * (1 - alpha) * hard loss.
 * @module
 */
import { DivergenceCode } from './backend/layout';
import { HardKind, type KdJob, ReductionCode, reductionScale, type SparseKdJob, TargetKind } from './backend/types';
import { Call, runAsync, runSync } from './call';
import { ConfigError, InputError, ShapeError } from './errors';
import { CrossEntropyLoss, fusedSpec, type Loss } from './losses';
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
  type Targets,
  toMatrix,
} from './matrix';
import { type AsyncOptions, maskOf, optionsOf, type Reduction, reductionCode, reductionOf, signalOf, threadsOf } from './options';
import { checkSparseTeacher, readSparseTeacher, SPARSE_INPLACE_MAX_BYTES, type SparseTeacher, sparseValuesRead } from './sparse';
import { type PreparedTargets, prepareTargets, readTargets, targetsMatrixRead } from './targets';
import { isFloat32Array, isFloat64Array, lengthOf } from './views';

/**
 * The divergence of the soft term, with p = softmax(teacher / T) and q = softmax(student / T):
 * 'kl' KL(p || q) (Hinton), 'reverse-kl' KL(q || p), 'jsd' beta KL(p || m) + (1 - beta) KL(q || m) with
 * m = beta p + (1 - beta) q (TRL's generalized JSD), 'tvd' 1/2 sum |p - q|.
 */
export type Divergence = 'kl' | 'reverse-kl' | 'jsd' | 'tvd';

/** Options of the {@link DistillationLoss} constructor. */
export interface DistillationOptions {
  /** The soft term's divergence (default 'kl'). */
  divergence?: Divergence;
  /** For 'jsd' only: the weight of the teacher in the mixture, strictly between 0 and 1 (default 0.5). */
  beta?: number;
  /**
   * Multiply the soft term by T^2 (default true, Hinton's scaling, which keeps its gradient's scale
   * independent of T). false: the convention of TRL, Liger and torchtune.
   */
  temperatureScaling?: boolean;
}

/** Options of {@link DistillationLoss.forward}. */
export interface DistillationForwardOptions {
  /** 'mean' (default: mean over kept rows), 'sum' or 'none' (adds `perSample`). */
  reduction?: Reduction;
  /**
   * With 'mean': divide the sums over kept rows by this (finite, > 0) instead of by the kept rows, e.g.
   * the kept tokens of a whole batch split into micro-batches, so their losses and gradients add up
   * to the whole batch's (TRL's num_items_in_batch).
   */
  normalizer?: number;
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
  /** alpha * T^2 * soft + (1 - alpha) * hard (alpha * soft without temperature scaling). */
  loss: number;
  /** The unweighted soft term: the divergence at temperature T, reduced. */
  soft: number;
  /** The unweighted hard term, reduced. */
  hard: number;
  /** Rows kept (not left out by `mask` or the ignore index). */
  kept: number;
  /** With reduction 'none': each row's loss (0 for rows left out). */
  perSample?: Float64Array;
  /** With reduction 'none': each row's unweighted soft term, the divergence at T. */
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
/** The widest row whose argmax an Int32Array can hold. */
const MAX_ARGMAX_COLS = 2147483647;
/** Receives the sums of sync calls; read by finish() before any user code runs. */
const syncResults = new Float64Array(3);

function checkNumber(v: unknown, name: string): number {
  if (typeof v !== 'number') throw new ConfigError(`${name}: expected a number, got ${typeof v}`);
  return v;
}

/** The beta of 'jsd': strictly between 0 and 1 (default 0.5); its endpoints are other divergences. */
function checkBeta(v: unknown): number {
  if (v === undefined) return 0.5;
  const b = checkNumber(v, 'beta');
  if (b === 0 || b === 1) {
    throw new ConfigError(
      `beta: ${b} is not a JSD (beta KL(p || m) + (1 - beta) KL(q || m) is 0 there); for the KL divergence TRL uses at ` +
        `beta = ${b}, use divergence '${b === 0 ? 'kl' : 'reverse-kl'}'`,
    );
  }
  if (!(b > 0 && b < 1)) throw new ConfigError(`beta: expected a number strictly between 0 and 1, got ${b}`);
  return b;
}

const DIVERGENCES: Record<Divergence, DivergenceCode> = {
  kl: DivergenceCode.Kl,
  'reverse-kl': DivergenceCode.ReverseKl,
  jsd: DivergenceCode.Jsd,
  tvd: DivergenceCode.Tvd,
};

/** Knowledge-distillation loss (Hinton et al., 2015), with a choice of divergence. */
export class DistillationLoss {
  /** Softening temperature T (> 0, finite). */
  readonly temperature: number;
  /** Weight of the soft term in [0, 1]; the hard term gets 1 - alpha. */
  readonly alpha: number;
  /** The hard-target loss. Built-ins run fused in the native kernel; other objects run in JS. */
  readonly hardLoss: Loss;
  /** The soft term's divergence. */
  readonly divergence: Divergence;
  /** The mixture weight of 'jsd' (null for the other divergences). */
  readonly beta: number | null;
  /** Whether the soft term is multiplied by T^2. */
  readonly temperatureScaling: boolean;
  /** The soft term's weight in the loss: alpha T^2, or alpha without temperature scaling. */
  private readonly softWeight: number;

  /**
   * @param temperature softening temperature, finite and > 0 (typically 2 to 5)
   * @param alpha weight of the soft term in [0, 1] (typically 0.5 to 0.9)
   * @param hardLoss hard-target loss (default: `new CrossEntropyLoss()`)
   * @param options the divergence, its beta, and the temperature scaling (see {@link DistillationOptions})
   * @throws ConfigError for a temperature, alpha, hard loss or option out of domain
   */
  constructor(temperature: number, alpha: number, hardLoss: Loss = new CrossEntropyLoss(), options?: DistillationOptions) {
    const t = checkNumber(temperature, 'temperature');
    if (!Number.isFinite(t) || t <= 0) throw new ConfigError(`temperature: expected a finite number > 0, got ${t}`);
    const a = checkNumber(alpha, 'alpha');
    if (!(a >= 0 && a <= 1)) throw new ConfigError(`alpha: expected a number in [0, 1], got ${a}`);
    if (typeof hardLoss !== 'object' || hardLoss === null || typeof hardLoss.compute !== 'function') {
      throw new ConfigError('hardLoss: expected an object with a compute(predictions, targets) function');
    }
    if (options !== undefined && (typeof options !== 'object' || options === null)) throw new ConfigError('options: expected an object');
    const { divergence = 'kl', beta, temperatureScaling = true } = options ?? {};
    if (typeof divergence !== 'string' || !Object.prototype.hasOwnProperty.call(DIVERGENCES, divergence)) {
      throw new ConfigError(`divergence: expected 'kl', 'reverse-kl', 'jsd' or 'tvd', got ${String(divergence)}`);
    }
    this.beta = divergence === 'jsd' ? checkBeta(beta) : null;
    if (divergence !== 'jsd' && beta !== undefined) {
      throw new ConfigError(`beta: only the 'jsd' divergence takes a beta, not '${divergence}'`);
    }
    if (typeof temperatureScaling !== 'boolean') {
      throw new ConfigError(`temperatureScaling: expected a boolean, got ${String(temperatureScaling)}`);
    }
    this.temperature = t;
    this.alpha = a;
    this.divergence = divergence;
    this.temperatureScaling = temperatureScaling;
    this.softWeight = temperatureScaling ? a * t * t : a;
    this.hardLoss = hardLoss;
  }

  /**
   * The combined distillation loss, averaged over rows (the seed's `compute_distillation`).
   * @param student student logits, rows x cols
   * @param teacher teacher logits of the same shape
   * @param hardTargets one-hot/probability rows of the same shape, or one class index per row
   */
  computeDistillation(student: MatrixInput, teacher: MatrixInput | SparseTeacher, hardTargets: Targets): number {
    return this.forward(student, teacher, hardTargets).loss;
  }

  /**
   * Loss, its two terms, and optionally per-row losses and the gradient, in one native pass per row.
   * @throws ShapeError, InputError for bad inputs (see README)
   */
  forward(student: MatrixInput, teacher: MatrixInput | SparseTeacher, hardTargets: Targets, options?: DistillationForwardOptions): DistillationResult {
    return runSync(this.prepare(student, teacher, hardTargets, options, false));
  }

  /**
   * {@link forward} off the main thread, split over row blocks on `threads` threads. The result is
   * bitwise the same for every thread count. Inputs stay referenced until the promise settles.
   */
  async forwardAsync(
    student: MatrixInput,
    teacher: MatrixInput | SparseTeacher,
    hardTargets: Targets,
    options?: DistillationForwardOptions & AsyncOptions,
  ): Promise<DistillationResult> {
    return runAsync(this.prepare(student, teacher, hardTargets, options, true));
  }

  /** {@link computeDistillation} off the main thread (see {@link forwardAsync}). */
  async computeDistillationAsync(student: MatrixInput, teacher: MatrixInput | SparseTeacher, hardTargets: Targets, options?: AsyncOptions): Promise<number> {
    const opts = optionsOf(options);
    return (await this.forwardAsync(student, teacher, hardTargets, { signal: opts.signal, threads: opts.threads })).loss;
  }

  /** Validates a call, reading every argument and option once, and builds its job. */
  private prepare(
    student: MatrixInput,
    teacher: MatrixInput | SparseTeacher,
    hardTargets: Targets,
    options: (DistillationForwardOptions & AsyncOptions) | undefined,
    async: boolean,
  ): KdCall {
    const opts = optionsOf(options);
    const reduction = reductionOf(opts.reduction);
    const { grad: gradOpt, gradOut, mask: maskOpt, threads: threadsOpt, argmax: argmaxOpt, normalizer: normalizerOpt } = opts;
    const normalizer = normalizerOf(normalizerOpt, reduction);
    const signal = async ? signalOf(opts.signal) : undefined;
    const sRead = readMatrix(student);
    // A sparse (top-k) teacher (lib/sparse.ts), or dense logits.
    const spRead = readSparseTeacher(teacher);
    const tRead = spRead === null ? readMatrix(teacher) : sparseValuesRead(spRead);
    const yRead = readTargets(hardTargets);
    const dtype = callDType(sRead, tRead, targetsMatrixRead(yRead));
    const s = toMatrix(sRead, 'student', dtype);
    const { rows, cols } = s;
    const sp = spRead === null ? null : checkSparseTeacher(spRead, rows, cols, dtype, this.divergence);
    const t = sp === null ? toMatrix(tRead, 'teacher', dtype) : null;
    if (t !== null) expectShape(t, rows, cols, 'teacher');
    const threads = threadsOf(threadsOpt, rows * cols, async);
    const fused = fusedSpec(this.hardLoss);
    // Class indices a backend reads are range-checked there, in its pass that counts the kept rows;
    // a user-written hard loss gets them unread by any backend, so they are checked here.
    const targets = prepareTargets(yRead, rows, cols, dtype, 'hardTargets', fused ? null : { ignoreIndex: NO_IGNORE });
    const mask = maskOf(maskOpt, rows);
    const wantGrad = gradOpt === true || gradOut !== undefined;
    if (!fused) {
      if (reduction === 'none') throw new InputError(`reduction 'none' needs a built-in hard loss, not ${this.hardLoss.name}`);
      if (mask !== null) throw new InputError(`mask needs a built-in hard loss, not ${this.hardLoss.name}`);
      if (normalizer !== 0) throw new InputError(`normalizer needs a built-in hard loss, not ${this.hardLoss.name}`);
      if (wantGrad && typeof this.hardLoss.gradient !== 'function') {
        throw new InputError(`grad: hardLoss ${this.hardLoss.name} has no gradient(predictions, targets) function`);
      }
    }
    const argmax = argmaxOpt === true;
    if (argmax && cols > MAX_ARGMAX_COLS) {
      throw new ShapeError(`argmax: rows of ${cols} columns have indices beyond an Int32Array's range (at most ${MAX_ARGMAX_COLS} columns)`);
    }
    let grad: FloatArray | null = null;
    if (gradOut !== undefined) {
      grad = checkOut(gradOut, dtype, rows * cols, 'gradOut');
      // In place over the student only where the kernel alone reads it (a user-written loss reads it after).
      // A sparse teacher's kernel keeps each row's entry logits aside to write in place (SPARSE_INPLACE_MAX_BYTES).
      const inPlace = fused && (sp === null || sp.k * (dtype === 'float32' ? 4 : 8) <= SPARSE_INPLACE_MAX_BYTES);
      checkNoOverlap(
        grad,
        'gradOut',
        [
          [s.data, 'student'],
          ...(sp === null
            ? [[t!.data, 'teacher'] as const]
            : [[sp.indices, 'teacher.indices'] as const, [sp.values, 'teacher.values'] as const]),
          [targets.data, 'hardTargets'],
          [mask, 'mask'],
        ],
        inPlace ? s.data : null,
      );
    } else if (wantGrad) {
      grad = allocFloat(dtype, rows * cols);
    }
    const perRow = reduction === 'none';
    const common = {
      dtype,
      student: s.data,
      rows,
      cols,
      targets: fused ? targets.data : null,
      targetKind: fused ? targets.kind : TargetKind.None,
      mask,
      temperature: this.temperature,
      divergence: DIVERGENCES[this.divergence],
      beta: this.beta ?? 0,
      hard: fused ? fused.kind : HardKind.None,
      epsilon: fused ? fused.epsilon : 0,
      labelSmoothing: fused ? fused.labelSmoothing : 0,
      ignoreIndex: fused ? fused.ignoreIndex : NO_IGNORE,
      softWeight: this.softWeight,
      hardWeight: fused ? 1 - this.alpha : 0,
      reduction: reductionCode(reduction),
      normalizer,
      rowSoft: perRow ? new Float64Array(rows) : null,
      rowHard: perRow ? new Float64Array(rows) : null,
      argmax: argmax ? new Int32Array(2 * rows) : null,
      grad,
    };
    const job: KdJob | SparseKdJob =
      sp === null
        ? { op: 'kd', teacher: t!.data, ...common }
        : { op: 'sparseKd', indices: sp.indices, values: sp.values, k: sp.k, sparseKind: sp.kind, tail: sp.tail, ...common };
    return new KdCall(this, job, threads, async ? new Float64Array(3) : syncResults, signal, s, targets, fused !== null);
  }
}

/** Validates the normalizer option: absent (0), or finite and > 0 with reduction 'mean'. */
function normalizerOf(v: unknown, reduction: Reduction): number {
  if (v === undefined) return 0;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new ConfigError(`normalizer: expected a finite number > 0, got ${String(v)}`);
  if (reduction !== 'mean') throw new ConfigError(`normalizer: only with reduction 'mean', not '${reduction}'`);
  return v;
}

/** A validated distillation call; {@link finish} turns the backend's sums into its result. */
class KdCall extends Call<DistillationResult> {
  constructor(
    private readonly loss: DistillationLoss,
    override readonly job: KdJob | SparseKdJob,
    threads: number,
    results: Float64Array,
    signal: AbortSignal | undefined,
    /** The student as validated (a user-written hard loss computes on it). */
    private readonly student: Matrix,
    private readonly targets: PreparedTargets,
    /** Whether the hard loss runs fused in the kernel. */
    private readonly fused: boolean,
  ) {
    super(job, threads, job.rows * job.cols, results, signal);
  }

  finish(): DistillationResult {
    const { job, loss } = this;
    // Read first: a user-written hard loss below may run another (sync) call over the same array.
    const softSum = this.results[0];
    const hardSum = this.results[1];
    const kept = this.results[2];
    const { rows, cols, grad, rowSoft, rowHard, argmax } = job;
    const scale = reductionScale(job.reduction, job.normalizer, kept);
    const soft = softSum * scale;
    let hard: number;
    if (this.fused) {
      hard = hardSum * scale;
    } else {
      const { targets, student: s } = this;
      const custom = targets.kind === TargetKind.Matrix ? ({ data: targets.data, rows, cols } as Matrix) : (targets.data as Int32Array | Uint32Array);
      const h = loss.hardLoss.compute(s, custom);
      if (typeof h !== 'number') throw new InputError(`hardLoss ${loss.hardLoss.name}: compute returned ${typeof h}, expected a number`);
      const hardScale = job.reduction === ReductionCode.Sum ? rows : 1;
      hard = h * hardScale;
      if (grad !== null) addCustomGradient(loss.hardLoss, s, custom, grad, (1 - loss.alpha) * hardScale);
    }
    const result: DistillationResult = { loss: job.softWeight * soft + (1 - loss.alpha) * hard, soft, hard, kept };
    if (rowSoft !== null && rowHard !== null) {
      const perSample = new Float64Array(rows);
      for (let r = 0; r < rows; r++) perSample[r] = job.softWeight * rowSoft[r] + job.hardWeight * rowHard[r];
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

/** The elements of what a user-written hard loss's gradient() returned, or an InputError. */
function gradientData(g: unknown, name: string): ArrayLike<number> {
  if (Array.isArray(g)) return toMatrix(readMatrix(g), name, 'float64').data;
  if (isFloat32Array(g) || isFloat64Array(g)) return g;
  if (typeof g === 'object' && g !== null) {
    const data = (g as { data?: unknown }).data;
    if (isFloat32Array(data) || isFloat64Array(data)) return data;
    throw new InputError(`${name}: expected a matrix whose data is a Float32Array or Float64Array, got data ${data === null ? 'null' : typeof data}`);
  }
  throw new InputError(`${name}: expected a matrix, got ${g === null ? 'null' : typeof g}`);
}

function addCustomGradient(loss: Loss, s: Matrix, targets: Matrix | Int32Array | Uint32Array, grad: FloatArray, weight: number): void {
  const name = `hardLoss ${loss.name}: gradient`;
  const data = gradientData(loss.gradient!(s, targets), name);
  const n = lengthOf(grad);
  const m = isFloat32Array(data) || isFloat64Array(data) ? lengthOf(data) : data.length;
  if (m !== n) throw new InputError(`${name}: expected ${n} elements (the student's shape), got ${m}`);
  for (let i = 0; i < n; i++) grad[i] += weight * data[i];
}
