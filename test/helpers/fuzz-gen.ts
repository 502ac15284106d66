// Case generator of the differential fuzzer (test/fuzz.test.ts, tools/fuzz.js). A case is a pure
// function of (seed, index): its spec (every option and how each input was drawn, printable as JSON)
// and its data (float64 values already rounded to the case's dtype).
import { divRng, type DivergenceSpec, drawDivergence, drawNormalizer, drawSparse, type SparseData, type SparseSpec } from './fuzz-gen-div';
import { FuzzRng, mixSeed } from './fuzz-rng';
import {
  attentionMaps,
  attentionMax,
  dodgeThreshold,
  type DTypeName,
  features,
  logits,
  probabilities,
  related,
  roundTo,
  softmaxRows,
  sprinkle,
} from './fuzz-values';

export type { DTypeName } from './fuzz-values';
export type { DivergenceName, DivergenceSpec, SparseData, SparseSpec } from './fuzz-gen-div';
export type Reduction = 'mean' | 'sum' | 'none';
export type GradMode = 'none' | 'grad' | 'gradOut';

/** Where a typed array lives: its own buffer, or a view into a larger (possibly shared) buffer. */
export type Placement = 'plain' | { buffer: 'array' | 'shared'; before: number; after: number };

/** How the main call is made: sync or async, and its `threads` option (undefined: the default). */
export interface CallSpec {
  async: boolean;
  threads?: number;
}

/** The options a `CrossEntropyLoss` is constructed with (absent fields take their defaults). */
export interface CeOptions {
  fromLogits?: boolean;
  labelSmoothing?: number;
  ignoreIndex?: number;
  epsilon?: number;
}

export type HardSpec = { type: 'ce'; options: CeOptions } | { type: 'mse' };
export type TargetForm = 'int32' | 'uint32' | 'array' | 'onehot' | 'probs' | 'nested';

export interface KdSpec {
  kind: 'kd';
  dtype: DTypeName;
  rows: number;
  cols: number;
  temperature: number;
  alpha: number;
  /** The soft term's divergence, beta and temperature scaling (DistillationLoss options). */
  loss: DivergenceSpec;
  /** The forward option (reduction 'mean' only; not passed to the other reduction's call). */
  normalizer?: number;
  /** A sparse top-k teacher built from the dense one (divergence 'kl' only), or null. */
  sparse: SparseSpec | null;
  hard: HardSpec;
  targetForm: TargetForm;
  /** How each input was drawn. */
  values: { student: string; teacher: string; targets: string; mask: string };
  nestedTeacher: boolean;
  reduction: Reduction;
  /** A second reduction the native backend is called with, to check the reductions agree. */
  altReduction: Reduction;
  grad: GradMode;
  argmax: boolean;
  call: CallSpec;
  /** Also call the hard loss's own compute() and gradient(). */
  standalone: boolean;
  placement: { student: Placement; teacher: Placement; targets: Placement; mask: Placement; gradOut: Placement };
}

export interface KdData {
  student: Float64Array;
  teacher: Float64Array;
  /** Class indices as numbers (Uint32 values above 2^31 included), or null for a target matrix. */
  classes: Float64Array | null;
  targetMatrix: Float64Array | null;
  mask: Uint8Array | null;
  /** The sparse teacher passed instead of `teacher` (when spec.sparse). */
  sparse: SparseData | null;
}

export interface FeatureSpec {
  kind: 'feature';
  dtype: DTypeName;
  rows: number;
  cols: number[];
  weights: number[];
  p: 1 | 2;
  values: string[];
  reduction: Reduction;
  altReduction: Reduction;
  grad: GradMode;
  call: CallSpec;
  placement: { students: Placement[]; teachers: Placement[]; gradOut: Placement[] };
}

export interface FeatureData {
  students: Float64Array[];
  teachers: Float64Array[];
}

export interface AttentionSpec {
  kind: 'attention';
  dtype: DTypeName;
  rows: number;
  cols: number;
  beta: number;
  values: { student: string; teacher: string };
  reduction: Reduction;
  altReduction: Reduction;
  grad: GradMode;
  call: CallSpec;
  placement: { student: Placement; teacher: Placement; gradOut: Placement };
}

export interface AttentionData {
  student: Float64Array;
  teacher: Float64Array;
}

export type FuzzCase =
  | { seed: number; index: number; spec: KdSpec; data: KdData }
  | { seed: number; index: number; spec: FeatureSpec; data: FeatureData }
  | { seed: number; index: number; spec: AttentionSpec; data: AttentionData };

const REDUCTIONS: readonly Reduction[] = ['mean', 'sum', 'none'];

/** Columns around the vector widths (multiples of 4, 8, 16, 32, 64, +-1), or any in 1..70. */
function edgeCols(rng: FuzzRng): number {
  if (rng.chance(0.25)) return rng.intIn(1, 70);
  const m = rng.pick([4, 8, 16, 32, 64]);
  const k = rng.intIn(1, Math.max(1, Math.floor(70 / m)));
  return Math.min(70, Math.max(1, k * m + rng.intIn(-1, 1)));
}

/**
 * A shape: mostly small; sometimes a few wide rows (vocabulary-sized, up to 40000 columns); sometimes
 * enough rows that async calls go to the thread pool (more than 2^14 elements) in several row blocks.
 */
function shape(rng: FuzzRng): { rows: number; cols: number } {
  const kind = rng.weighted({ small: 94, wide: 3, tall: 3 });
  if (kind === 'wide') {
    const cols = rng.chance(0.7) ? rng.intIn(2, 160) * 64 + rng.intIn(-1, 1) : rng.intIn(161, 625) * 64 + rng.intIn(-1, 0);
    return { rows: rng.intIn(1, 2), cols };
  }
  if (kind === 'tall') return { rows: rng.intIn(260, 400), cols: rng.intIn(64, 70) };
  return { rows: rng.chance(0.15) ? 1 : rng.intIn(1, 40), cols: edgeCols(rng) };
}

function placement(rng: FuzzRng): Placement {
  const kind = rng.weighted({ plain: 4, array: 4, shared: 2 });
  return kind === 'plain' ? 'plain' : { buffer: kind, before: rng.int(9), after: rng.int(9) };
}

function callSpec(rng: FuzzRng): CallSpec {
  const call: CallSpec = { async: rng.chance(0.5) };
  if (!rng.chance(0.25)) call.threads = rng.intIn(1, 3);
  return call;
}

function gradMode(rng: FuzzRng): GradMode {
  return rng.weighted({ none: 3, grad: 3, gradOut: 4 });
}

function otherReduction(rng: FuzzRng, r: Reduction): Reduction {
  const others = REDUCTIONS.filter((x) => x !== r);
  return rng.pick(others);
}

/** The case (seed, index). */
export function makeCase(seed: number, index: number): FuzzCase {
  const rng = new FuzzRng(mixSeed(seed, index));
  const family = rng.weighted({ kd: 6, feature: 2, attention: 2 });
  const dtype: DTypeName = rng.chance(0.5) ? 'float32' : 'float64';
  if (family === 'kd') return { seed, index, ...kdCase(rng, divRng(seed, index), dtype) };
  if (family === 'feature') return { seed, index, ...featureCase(rng, dtype) };
  return { seed, index, ...attentionCase(rng, dtype) };
}

function ceOptions(rng: FuzzRng, cols: number): CeOptions {
  const o: CeOptions = {};
  if (rng.chance(0.7)) o.fromLogits = rng.chance(0.75);
  const ls = rng.weighted({ none: 5, zero: 1, random: 3, one: 1 });
  if (ls === 'zero') o.labelSmoothing = 0;
  else if (ls === 'random') o.labelSmoothing = rng.pick([0.1, rng.uniform()]);
  else if (ls === 'one') o.labelSmoothing = 1;
  const ii = rng.weighted({ none: 4, minus1: 1, inRange: 2, above: 1, u32max: 1, i32max: 1 });
  if (ii === 'minus1') o.ignoreIndex = -1;
  else if (ii === 'inRange') o.ignoreIndex = rng.int(cols);
  else if (ii === 'above') o.ignoreIndex = cols + rng.int(3);
  else if (ii === 'u32max') o.ignoreIndex = 4294967295;
  else if (ii === 'i32max') o.ignoreIndex = 2147483647;
  if (rng.chance(0.3)) o.epsilon = rng.pick([0, 1e-7, 1e-3, 0.25, 0.4999]);
  return o;
}

/** Whether a class-index form can hold `ii` (so rows can carry it). */
function representable(form: TargetForm, ii: number): boolean {
  if (form === 'uint32') return ii >= 0 && ii <= 4294967295;
  return ii >= -2147483648 && ii <= 2147483647;
}

function kdCase(rng: FuzzRng, extra: FuzzRng, dtype: DTypeName): { spec: KdSpec; data: KdData } {
  const { rows, cols } = shape(rng);
  const temperature = rng.weighted({ one: 2, low: 1, high: 1, random: 4 });
  const T =
    temperature === 'one' ? 1 : temperature === 'low' ? 0.05 : temperature === 'high' ? 100 : rng.logUniform(0.05, 100);
  const alpha = rng.weighted({ zero: 1, one: 1, half: 1, random: 4 });
  const A = alpha === 'zero' ? 0 : alpha === 'one' ? 1 : alpha === 'half' ? 0.5 : rng.uniform();
  const hard: HardSpec = rng.chance(0.8) ? { type: 'ce', options: ceOptions(rng, cols) } : { type: 'mse' };
  const targetForm = rng.pick<TargetForm>(['int32', 'uint32', 'array', 'onehot', 'probs', 'nested']);
  const fromProbs = hard.type === 'ce' && hard.options.fromLogits === false;
  const epsilon = hard.type === 'ce' ? (hard.options.epsilon ?? 1e-10) : 0;

  // Student and teacher.
  const s = fromProbs ? probabilities(rng, rows, cols, dtype, epsilon) : logits(rng, rows, cols, dtype);
  s.desc += sprinkle(rng, s.values, rows, cols, dtype);
  const t = related(rng, s.values, rows, cols, dtype, () => logits(rng, rows, cols, dtype));
  t.desc += sprinkle(rng, t.values, rows, cols, dtype);

  // Targets.
  const classes = Float64Array.from({ length: rows }, () => rng.int(cols));
  let classData: Float64Array | null = null;
  let targetMatrix: Float64Array | null = null;
  let targetsDesc: string;
  if (targetForm === 'int32' || targetForm === 'uint32' || targetForm === 'array') {
    classData = classes;
    targetsDesc = 'classes';
    const ii = hard.type === 'ce' ? (hard.options.ignoreIndex ?? -100) : null;
    if (ii !== null && representable(targetForm, ii) && rng.chance(0.5)) {
      const rate = rng.pick([0.2, 0.5, 1]);
      let n = 0;
      for (let r = 0; r < rows; r++) {
        if (rng.chance(rate)) {
          classData[r] = ii;
          n++;
        }
      }
      targetsDesc += `, ${n} rows = ignoreIndex`;
    }
  } else {
    const kind = rng.weighted({ onehot: 3, probs: 3, smoothed: 1, sparse: 1, unnormalised: 1 });
    targetsDesc = `${kind} matrix`;
    if (kind === 'probs' || kind === 'sparse') {
      targetMatrix = softmaxRows(rng, rows, cols, rng.pick([0.5, 2, 6]));
      if (kind === 'sparse') for (let i = 0; i < targetMatrix.length; i++) if (rng.chance(0.5)) targetMatrix[i] = 0;
    } else if (kind === 'unnormalised') {
      targetMatrix = Float64Array.from({ length: rows * cols }, () => (rng.chance(0.3) ? 0 : rng.range(0, 1.5)));
    } else {
      targetMatrix = new Float64Array(rows * cols);
      const off = kind === 'smoothed' ? 0.1 / cols : 0;
      for (let r = 0; r < rows; r++) {
        for (let j = 0; j < cols; j++) targetMatrix[r * cols + j] = off + (j === classes[r] ? (kind === 'smoothed' ? 0.9 : 1) : 0);
      }
    }
    roundTo(targetMatrix, dtype);
  }

  // Mask.
  let mask: Uint8Array | null = null;
  let maskDesc = 'none';
  if (rng.chance(0.3)) {
    const drop = rng.pick([0.1, 0.5, 1]);
    mask = Uint8Array.from({ length: rows }, () => (rng.chance(drop) ? 0 : rng.pick([1, 1, 1, 2, 255])));
    maskDesc = `drop ${drop}`;
  }

  const reduction = rng.pick(REDUCTIONS);

  // Divergence options, normalizer and sparse teacher (from their own stream).
  const loss = drawDivergence(extra);
  let kept = 0;
  const ii = hard.type === 'ce' ? (hard.options.ignoreIndex ?? -100) : null;
  for (let r = 0; r < rows; r++) if ((mask === null || mask[r] !== 0) && (classData === null || classData[r] !== ii)) kept++;
  const normalizer = reduction === 'mean' ? drawNormalizer(extra, kept) : undefined;
  const sparse = loss.divergence === 'kl' && extra.chance(0.35) ? drawSparse(extra, t.values, rows, cols, T, dtype) : null;

  const spec: KdSpec = {
    kind: 'kd',
    dtype,
    rows,
    cols,
    temperature: T,
    alpha: A,
    loss,
    ...(normalizer !== undefined ? { normalizer } : {}),
    sparse: sparse?.spec ?? null,
    hard,
    targetForm,
    values: { student: s.desc, teacher: t.desc, targets: targetsDesc, mask: maskDesc },
    nestedTeacher: rows * cols <= 4096 && rng.chance(0.1) && sparse === null,
    reduction,
    altReduction: otherReduction(rng, reduction),
    grad: gradMode(rng),
    argmax: rng.chance(0.5),
    call: callSpec(rng),
    standalone: rng.chance(0.2),
    placement: {
      student: placement(rng),
      teacher: placement(rng),
      targets: placement(rng),
      mask: placement(rng),
      gradOut: placement(rng),
    },
  };
  return { spec, data: { student: s.values, teacher: t.values, classes: classData, targetMatrix, mask, sparse: sparse?.data ?? null } };
}

function featureCase(rng: FuzzRng, dtype: DTypeName): { spec: FeatureSpec; data: FeatureData } {
  const L = rng.intIn(1, 4);
  const first = shape(rng);
  const rows = first.rows;
  const cols = [first.cols];
  for (let l = 1; l < L; l++) cols.push(first.cols > 70 ? rng.intIn(1, 3000) : edgeCols(rng));
  const weights = Array.from({ length: L }, () => rng.weighted({ zero: 1, one: 2, random: 4 }));
  const w = weights.map((k) => (k === 'zero' ? 0 : k === 'one' ? 1 : rng.range(0, 3)));
  const students: Float64Array[] = [];
  const teachers: Float64Array[] = [];
  const values: string[] = [];
  for (let l = 0; l < L; l++) {
    const s = features(rng, rows, cols[l], dtype);
    s.desc += sprinkle(rng, s.values, rows, cols[l], dtype);
    const t = related(rng, s.values, rows, cols[l], dtype, () => features(rng, rows, cols[l], dtype));
    t.desc += sprinkle(rng, t.values, rows, cols[l], dtype);
    students.push(s.values);
    teachers.push(t.values);
    values.push(`student ${s.desc}; teacher ${t.desc}`);
  }
  const reduction = rng.pick(REDUCTIONS);
  const spec: FeatureSpec = {
    kind: 'feature',
    dtype,
    rows,
    cols,
    weights: w,
    p: rng.chance(0.5) ? 1 : 2,
    values,
    reduction,
    altReduction: otherReduction(rng, reduction),
    grad: gradMode(rng),
    call: callSpec(rng),
    placement: {
      students: cols.map(() => placement(rng)),
      teachers: cols.map(() => placement(rng)),
      gradOut: cols.map(() => placement(rng)),
    },
  };
  return { spec, data: { students, teachers } };
}

function attentionCase(rng: FuzzRng, dtype: DTypeName): { spec: AttentionSpec; data: AttentionData } {
  const { rows, cols } = shape(rng);
  const kind = rng.weighted({ one: 5, two: 5, listed: 7, random: 2, high: 1 });
  const beta =
    kind === 'one'
      ? 1
      : kind === 'two'
        ? 2
        : kind === 'listed'
          ? rng.pick([0.1, 0.5, 0.57, 1.5, 2.5, 3, 3.3])
          : kind === 'random'
            ? rng.range(0.1, 4)
            : 8.1;
  const max = attentionMax(dtype, beta);
  const s = attentionMaps(rng, rows, cols, dtype, beta);
  s.desc += sprinkle(rng, s.values, rows, cols, dtype, { max });
  const t = related(rng, s.values, rows, cols, dtype, () => attentionMaps(rng, rows, cols, dtype, beta));
  t.desc += sprinkle(rng, t.values, rows, cols, dtype, { max });
  for (const v of [s.values, t.values]) {
    for (let i = 0; i < v.length; i++) if (Number.isFinite(v[i]) && Math.abs(v[i]) > max) v[i] = Math.sign(v[i]) * max;
    dodgeThreshold(v, rows, cols, beta);
    roundTo(v, dtype);
  }
  const reduction = rng.pick(REDUCTIONS);
  const spec: AttentionSpec = {
    kind: 'attention',
    dtype,
    rows,
    cols,
    beta,
    values: { student: s.desc, teacher: t.desc },
    reduction,
    altReduction: otherReduction(rng, reduction),
    grad: gradMode(rng),
    call: callSpec(rng),
    placement: { student: placement(rng), teacher: placement(rng), gradOut: placement(rng) },
  };
  return { spec, data: { student: s.values, teacher: t.values } };
}
