/**
 * Matrix inputs and their validation.
 * @module
 */
import { InputError, ShapeError } from './errors';

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

/** Returns the dtype of a float typed array, or undefined for anything else. */
export function dtypeOf(x: unknown): DType | undefined {
  if (x instanceof Float32Array) return 'float32';
  if (x instanceof Float64Array) return 'float64';
  return undefined;
}

function isDetached(a: ArrayBufferView): boolean {
  // A view on a detached buffer has byteLength 0. Checked first: reading `buffer` is a call into the
  // runtime (it may even allocate the buffer of a small array), too slow for every call's inputs.
  if (a.byteLength !== 0) return false;
  const buf = a.buffer as ArrayBuffer & { detached?: boolean };
  if (typeof buf.detached === 'boolean') return buf.detached;
  if (buf.byteLength !== 0) return false;
  try {
    new Uint8Array(buf); // throws for a detached buffer (runtimes without ArrayBuffer#detached)
    return false;
  } catch {
    return true;
  }
}

/** Throws an InputError if the typed array's buffer has been detached (transferred). */
export function checkAttached(a: ArrayBufferView, name: string, field = ''): void {
  if (isDetached(a)) throw new InputError(`${name}${field}: its ArrayBuffer is detached`);
}

/** Validates `${name}.${field}` as a dimension (the name is only built for a message). */
function checkDim(v: unknown, name: string, field: string): number {
  if (typeof v !== 'number') throw new InputError(`${name}.${field}: expected a number, got ${typeof v}`);
  if (!Number.isInteger(v) || v < 1) throw new ShapeError(`${name}.${field}: expected a positive integer, got ${v}`);
  return v;
}

/** Shape as printed in messages. */
export function shapeStr(rows: number, cols: number): string {
  return `[${rows}, ${cols}]`;
}

function isTypedMatrix(x: unknown): x is Matrix {
  return typeof x === 'object' && x !== null && !Array.isArray(x) && 'data' in x;
}

/** True for nested arrays (a `number[][]` matrix). */
export function isNestedArray(x: unknown): x is readonly (readonly number[])[] {
  return Array.isArray(x) && (x.length === 0 || Array.isArray(x[0]));
}

/** The dtype a matrix argument carries, if it is a typed matrix. */
export function declaredDType(x: unknown): DType | undefined {
  return isTypedMatrix(x) ? dtypeOf(x.data) : undefined;
}

/**
 * Validates a matrix argument and returns it as a typed {@link Matrix}. Typed matrices are returned
 * as they are (zero-copy); nested arrays are converted to `dtype`.
 */
export function toMatrix(x: unknown, name: string, dtype: DType): Matrix {
  if (isNestedArray(x)) {
    const rows = x.length;
    if (rows === 0) throw new ShapeError(`${name}: expected at least 1 row, got 0`);
    const cols = x[0].length;
    if (cols === 0) throw new ShapeError(`${name}: expected at least 1 column, got 0`);
    const data = dtype === 'float32' ? new Float32Array(rows * cols) : new Float64Array(rows * cols);
    for (let r = 0; r < rows; r++) {
      const row = x[r];
      if (!Array.isArray(row)) throw new InputError(`${name}[${r}]: expected an array of numbers`);
      if (row.length !== cols) {
        throw new InputError(`${name}: ragged rows: row 0 has ${cols} columns, row ${r} has ${row.length}`);
      }
      for (let c = 0; c < cols; c++) {
        const v = row[c];
        if (typeof v !== 'number') throw new InputError(`${name}[${r}][${c}]: expected a number, got ${typeof v}`);
        data[r * cols + c] = v;
      }
    }
    return { data, rows, cols };
  }
  if (!isTypedMatrix(x)) {
    throw new InputError(`${name}: expected { data: Float32Array | Float64Array, rows, cols } or number[][]`);
  }
  const dt = dtypeOf(x.data);
  if (dt === undefined) throw new InputError(`${name}.data: expected a Float32Array or Float64Array`);
  if (dt !== dtype) throw new InputError(`${name}: expected ${dtype} like the other inputs of this call, got ${dt}`);
  checkAttached(x.data, name, '.data');
  const rows = checkDim(x.rows, name, 'rows');
  const cols = checkDim(x.cols, name, 'cols');
  if (x.data.length !== rows * cols) {
    throw new ShapeError(
      `${name}: data length ${x.data.length} does not match shape ${shapeStr(rows, cols)} (expected ${rows * cols})`,
    );
  }
  return { data: x.data, rows, cols };
}

/** Throws a ShapeError unless `m` has shape [rows, cols]. */
export function expectShape(m: Matrix, rows: number, cols: number, name: string): void {
  if (m.rows !== rows || m.cols !== cols) {
    throw new ShapeError(`${name}: expected shape ${shapeStr(rows, cols)}, got ${shapeStr(m.rows, m.cols)}`);
  }
}

/**
 * The dtype of a call: that of its first typed-matrix input, or float64 when every input is a nested
 * array. {@link toMatrix} then rejects any typed input of another dtype.
 */
export function callDType(...values: unknown[]): DType {
  for (const v of values) {
    const dt = declaredDType(v);
    if (dt !== undefined) return dt;
  }
  return 'float64';
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
  if (a.length !== length) throw new ShapeError(`${name}: expected length ${length}, got ${a.length}`);
  return a;
}
