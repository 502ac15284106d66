// Runs a fuzz case through the public API on one backend and collects every result as plain numbers
// (an Outcome), checking on the way what needs no reference: inputs and the bytes around every view
// are left untouched, a caller's gradOut is the buffer returned and is fully written, rows left out
// read 0 (-1 for argmax), results have the documented types and lengths.
import {
  AttentionTransferLoss,
  CrossEntropyLoss,
  DistillationLoss,
  type DistillationForwardOptions,
  FeatureDistillationLoss,
  type FloatArray,
  type Loss,
  MseLoss,
  setBackend,
} from 'kdloss';
import type {
  AttentionData,
  AttentionSpec,
  CallSpec,
  FeatureData,
  FeatureSpec,
  FuzzCase,
  GradMode,
  KdData,
  KdSpec,
  Placement,
  Reduction,
} from './fuzz-gen';

/** Every result of one call, as numbers. */
export interface Outcome {
  scalars: Record<string, number>;
  arrays: Record<string, ArrayLike<number>>;
  ints: Record<string, Int32Array>;
  /** What went wrong that needs no reference (modified inputs, unwritten gradOut, ...). */
  problems: string[];
}

/** How one run calls the API. */
export interface RunMode {
  backend: 'native' | 'js';
  reduction: Reduction;
  call: CallSpec;
}

/** A case's inputs, placed once, and how to call the API on them (a fresh gradOut per call). */
interface Prepared {
  inputs: Placed[];
  invoke(mode: RunMode, out: Outcome): Promise<void>;
}

type Ctor = Float32ArrayConstructor | Float64ArrayConstructor | Int32ArrayConstructor | Uint32ArrayConstructor | Uint8ArrayConstructor;
type View = Float32Array | Float64Array | Int32Array | Uint32Array | Uint8Array;

/** What the padding around a view is filled with (any change is a write out of bounds). */
const GUARD = 0x5a;
/** What a caller's gradOut holds before the call (every element must be overwritten). */
const GRAD_FILL = -7777;

/** A typed array placed as the spec says, with what is needed to check its buffer afterwards. */
class Placed<V extends View = View> {
  readonly view: V;
  private readonly bytes: Uint8Array;
  private readonly before: Uint8Array;

  constructor(ctor: Ctor, values: ArrayLike<number>, p: Placement, fill?: number) {
    const n = values.length;
    const before = p === 'plain' ? 0 : p.before;
    const total = p === 'plain' ? n : before + n + p.after;
    const bytes = total * ctor.BYTES_PER_ELEMENT;
    const buf = p !== 'plain' && p.buffer === 'shared' ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes);
    new Uint8Array(buf).fill(GUARD);
    this.view = new ctor(buf as ArrayBuffer, before * ctor.BYTES_PER_ELEMENT, n) as V;
    if (fill !== undefined) this.view.fill(fill);
    else if (ArrayBuffer.isView(values)) this.view.set(values as unknown as ArrayLike<number>);
    else for (let i = 0; i < n; i++) this.view[i] = values[i];
    this.bytes = new Uint8Array(buf);
    this.before = this.bytes.slice();
  }

  /** Whether the whole buffer (view and padding) is unchanged. */
  unchanged(): boolean {
    return Buffer.compare(this.bytes, this.before) === 0;
  }

  /** Whether the padding around the view is unchanged. */
  guardsUnchanged(): boolean {
    const s = this.view.byteOffset;
    const e = s + this.view.byteLength;
    for (let i = 0; i < this.bytes.length; i++) if ((i < s || i >= e) && this.bytes[i] !== GUARD) return false;
    return true;
  }
}

function floatCtor(dtype: string): Float32ArrayConstructor | Float64ArrayConstructor {
  return dtype === 'float32' ? Float32Array : Float64Array;
}

function nested(values: ArrayLike<number>, rows: number, cols: number): number[][] {
  return Array.from({ length: rows }, (_, r) => Array.from({ length: cols }, (_, j) => values[r * cols + j]));
}

/** The built-in hard loss of a spec. */
export function hardLossOf(spec: KdSpec): CrossEntropyLoss | MseLoss {
  return spec.hard.type === 'mse' ? new MseLoss() : new CrossEntropyLoss({ ...spec.hard.options });
}

/** Whether row r of a distillation case is kept (not masked out, not an ignored class). */
export function kdRowKept(spec: KdSpec, data: KdData, r: number, useMask = true): boolean {
  if (useMask && data.mask !== null && data.mask[r] === 0) return false;
  if (spec.hard.type === 'ce' && data.classes !== null && data.classes[r] === (spec.hard.options.ignoreIndex ?? -100)) return false;
  return true;
}

function checkGrad(
  out: Outcome,
  name: string,
  grad: FloatArray | undefined,
  mode: GradMode,
  placed: Placed | null,
  F: Ctor,
  length: number,
): void {
  if (mode === 'none') {
    if (grad !== undefined) out.problems.push(`${name}: returned without grad or gradOut`);
    return;
  }
  if (!(grad instanceof F) || grad.length !== length) {
    out.problems.push(`${name}: expected a ${F.name} of length ${length}, got ${Object.prototype.toString.call(grad)}`);
    return;
  }
  if (placed !== null) {
    if (grad !== placed.view) out.problems.push(`${name}: is not the gradOut buffer passed`);
    if (!placed.guardsUnchanged()) out.problems.push(`${name}: bytes around gradOut were written`);
    const i = grad.indexOf(GRAD_FILL);
    if (i >= 0) out.problems.push(`${name}: gradOut[${i}] was not written`);
  }
  out.arrays[name] = grad;
}

async function call<R>(c: CallSpec, sync: () => R, later: () => Promise<R>): Promise<R> {
  return c.async ? later() : sync();
}

/** Places a case's typed arrays: as the spec says, or (widen) as plain float64 copies. */
class Placer {
  readonly inputs: Placed[] = [];
  readonly F: Float32ArrayConstructor | Float64ArrayConstructor;

  constructor(
    dtype: string,
    readonly widen: boolean,
  ) {
    this.F = floatCtor(widen ? 'float64' : dtype);
  }

  at(p: Placement): Placement {
    return this.widen ? 'plain' : p;
  }

  input<V extends View>(ctor: Ctor, v: ArrayLike<number>, p: Placement): V {
    const placed = new Placed<V>(ctor, v, this.at(p));
    this.inputs.push(placed);
    return placed.view;
  }

  /** A gradOut buffer (filled with GRAD_FILL). */
  out(length: number, p: Placement): Placed {
    return new Placed(this.F, { length }, this.at(p), GRAD_FILL);
  }
}

function prepareKd(spec: KdSpec, data: KdData, widen: boolean): Prepared {
  const { rows, cols } = spec;
  const pl = new Placer(spec.dtype, widen);
  const F = pl.F;
  const student = { data: pl.input<FloatArray>(F, data.student, spec.placement.student), rows, cols };
  const sp = spec.sparse;
  const teacher =
    sp !== null
      ? {
          indices: pl.input<Int32Array>(Int32Array, data.sparse!.indices, spec.placement.teacher),
          values: pl.input<FloatArray>(F, data.sparse!.values, spec.placement.teacher),
          rows,
          k: sp.k,
          kind: sp.kind,
          ...(sp.tail !== undefined ? { tail: sp.tail } : {}),
        }
      : spec.nestedTeacher && !widen
        ? nested(data.teacher, rows, cols)
        : { data: pl.input<FloatArray>(F, data.teacher, spec.placement.teacher), rows, cols };
  let targets: unknown;
  if (data.classes !== null) {
    if (spec.targetForm === 'int32') targets = pl.input(Int32Array, data.classes, spec.placement.targets);
    else if (spec.targetForm === 'uint32') targets = pl.input(Uint32Array, data.classes, spec.placement.targets);
    else targets = Array.from(data.classes);
  } else if (spec.targetForm === 'nested' && !widen) {
    targets = nested(data.targetMatrix!, rows, cols);
  } else {
    targets = { data: pl.input(F, data.targetMatrix!, spec.placement.targets), rows, cols };
  }
  const mask = data.mask === null ? undefined : pl.input<Uint8Array>(Uint8Array, data.mask, spec.placement.mask);
  const args = [student, teacher, targets] as Parameters<DistillationLoss['forward']>;

  const invoke = async (mode: RunMode, out: Outcome): Promise<void> => {
    let gradPlaced: Placed | null = null;
    const options: DistillationForwardOptions & { threads?: number } = { reduction: mode.reduction, argmax: spec.argmax, mask };
    if (mode.call.threads !== undefined) options.threads = mode.call.threads;
    // The normalizer goes with reduction 'mean' only (the other reduction's call goes without).
    if (spec.normalizer !== undefined && mode.reduction === 'mean') options.normalizer = spec.normalizer;
    if (spec.grad === 'grad') options.grad = true;
    if (spec.grad === 'gradOut') {
      gradPlaced = pl.out(rows * cols, spec.placement.gradOut);
      options.gradOut = gradPlaced.view as FloatArray;
    }
    const hard = hardLossOf(spec);
    const loss = new DistillationLoss(spec.temperature, spec.alpha, hard, { ...spec.loss });
    const res = await call(
      mode.call,
      () => loss.forward(args[0], args[1], args[2], options),
      () => loss.forwardAsync(args[0], args[1], args[2], options),
    );
    out.scalars.loss = res.loss;
    out.scalars.soft = res.soft;
    out.scalars.hard = res.hard;
    const perRow = { perSample: res.perSample, perSampleSoft: res.perSampleSoft, perSampleHard: res.perSampleHard };
    for (const [k, v] of Object.entries(perRow)) {
      if ((v !== undefined) !== (mode.reduction === 'none')) out.problems.push(`${k}: present with reduction ${mode.reduction}`);
      if (v === undefined) continue;
      if (!(v instanceof Float64Array) || v.length !== rows) out.problems.push(`${k}: expected a Float64Array of ${rows}`);
      out.arrays[k] = v;
    }
    checkGrad(out, 'grad', res.grad, spec.grad, gradPlaced, F, rows * cols);
    if (spec.argmax) {
      for (const k of ['studentArgmax', 'teacherArgmax'] as const) {
        const a = res[k];
        if (!(a instanceof Int32Array) || a.length !== rows) out.problems.push(`${k}: expected an Int32Array of ${rows}`);
        else out.ints[k] = a;
      }
    }
    checkLeftOut(spec, data, out);
    if (spec.standalone) {
      const sTargets = targets as Parameters<Loss['compute']>[1];
      out.scalars['standalone.loss'] = hard.compute(student, sTargets);
      const g = hard.gradient(student, sTargets);
      checkGrad(out, 'standalone.grad', g.data, 'grad', null, F, rows * cols);
    }
  };
  return { inputs: pl.inputs, invoke };
}

/** Rows left out read 0 everywhere (-1 for argmax). */
function checkLeftOut(spec: KdSpec, data: KdData, out: Outcome): void {
  const { rows, cols } = spec;
  for (let r = 0; r < rows; r++) {
    if (kdRowKept(spec, data, r)) continue;
    for (const k of ['perSample', 'perSampleSoft', 'perSampleHard']) {
      const a = out.arrays[k];
      if (a !== undefined && a[r] !== 0) out.problems.push(`${k}[${r}]: row left out reads ${a[r]}, expected 0`);
    }
    const g = out.arrays.grad;
    if (g !== undefined) {
      for (let j = r * cols; j < (r + 1) * cols; j++) {
        if (g[j] !== 0) {
          out.problems.push(`grad[${j}]: row ${r} left out reads ${g[j]}, expected 0`);
          break;
        }
      }
    }
    for (const k of ['studentArgmax', 'teacherArgmax']) {
      const a = out.ints[k];
      if (a !== undefined && a[r] !== -1) out.problems.push(`${k}[${r}]: row left out reads ${a[r]}, expected -1`);
    }
  }
}

function prepareFeature(spec: FeatureSpec, data: FeatureData, widen: boolean): Prepared {
  const { rows, cols } = spec;
  const L = cols.length;
  const pl = new Placer(spec.dtype, widen);
  const F = pl.F;
  const layer = (v: Float64Array, p: Placement, l: number) => ({ data: pl.input<FloatArray>(F, v, p), rows, cols: cols[l] });
  const students = data.students.map((v, l) => layer(v, spec.placement.students[l], l));
  const teachers = data.teachers.map((v, l) => layer(v, spec.placement.teachers[l], l));
  const invoke = async (mode: RunMode, out: Outcome): Promise<void> => {
    const grads = cols.map((c, l) => pl.out(rows * c, spec.placement.gradOut[l]));
    const options: { reduction: Reduction; threads?: number; grad?: boolean; gradOut?: FloatArray[] } = { reduction: mode.reduction };
    if (mode.call.threads !== undefined) options.threads = mode.call.threads;
    if (spec.grad === 'grad') options.grad = true;
    if (spec.grad === 'gradOut') options.gradOut = grads.map((g) => g.view as FloatArray);
    const loss = new FeatureDistillationLoss(spec.weights, spec.p);
    const res = await call(
      mode.call,
      () => loss.forward(students, teachers, options),
      () => loss.forwardAsync(students, teachers, options),
    );
    out.scalars.loss = res.loss;
    if (!(res.perLayer instanceof Float64Array) || res.perLayer.length !== L) out.problems.push(`perLayer: expected ${L} values`);
    for (let l = 0; l < L; l++) out.scalars[`perLayer.${l}`] = res.perLayer[l];
    if ((res.perSample !== undefined) !== (mode.reduction === 'none')) out.problems.push(`perSample: present with ${mode.reduction}`);
    if (res.perSample !== undefined) out.arrays.perSample = res.perSample;
    if (spec.grad === 'none') {
      if (res.grads !== undefined) out.problems.push('grads: returned without grad or gradOut');
    } else if (!Array.isArray(res.grads) || res.grads.length !== L) {
      out.problems.push(`grads: expected ${L} buffers`);
    } else {
      for (let l = 0; l < L; l++) {
        checkGrad(out, `grads.${l}`, res.grads[l], spec.grad, spec.grad === 'gradOut' ? grads[l] : null, F, rows * cols[l]);
      }
    }
  };
  return { inputs: pl.inputs, invoke };
}

function prepareAttention(spec: AttentionSpec, data: AttentionData, widen: boolean): Prepared {
  const { rows, cols } = spec;
  const pl = new Placer(spec.dtype, widen);
  const F = pl.F;
  const sm = { data: pl.input<FloatArray>(F, data.student, spec.placement.student), rows, cols };
  const tm = { data: pl.input<FloatArray>(F, data.teacher, spec.placement.teacher), rows, cols };
  const invoke = async (mode: RunMode, out: Outcome): Promise<void> => {
    const g = pl.out(rows * cols, spec.placement.gradOut);
    const options: { reduction: Reduction; threads?: number; grad?: boolean; gradOut?: FloatArray } = { reduction: mode.reduction };
    if (mode.call.threads !== undefined) options.threads = mode.call.threads;
    if (spec.grad === 'grad') options.grad = true;
    if (spec.grad === 'gradOut') options.gradOut = g.view as FloatArray;
    const loss = new AttentionTransferLoss(spec.beta);
    const res = await call(
      mode.call,
      () => loss.forward(sm, tm, options),
      () => loss.forwardAsync(sm, tm, options),
    );
    out.scalars.loss = res.loss;
    if ((res.perSample !== undefined) !== (mode.reduction === 'none')) out.problems.push(`perSample: present with ${mode.reduction}`);
    if (res.perSample !== undefined) out.arrays.perSample = res.perSample;
    checkGrad(out, 'grad', res.grad, spec.grad, spec.grad === 'gradOut' ? g : null, F, rows * cols);
  };
  return { inputs: pl.inputs, invoke };
}

/**
 * A case's inputs placed once (as the spec says, or `widen`ed to plain float64 copies for the
 * reference), called any number of times: results may differ in the last bits between copies of the
 * same values at different addresses (README), never between calls on the same buffers.
 */
export class CaseRunner {
  private readonly prepared: Prepared;

  constructor(c: FuzzCase, widen: boolean) {
    if (c.spec.kind === 'kd') this.prepared = prepareKd(c.spec, c.data as KdData, widen);
    else if (c.spec.kind === 'feature') this.prepared = prepareFeature(c.spec, c.data as FeatureData, widen);
    else this.prepared = prepareAttention(c.spec, c.data as AttentionData, widen);
  }

  /** One call on a backend (selected for the call and left selected). */
  async run(mode: RunMode): Promise<Outcome> {
    setBackend(mode.backend);
    const out: Outcome = { scalars: {}, arrays: {}, ints: {}, problems: [] };
    await this.prepared.invoke(mode, out);
    this.prepared.inputs.forEach((p, i) => {
      if (!p.unchanged()) out.problems.push(`input buffer ${i} (${p.view.constructor.name}) was modified`);
    });
    return out;
  }
}
