/**
 * Hard-target validation: class indices or a matrix of the student's shape.
 * @module
 */
import { InputError, ShapeError } from './errors';
import { checkAttached, type DType, expectShape, type FloatArray, isNestedArray, toMatrix } from './matrix';
import { TargetKind } from './backend/types';

/** Validated targets as the backends take them. */
export interface PreparedTargets {
  data: FloatArray | Int32Array | Uint32Array;
  kind: TargetKind;
  /** Rows whose class index is not the ignore index (all rows for a matrix). */
  kept: number;
}

/** True when `x` is a class-index form (Int32Array, Uint32Array or a flat number array). */
export function isClassIndices(x: unknown): x is Int32Array | Uint32Array | readonly number[] {
  return x instanceof Int32Array || x instanceof Uint32Array || (Array.isArray(x) && !isNestedArray(x));
}

/**
 * Validates targets for `rows x cols` predictions. Class indices must be integers in [0, cols) or
 * equal to `ignoreIndex`; a number[] is converted to an Int32Array.
 */
export function prepareTargets(
  targets: unknown,
  rows: number,
  cols: number,
  dtype: DType,
  ignoreIndex: number,
  name = 'targets',
): PreparedTargets {
  if (isClassIndices(targets)) {
    if (ArrayBuffer.isView(targets)) checkAttached(targets, name);
    if (targets.length !== rows) {
      throw new ShapeError(`${name}: expected ${rows} class indices (one per row), got ${targets.length}`);
    }
    let data: Int32Array | Uint32Array;
    if (Array.isArray(targets)) {
      data = new Int32Array(rows);
      for (let r = 0; r < rows; r++) {
        const c = targets[r];
        if (typeof c !== 'number' || !Number.isInteger(c) || c < -2147483648 || c > 2147483647) {
          throw new InputError(`${name}[${r}]: expected an integer class index, got ${String(c)}`);
        }
        data[r] = c;
      }
    } else {
      data = targets as Int32Array | Uint32Array;
    }
    // Counts the kept rows in the same pass, which saves countKept a second one.
    let kept = rows;
    for (let r = 0; r < rows; r++) {
      const c = data[r];
      if (c === ignoreIndex) {
        kept--;
      } else if (c < 0 || c >= cols) {
        throw new InputError(`${name}[${r}]: class index ${c} out of range [0, ${cols})`);
      }
    }
    return { data, kind: data instanceof Int32Array ? TargetKind.Int32 : TargetKind.Uint32, kept };
  }
  const m = toMatrix(targets, name, dtype);
  expectShape(m, rows, cols, name);
  return { data: m.data, kind: TargetKind.Matrix, kept: rows };
}

/**
 * Rows kept by a mask (0 leaves a row out) and by class indices equal to `ignoreIndex` (the one
 * `targets` were prepared with).
 */
export function countKept(mask: Uint8Array | null, targets: PreparedTargets | null, ignoreIndex: number, rows: number): number {
  if (mask === null) return targets === null ? rows : targets.kept;
  const idx = targets !== null && targets.kind !== TargetKind.Matrix ? targets.data : null;
  let kept = 0;
  for (let r = 0; r < rows; r++) {
    if (mask[r] !== 0 && (idx === null || idx[r] !== ignoreIndex)) kept++;
  }
  return kept;
}
