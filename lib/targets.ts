/**
 * Hard-target validation: class indices or a matrix of the student's shape.
 * @module
 */
import { InputError, ShapeError } from './errors';
import { checkAttached, type DType, expectShape, type FloatArray, type MatrixRead, readMatrix, snapshot, toMatrix } from './matrix';
import { TargetKind } from './backend/types';
import { isInt32Array, isUint32Array, lengthOf } from './views';

/** Validated targets as the backends take them. */
export interface PreparedTargets {
  data: FloatArray | Int32Array | Uint32Array;
  kind: TargetKind;
}

/** A targets argument as read once: class indices, or a matrix read. */
export type TargetsRead =
  | { readonly kind: 'indices'; readonly indices: Int32Array | Uint32Array | readonly unknown[] }
  | { readonly kind: 'matrix'; readonly read: MatrixRead };

/** Reads a targets argument once (an array's items are read once each). */
export function readTargets(x: unknown): TargetsRead {
  if (isInt32Array(x) || isUint32Array(x)) return { kind: 'indices', indices: x };
  if (Array.isArray(x)) {
    const items = snapshot(x);
    if (items.length > 0 && !Array.isArray(items[0])) return { kind: 'indices', indices: items };
    return { kind: 'matrix', read: { kind: 'nested', items } };
  }
  return { kind: 'matrix', read: readMatrix(x) };
}

/** The matrix read of targets (for the call's dtype), or null for class indices. */
export function targetsMatrixRead(t: TargetsRead): MatrixRead | null {
  return t.kind === 'matrix' ? t.read : null;
}

/**
 * Validates targets for `rows x cols` predictions. A number[] is converted to an Int32Array (its
 * items must be integers in the int32 range). The range of class indices ([0, cols), or the ignore
 * index) is checked by the backend that reads them, in the same pass that counts the kept rows, unless
 * `checkRange` (for targets no backend reads: a user-written hard loss gets them).
 */
export function prepareTargets(
  t: TargetsRead,
  rows: number,
  cols: number,
  dtype: DType,
  name: string,
  checkRange: { ignoreIndex: number } | null,
): PreparedTargets {
  if (t.kind === 'matrix') {
    const m = toMatrix(t.read, name, dtype);
    expectShape(m, rows, cols, name);
    return { data: m.data, kind: TargetKind.Matrix };
  }
  let data: Int32Array | Uint32Array;
  if (Array.isArray(t.indices)) {
    const items = t.indices as readonly unknown[];
    if (items.length !== rows) throw new ShapeError(`${name}: expected ${rows} class indices (one per row), got ${items.length}`);
    data = new Int32Array(rows);
    for (let r = 0; r < rows; r++) {
      const c = items[r];
      if (typeof c !== 'number' || !Number.isInteger(c) || c < -2147483648 || c > 2147483647) {
        throw new InputError(`${name}[${r}]: expected an integer class index, got ${String(c)}`);
      }
      data[r] = c;
    }
  } else {
    data = t.indices as Int32Array | Uint32Array;
    checkAttached(data, name);
    const n = lengthOf(data);
    if (n !== rows) throw new ShapeError(`${name}: expected ${rows} class indices (one per row), got ${n}`);
  }
  if (checkRange !== null) {
    for (let r = 0; r < rows; r++) {
      const c = data[r];
      if (c !== checkRange.ignoreIndex && (c < 0 || c >= cols)) {
        throw new InputError(`${name}[${r}]: class index ${c} out of range [0, ${cols})`);
      }
    }
  }
  return { data, kind: isInt32Array(data) ? TargetKind.Int32 : TargetKind.Uint32 };
}
