// KNOWN_ISSUES: discrepancies the fuzzer finds that are open bugs, excused so that the suite stays
// green until their fixes land: items of issue 14 (`item`), and what the fuzzer found beyond that list
// (`found`, reported to the lead). Each entry says which rows it affects; a discrepancy is excused
// only when it is a value or argmax mismatch in one of the entry's quantities and every failing row
// (for a batch scalar: some kept row) is such a row. Delete an entry when its fix is merged: the
// fuzzer must then pass without it (`KDLOSS_FUZZ_KNOWN=0` runs it with none excused).
import type { Discrepancy } from './fuzz-check';
import type { AttentionData, FeatureData, FuzzCase, KdData, KdSpec } from './fuzz-gen';
import { kdRowKept } from './fuzz-run';

export interface KnownIssue {
  /** Issue 14 item number, or 'found' for a discrepancy the fuzzer found that no item lists. */
  item: number | 'found';
  title: string;
  /** The results it can make wrong. */
  quantities: RegExp;
  /** Whether row r of the case is affected (for a per-layer quantity, of that layer). */
  row(c: FuzzCase, r: number, quantity: string): boolean;
  /** When given: whether element i of an array quantity is affected (checked besides its row). */
  element?(c: FuzzCase, i: number, quantity: string): boolean;
}

function rowHas(v: ArrayLike<number>, r: number, cols: number, pred: (x: number, j: number) => boolean): boolean {
  for (let j = 0; j < cols; j++) if (pred(v[r * cols + j], j)) return true;
  return false;
}

function smoothedTarget(spec: KdSpec, data: KdData, r: number, j: number): number {
  const y = data.classes !== null ? (data.classes[r] === j ? 1 : 0) : data.targetMatrix![r * spec.cols + j];
  const ls = spec.hard.type === 'ce' ? (spec.hard.options.labelSmoothing ?? 0) : 0;
  return (1 - ls) * y + ls / spec.cols;
}

/** Whether y' / p overflows at element i of a cross-entropy-from-probabilities case. */
function overflowingRatio(c: FuzzCase, i: number): boolean {
  const spec = c.spec as KdSpec;
  const x = (c.data as KdData).student[i];
  const eps = spec.hard.type === 'ce' ? (spec.hard.options.epsilon ?? 1e-10) : 0;
  if (!(x > 0 && x >= eps && x <= 1 - eps)) return false;
  const y = smoothedTarget(spec, c.data as KdData, Math.floor(i / spec.cols), i % spec.cols);
  const ratio = y / x;
  return spec.dtype === 'float32' ? Math.abs(Math.fround(ratio)) === Infinity : Math.abs(ratio) === Infinity;
}

const KD_LOSSES = /^(loss|hard|perSample|perSampleHard|standalone\.loss|grad|standalone\.grad)$/;

export const KNOWN_ISSUES: KnownIssue[] = [
  {
    item: 4,
    title: 'CrossEntropyLoss({ fromLogits: false }): a NaN probability at a target class gives a finite loss on native, NaN on js',
    quantities: KD_LOSSES,
    row: (c, r) => {
      if (c.spec.kind !== 'kd' || c.spec.hard.type !== 'ce' || c.spec.hard.options.fromLogits !== false) return false;
      const spec = c.spec;
      const data = c.data as KdData;
      return rowHas(data.student, r, spec.cols, (x, j) => Number.isNaN(x) && smoothedTarget(spec, data, r, j) !== 0);
    },
  },
  {
    item: 5,
    title:
      'AttentionTransferLoss with beta other than 1 and 2 (3 included): a NaN in either map gives a finite loss on ' +
      'native, NaN on js; in such rows js takes the NaN power sum as below the 1e-8 threshold and gives finite ' +
      'gradients where native gives NaN',
    quantities: /^(loss|perSample|grad)$/,
    row: (c, r) => {
      if (c.spec.kind !== 'attention' || c.spec.beta === 1 || c.spec.beta === 2) return false;
      const d = c.data as AttentionData;
      return rowHas(d.student, r, c.spec.cols, Number.isNaN) || rowHas(d.teacher, r, c.spec.cols, Number.isNaN);
    },
  },
  {
    item: 7,
    title:
      'labelSmoothing 1 with a -Infinity student logit at a class whose target is not 0 (or, fromLogits false ' +
      'with epsilon 0, a probability <= 0 there): native NaN, js +Infinity',
    quantities: KD_LOSSES,
    row: (c, r) => {
      if (c.spec.kind !== 'kd' || c.spec.hard.type !== 'ce' || c.spec.hard.options.labelSmoothing !== 1) return false;
      const o = c.spec.hard.options;
      const d = c.data as KdData;
      const C = c.spec.cols;
      const target = (j: number) => (d.classes !== null ? d.classes[r] === j : d.targetMatrix![r * C + j] !== 0);
      if (o.fromLogits !== false) return rowHas(d.student, r, C, (x, j) => x === -Infinity && target(j));
      return o.epsilon === 0 && rowHas(d.student, r, C, (x, j) => x <= 0 && target(j));
    },
  },
  {
    item: 'found',
    title:
      'CrossEntropyLoss({ fromLogits: false }) gradient at a probability p so small that y / p overflows (a ' +
      'subnormal p): native NaN (alpha 1: 0 * Infinity) or +-Infinity, js finite (it divides (1 - alpha) y by p)',
    quantities: /^grad$/,
    row: (c, r) => {
      if (c.spec.kind !== 'kd' || c.spec.hard.type !== 'ce' || c.spec.hard.options.fromLogits !== false) return false;
      return rowHas((c.data as KdData).student, r, c.spec.cols, (_, j) => overflowingRatio(c, r * (c.spec as KdSpec).cols + j));
    },
    element: (c, i) => overflowingRatio(c, i),
  },
  {
    item: 'found',
    title: 'AttentionTransferLoss gradient at x = 0 in a row holding an infinity or NaN: native NaN, js 0',
    quantities: /^grad$/,
    row: (c, r) => {
      if (c.spec.kind !== 'attention') return false;
      const d = c.data as AttentionData;
      const bad = (x: number) => !Number.isFinite(x);
      return rowHas(d.student, r, c.spec.cols, bad) || rowHas(d.teacher, r, c.spec.cols, bad);
    },
    element: (c, i) => (c.data as AttentionData).student[i] === 0,
  },
  {
    item: 'found',
    title: 'FeatureDistillationLoss p = 1: the gradient where s - t is NaN is 0 on native (as PyTorch), NaN on js',
    quantities: /^grads\.\d+$/,
    row: (c, r, quantity) => {
      if (c.spec.kind !== 'feature' || c.spec.p !== 1) return false;
      const l = Number(quantity.split('.')[1]);
      const d = c.data as FeatureData;
      const C = c.spec.cols[l];
      return rowHas(d.students[l], r, C, (x, j) => Number.isNaN(x - d.teachers[l][r * C + j]));
    },
  },
  {
    item: 'found',
    title:
      'float32 distillation: a -Infinity student logit where the teacher probability is positive but below ' +
      'float32 range (exp((t - max t) / T) < 2^-149) gives a finite KL on native, +Infinity on js',
    quantities: /^(loss|soft|perSample|perSampleSoft)$/,
    row: (c, r) => {
      if (c.spec.kind !== 'kd' || c.spec.dtype !== 'float32') return false;
      const { cols: C, temperature: T } = c.spec;
      const d = c.data as KdData;
      let mt = -Infinity;
      for (let j = 0; j < C; j++) if (d.teacher[r * C + j] > mt) mt = d.teacher[r * C + j];
      return rowHas(d.student, r, C, (x, j) => {
        const a = (d.teacher[r * C + j] - mt) / T;
        return x === -Infinity && Math.exp(a) > 0 && Math.fround(Math.exp(a)) === 0;
      });
    },
  },
  {
    item: 'found',
    title:
      'float32 AttentionTransferLoss, beta > 1: the gradient at an x whose |x|^beta is below float32 normal range ' +
      '(e.g. |x| = 1e-37, beta 1.5) is 0 or inexact on native (|x|^beta / x underflows), exact on js',
    quantities: /^grad$/,
    row: (c, r) => {
      if (c.spec.kind !== 'attention' || c.spec.dtype !== 'float32' || c.spec.beta <= 1) return false;
      const beta = c.spec.beta;
      return rowHas((c.data as AttentionData).student, r, c.spec.cols, (x) => x !== 0 && Math.abs(x) ** beta < 2 ** -126);
    },
    element: (c, i) => {
      const x = (c.data as AttentionData).student[i];
      return x !== 0 && Math.abs(x) ** (c.spec as { beta: number }).beta < 2 ** -126;
    },
  },
  {
    item: 9,
    title:
      'float32 AttentionTransferLoss: |x|^beta computed in float32 carries a relative error of about ' +
      '|beta log2 |x|| 2^-24, past the 1e-5 contract where that product exceeds about 40 (beta 8.1 with ' +
      '|x| < 0.03; subnormal x with any beta): the float32 side of item 9',
    quantities: /^(loss|perSample|grad)$/,
    row: (c, r) => {
      if (c.spec.kind !== 'attention' || c.spec.dtype !== 'float32') return false;
      const beta = c.spec.beta;
      const d = c.data as AttentionData;
      const illConditioned = (x: number) => Number.isFinite(x) && x !== 0 && Math.abs(beta * Math.log2(Math.abs(x))) > 40;
      return rowHas(d.student, r, c.spec.cols, illConditioned) || rowHas(d.teacher, r, c.spec.cols, illConditioned);
    },
  },
];

/**
 * The known issues explaining a discrepancy, or null when it is not explained: every failing element
 * (or row) of an array must be one some issue affects; a batch scalar must sum over a kept row some
 * issue affects.
 */
export function knownIssuesOf(c: FuzzCase, d: Discrepancy): KnownIssue[] | null {
  if (d.check !== 'value' && d.check !== 'argmax') return null;
  const issues = KNOWN_ISSUES.filter((issue) => issue.quantities.test(d.quantity));
  if (issues.length === 0) return null;
  const used = new Set<KnownIssue>();
  const explain = (r: number, i: number | null): boolean => {
    const issue = issues.find((k) => k.row(c, r, d.quantity) && (i === null || k.element === undefined || k.element(c, i, d.quantity)));
    if (issue !== undefined) used.add(issue);
    return issue !== undefined;
  };
  if (d.rows !== undefined) {
    const cols = c.spec.kind === 'feature' ? c.spec.cols[Number(d.quantity.split('.')[1] ?? 0)] : c.spec.cols;
    const ok =
      d.elements !== undefined
        ? d.elements.every((i) => explain(d.quantity.startsWith('perSample') ? i : Math.floor(i / cols), i))
        : d.rows.every((r) => explain(r, null));
    return ok ? [...used] : null;
  }
  // A batch scalar: some row it sums over must be affected.
  const useMask = !d.quantity.startsWith('standalone.');
  for (let r = 0; r < c.spec.rows; r++) {
    const kept = c.spec.kind !== 'kd' || kdRowKept(c.spec, c.data as KdData, r, useMask);
    if (kept && explain(r, null)) return [...used];
  }
  return null;
}
