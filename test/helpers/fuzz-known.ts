// KNOWN_ISSUES: discrepancies the fuzzer finds that are not bugs of the tolerance's kind (a documented
// accuracy bound) or open bugs excused until their fixes land: items of issue 14 (`item`), and what
// the fuzzer found beyond that list (`found`). Each entry says which rows it affects; a discrepancy is
// excused only when it is a value or argmax mismatch in one of the entry's quantities and every failing row
// (for a batch scalar: some kept row) is such a row. Delete an entry when its fix is merged: the
// fuzzer must then pass without it (`KDLOSS_FUZZ_KNOWN=0` runs it with none excused).
import type { Discrepancy } from './fuzz-check';
import type { AttentionData, FuzzCase, KdData } from './fuzz-gen';
import { tailBelowResolution } from './fuzz-floors-div';
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

export const KNOWN_ISSUES: KnownIssue[] = [
  {
    item: 9,
    title:
      'float32 AttentionTransferLoss: |x|^beta computed as exp(beta ln|x|) in float32 carries a relative ' +
      'error of about |beta log2 |x|| 2^-24 (the bound README states), past the 1e-5 tolerance where that ' +
      'product exceeds about 40 (beta 8.1 with |x| < 0.03; subnormal x with any beta)',
    quantities: /^(loss|perSample|grad)$/,
    row: (c, r) => {
      if (c.spec.kind !== 'attention' || c.spec.dtype !== 'float32') return false;
      const beta = c.spec.beta;
      const d = c.data as AttentionData;
      const illConditioned = (x: number) => Number.isFinite(x) && x !== 0 && Math.abs(beta * Math.log2(Math.abs(x))) > 40;
      return rowHas(d.student, r, c.spec.cols, illConditioned) || rowHas(d.teacher, r, c.spec.cols, illConditioned);
    },
  },
  {
    item: 'found',
    title:
      "sparse teacher with a tail bucket: the student's mass outside the entries is taken as (Zs - sum over the " +
      'entries) / Zs, so where it is within the rounding of Zs (about eps (Q1 + C) of the row) it may come out ' +
      'as 0 (+Infinity), as noise or as the true value (the resolution docs/sparse-teachers.md states); the ' +
      'fuzzer excuses only rows below 64 times that resolution',
    quantities: /^(loss|soft|perSample|perSampleSoft|grad)$/,
    row: (c, r) => c.spec.kind === 'kd' && tailBelowResolution(c.spec, c.data as KdData, r),
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
