// Reproductions of failing fuzz cases: the replay command (seed, case index, kernel variant), the
// case's spec, its discrepancies, and for small cases a self-contained script that calls kdloss's
// public API on the exact input bits (base64) on both backends.
import type { CaseReport } from './fuzz-driver';
import type { AttentionData, FeatureData, FuzzCase, KdData } from './fuzz-gen';


function b64(values: ArrayLike<number>, dtype: string): string {
  const a =
    dtype === 'float32'
      ? Float32Array.from(values)
      : dtype === 'int32'
        ? Int32Array.from(values)
        : dtype === 'uint32'
          ? Uint32Array.from(values)
          : dtype === 'uint8'
            ? Uint8Array.from(values)
            : Float64Array.from(values);
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
}

const CTOR: Record<string, string> = {
  float32: 'Float32Array',
  float64: 'Float64Array',
  int32: 'Int32Array',
  uint32: 'Uint32Array',
  uint8: 'Uint8Array',
};

function arr(values: ArrayLike<number>, dtype: string): string {
  return `f(${JSON.stringify(b64(values, dtype))}, ${CTOR[dtype]})`;
}

function matrix(values: ArrayLike<number>, dtype: string, rows: number, cols: number): string {
  return `{ data: ${arr(values, dtype)}, rows: ${rows}, cols: ${cols} }`;
}

function elementsOf(c: FuzzCase): number {
  if (c.spec.kind === 'feature') return c.spec.rows * c.spec.cols.reduce((a, b) => a + b, 0);
  return c.spec.rows * c.spec.cols;
}

/** A script reproducing the case's main call on both backends, or null for cases over `maxElements`. */
export function snippet(c: FuzzCase, maxElements: number): string | null {
  if (elementsOf(c) > maxElements) return null;
  const lines = [
    "const kd = require('kdloss');",
    "const f = (s, T) => { const b = Buffer.from(s, 'base64'); return new T(b.buffer.slice(b.byteOffset, b.byteOffset + b.length)); };",
  ];
  const spec = c.spec;
  const options: Record<string, unknown> = { reduction: spec.reduction };
  if (spec.call.threads !== undefined) options.threads = spec.call.threads;
  if (spec.grad !== 'none') options.grad = true;
  let callExpr: string;
  if (spec.kind === 'kd') {
    const d = c.data as KdData;
    const { rows, cols, dtype } = spec;
    lines.push(`const student = ${matrix(d.student, dtype, rows, cols)};`);
    if (spec.sparse !== null && d.sparse !== null) {
      const sp = spec.sparse;
      const tail = sp.tail !== undefined ? `, tail: ${sp.tail}` : '';
      lines.push(
        `const teacher = { indices: ${arr(d.sparse.indices, 'int32')}, values: ${arr(d.sparse.values, dtype)}, ` +
          `rows: ${rows}, k: ${sp.k}, kind: '${sp.kind}'${tail} };`,
      );
    } else {
      lines.push(`const teacher = ${matrix(d.teacher, dtype, rows, cols)};`);
    }
    if (d.classes !== null) {
      const form = spec.targetForm === 'array' ? 'int32' : spec.targetForm;
      lines.push(`const targets = ${spec.targetForm === 'array' ? `Array.from(${arr(d.classes, form)})` : arr(d.classes, form)};`);
    } else {
      lines.push(`const targets = ${matrix(d.targetMatrix!, dtype, rows, cols)};`);
    }
    if (d.mask !== null) options.mask = '@MASK@';
    if (spec.argmax) options.argmax = true;
    const hard = spec.hard.type === 'mse' ? 'new kd.MseLoss()' : `new kd.CrossEntropyLoss(${JSON.stringify(spec.hard.options)})`;
    if (spec.normalizer !== undefined) options.normalizer = spec.normalizer;
    lines.push(`const loss = new kd.DistillationLoss(${spec.temperature}, ${spec.alpha}, ${hard}, ${JSON.stringify(spec.loss)});`);
    callExpr = 'loss.forward(student, teacher, targets, options)';
    if (d.mask !== null) lines.push(`const mask = ${arr(d.mask, 'uint8')};`);
  } else if (spec.kind === 'feature') {
    const d = c.data as FeatureData;
    const m = (v: Float64Array[]) => `[\n  ${v.map((x, l) => matrix(x, spec.dtype, spec.rows, spec.cols[l])).join(',\n  ')},\n]`;
    lines.push(`const students = ${m(d.students)};`);
    lines.push(`const teachers = ${m(d.teachers)};`);
    lines.push(`const loss = new kd.FeatureDistillationLoss(${JSON.stringify(spec.weights)}, ${spec.p});`);
    callExpr = 'loss.forward(students, teachers, options)';
  } else {
    const d = c.data as AttentionData;
    lines.push(`const student = ${matrix(d.student, spec.dtype, spec.rows, spec.cols)};`);
    lines.push(`const teacher = ${matrix(d.teacher, spec.dtype, spec.rows, spec.cols)};`);
    lines.push(`const loss = new kd.AttentionTransferLoss(${spec.beta});`);
    callExpr = 'loss.forward(student, teacher, options)';
  }
  lines.push(`const options = ${JSON.stringify(options).replace('"@MASK@"', 'mask')};`);
  lines.push(`for (const backend of ['native', 'js']) {`);
  lines.push(`  kd.setBackend(backend);`);
  lines.push(`  console.log(backend, kd.isa(), ${callExpr});`);
  lines.push(`}`);
  return lines.join('\n');
}

/** The replay command of a case. */
export function replayCommand(c: FuzzCase, isa: string | null): string {
  return `node tools/fuzz.js --seed ${c.seed} --case ${c.index}${isa ? ` --isa ${isa}` : ''}`;
}

/**
 * A failing case as text: where, what, and how to reproduce it (with a self-contained script when its
 * inputs have at most `snippetElements` elements).
 */
export function formatFailure(c: FuzzCase, report: CaseReport, isa: string | null, snippetElements = 256): string {
  const lines = [
    `fuzz case ${c.index} of seed ${c.seed} failed on kernel variant ${isa ?? '(none)'}`,
    `  replay: ${replayCommand(c, isa)}   (KDLOSS_FUZZ_SEED=${c.seed} for the mocha test)`,
    `  spec: ${JSON.stringify(c.spec)}`,
    ...report.failures.map((d) => `  [${d.check}] ${d.pair}: ${d.message}`),
  ];
  const s = snippet(c, snippetElements);
  if (s !== null) lines.push('  self-contained reproduction (the main call on both backends):', ...s.split('\n').map((l) => `    ${l}`));
  return lines.join('\n');
}
