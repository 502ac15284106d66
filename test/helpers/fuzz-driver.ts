// Runs one fuzz case end to end: the native backend (whatever kernel variant is loaded) as the case
// says, again synchronously on one thread (bitwise the same), with another reduction (consistent),
// the js backend, and for float32 inputs a float64 reference (the js backend on the inputs widened to
// float64, which it computes exactly as its float32 results but for the final rounding of gradients).
// Native and js are compared with the reference within README's tolerance, argmax exactly.
import { getBackend, setBackend } from 'kdloss';
import { compareArgmax, compareBitwise, compareReductions, compareValues, type Discrepancy, TINY, TOLERANCE } from './fuzz-check';
import { floorsOf } from './fuzz-floors';
import type { CallSpec, FuzzCase } from './fuzz-gen';
import { KNOWN_ISSUES, type KnownIssue, knownIssuesOf } from './fuzz-known';
import { CaseRunner, type Outcome } from './fuzz-run';

/** A case's discrepancies, split into new ones and those explained by a known issue. */
export interface CaseReport {
  failures: Discrepancy[];
  known: { issues: KnownIssue[]; discrepancy: Discrepancy }[];
}

function integrity(o: Outcome, label: string): Discrepancy[] {
  return o.problems.map((message) => ({ check: 'integrity' as const, quantity: 'buffers', pair: label, message }));
}

/** The width of the rows of an array result (to name the row of a failing element). */
function colsOf(c: FuzzCase): (name: string) => number {
  return (name) => {
    if (name.startsWith('perSample')) return 1;
    if (c.spec.kind === 'feature') return c.spec.cols[Number(name.split('.')[1] ?? 0)];
    return c.spec.cols;
  };
}

/** Runs every check of a case; `options.known === false` reports known issues as failures. */
export async function checkCase(c: FuzzCase, options: { known?: boolean } = {}): Promise<CaseReport> {
  const previous = getBackend();
  const found: Discrepancy[] = [];
  try {
    const spec = c.spec;
    const runner = new CaseRunner(c, false);
    const main = { backend: 'native' as const, reduction: spec.reduction, call: spec.call };
    const native = await runner.run(main);
    found.push(...integrity(native, 'native'));

    // Bitwise the same on one synchronous thread (or, when that was the main call, async on two).
    const plain = !spec.call.async && (spec.call.threads ?? 1) === 1;
    const other: CallSpec = plain ? { async: true, threads: 2 } : { async: false, threads: 1 };
    const again = await runner.run({ ...main, call: other });
    found.push(...integrity(again, 'native again'));
    found.push(...compareBitwise(native, again, `native ${JSON.stringify(spec.call)} vs ${JSON.stringify(other)}`));

    const alt = await runner.run({ ...main, reduction: spec.altReduction, call: { async: false } });
    found.push(...integrity(alt, 'native alt'));
    found.push(...compareReductions(c, native, spec.reduction, alt, spec.altReduction, `native ${spec.reduction} vs ${spec.altReduction}`));

    const js = await runner.run({ ...main, backend: 'js' });
    found.push(...integrity(js, 'js'));
    const ref = spec.dtype === 'float32' ? await new CaseRunner(c, true).run({ ...main, backend: 'js', call: { async: false } }) : js;
    if (ref !== js) found.push(...integrity(ref, 'reference'));

    const tol = TOLERANCE[spec.dtype];
    const tiny = TINY[spec.dtype];
    const floors = floorsOf(c, spec.reduction, ref, { tol, tiny });
    found.push(...compareValues(native, ref, floors, tol, tiny, spec.dtype === 'float32' ? 'native vs float64 reference' : 'native vs js', colsOf(c)));
    if (ref !== js) found.push(...compareValues(js, ref, floors, tol, tiny, 'js float32 vs float64 reference', colsOf(c)));
    found.push(...compareArgmax(native, js, 'native vs js'));
    if (ref !== js) found.push(...compareArgmax(js, ref, 'js float32 vs float64 reference'));
  } catch (err) {
    found.push({ check: 'integrity', quantity: 'call', pair: 'any', message: `threw ${(err as Error)?.stack ?? String(err)}` });
  } finally {
    setBackend(previous);
  }
  const report: CaseReport = { failures: [], known: [] };
  for (const d of found) {
    const issues = options.known === false ? null : knownIssuesOf(c, d);
    if (issues === null) report.failures.push(d);
    else report.known.push({ issues, discrepancy: d });
  }
  return report;
}

export { KNOWN_ISSUES };
