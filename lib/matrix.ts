/**
 * Matrix inputs and their validation. Every argument is read exactly once (a `data` getter is called
 * once, a nested array's rows and elements once each): what is validated is what is computed on.
 * @module
 */
import { InputError, ShapeError } from './errors';
import { byteRangeOf, bufferOf, isDetached, isFloat32Array, isFloat64Array, lengthOf, type View } from './views';

/** A float buffer kdloss computes on. */
export type FloatArray = Float32Array | Float64Array;

/** Element type of a computation: float32 inputs compute in float32 lanes with float64 sums. */
export type DType = 'float32' | 'float64';

/**
 * A row-major matrix over a typed array (zero-copy: any byteOffset, never copied).
 * `data.length` must equal `rows * cols`.
 */
export interface Matrix<A extends FloatArray = FloatArray> {
  /** Row-major elements. */
  data: A;
  /** Number of rows (>= 1). */
  rows: number;
  /** Number of columns (>= 1). */
  cols: number;
}

/** A matrix argument: a {@link Matrix} or nested number arrays (converted to the call's dtype). */
export type MatrixInput = Matrix | readonly (readonly number[])[];

/** Class indices, one per row. */
export type ClassIndices = Int32Array | Uint32Array | readonly number[];

/** Hard targets: a matrix of the student's shape (one-hot or probabilities) or class indices. */
export type Targets = MatrixInput | ClassIndices;

/** A matrix argument as read once, before validation. */
export type MatrixRead =
  | { readonly kind: 'typed'; readonly data: unknown; readonly rows: unknown; readonly cols: unknown }
  | { readonly kind: 'nested'; readonly items: readonly unknown[] }
  | { readonly kind: 'other'; readonly value: unknown };

/** Returns the dtype of a genuine float typed array, or undefined for anything else. */
export function dtypeOf(x: unknown): DType | undefined {
  if (isFloat32Array(x)) return 'float32';
  if (isFloat64Array(x)) return 'float64';
  return undefined;
}

/** The items of an array, each read once (a Proxy's traps run once per index). */
export function snapshot(x: readonly unknown[]): unknown[] {
  return Array.prototype.slice.call(x) as unknown[];
}

/** Reads a matrix argument once: its `data`, `rows` and `cols`, or its rows. */
export function readMatrix(x: unknown): MatrixRead {
  if (Array.isArray(x)) return { kind: 'nested', items: snapshot(x) };
  if (typeof x === 'object' && x !== null) {
    const m = x as { data?: unknown; rows?: unknown; cols?: unknown };
    return { kind: 'typed', data: m.data, rows: m.rows, cols: m.cols };
  }
  return { kind: 'other', value: x };
}

/** The dtype a read matrix carries, if it is a typed matrix. */
export function declaredDType(r: MatrixRead | null): DType | undefined {
  return r !== null && r.kind === 'typed' ? dtypeOf(r.data) : undefined;
}

/**
 * The dtype of a call: that of its first typed-matrix input, or float64 when every input is a nested
 * array. {@link toMatrix} then rejects any typed input of another dtype.
 */
export function callDType(...reads: (MatrixRead | null)[]): DType {
  for (const r of reads) {
    const dt = declaredDType(r);
    if (dt !== undefined) return dt;
  }
  return 'float64';
}

/** Throws an InputError if the typed array's buffer has been detached (transferred). */
export function checkAttached(a: View, name: string): void {
  if (isDetached(a)) throw new InputError(`${name}: its ArrayBuffer is detached`);
}

/** Validates `${name}.${field}` as a dimension. */
function checkDim(v: unknown, name: string, field: string): number {
  if (typeof v !== 'number') throw new InputError(`${name}.${field}: expected a number, got ${typeof v}`);
  if (!Number.isInteger(v) || v < 1) throw new ShapeError(`${name}.${field}: expected a positive integer, got ${v}`);
  return v;
}

/** Shape as printed in messages. */
export function shapeStr(rows: number, cols: number): string {
  return `[${rows}, ${cols}]`;
}

function fromNested(items: readonly unknown[], name: string, dtype: DType): Matrix {
  const rows = items.length;
  if (rows === 0) throw new ShapeError(`${name}: expected at least 1 row, got 0`);
  let data: FloatArray | null = null;
  let cols = 0;
  for (let r = 0; r < rows; r++) {
    const item = items[r];
    if (!Array.isArray(item)) throw new InputError(`${name}[${r}]: expected an array of numbers`);
    const row = snapshot(item);
    if (r === 0) {
      cols = row.length;
      if (cols === 0) throw new ShapeError(`${name}: expected at least 1 column, got 0`);
      data = dtype === 'float32' ? new Float32Array(rows * cols) : new Float64Array(rows * cols);
    } else if (row.length !== cols) {
      throw new InputError(`${name}: ragged rows: row 0 has ${cols} columns, row ${r} has ${row.length}`);
    }
    for (let c = 0; c < cols; c++) {
      const v = row[c];
      if (typeof v !== 'number') throw new InputError(`${name}[${r}][${c}]: expected a number, got ${typeof v}`);
      data![r * cols + c] = v;
    }
  }
  return { data: data!, rows, cols };
}

/**
 * Validates a read matrix argument and returns it as a typed {@link Matrix}. Typed matrices are
 * returned as they are (zero-copy); nested arrays are converted to `dtype`.
 */
export function toMatrix(read: MatrixRead, name: string, dtype: DType): Matrix {
  if (read.kind === 'nested') {
    if (read.items.length > 0 && !Array.isArray(read.items[0])) {
      throw new InputError(`${name}: expected { data: Float32Array | Float64Array, rows, cols } or number[][]`);
    }
    return fromNested(read.items, name, dtype);
  }
  if (read.kind !== 'typed') {
    throw new InputError(`${name}: expected { data: Float32Array | Float64Array, rows, cols } or number[][]`);
  }
  const data = read.data;
  const dt = dtypeOf(data);
  if (dt === undefined) throw new InputError(`${name}.data: expected a Float32Array or Float64Array`);
  const a = data as FloatArray;
  if (dt !== dtype) throw new InputError(`${name}: expected ${dtype} like the other inputs of this call, got ${dt}`);
  checkAttached(a, `${name}.data`);
  const rows = checkDim(read.rows, name, 'rows');
  const cols = checkDim(read.cols, name, 'cols');
  const length = lengthOf(a);
  if (length !== rows * cols) {
    throw new ShapeError(`${name}: data length ${length} does not match shape ${shapeStr(rows, cols)} (expected ${rows * cols})`);
  }
  return { data: a, rows, cols };
}

/** Throws a ShapeError unless `m` has shape [rows, cols]. */
export function expectShape(m: Matrix, rows: number, cols: number, name: string): void {
  if (m.rows !== rows || m.cols !== cols) {
    throw new ShapeError(`${name}: expected shape ${shapeStr(rows, cols)}, got ${shapeStr(m.rows, m.cols)}`);
  }
}

/** Allocates a zeroed buffer of a dtype. */
export function allocFloat(dtype: DType, length: number): FloatArray {
  return dtype === 'float32' ? new Float32Array(length) : new Float64Array(length);
}

/** Validates a caller-supplied output buffer: the dtype and length of the input it is the gradient of. */
export function checkOut(out: unknown, dtype: DType, length: number, name: string): FloatArray {
  const dt = dtypeOf(out);
  if (dt === undefined) throw new InputError(`${name}: expected a Float32Array or Float64Array`);
  if (dt !== dtype) throw new InputError(`${name}: expected ${dtype} like the inputs, got ${dt}`);
  const a = out as FloatArray;
  checkAttached(a, name);
  const n = lengthOf(a);
  if (n !== length) throw new ShapeError(`${name}: expected length ${length}, got ${n}`);
  return a;
}

/**
 * Throws an InputError if the caller's output buffer `out` shares memory with one of `inputs` (arrays
 * over the same ArrayBuffer whose byte ranges meet). `inPlace`, if given, may be `out`'s memory
 * exactly: the kernels write each element after their last read of it. The native binding checks the
 * same on raw addresses, which also catches two SharedArrayBuffer objects over one memory.
 */
export function checkNoOverlap(out: View, outName: string, inputs: readonly (readonly [View | null, string])[], inPlace: View | null): void {
  const outBuffer = bufferOf(out);
  const [ob, oe] = byteRangeOf(out);
  for (const [input, name] of inputs) {
    if (input === null || bufferOf(input) !== outBuffer) continue;
    const [ib, ie] = byteRangeOf(input);
    if (ib >= oe || ob >= ie) continue;
    if (input === inPlace && ib === ob && ie === oe) continue;
    throw new InputError(
      `${outName}: overlaps the memory of ${name}: an output may not share memory with another argument` +
        (inPlace !== null ? ' (it may only be the student\'s own buffer exactly, written in place)' : ''),
    );
  }
}
