// Deterministic random inputs for property-style tests: the library's own seeded generator
// (lib/util/rng.ts, the one the benchmark uses) with matrix and class-index helpers.
import * as path from 'path';

const ROOT = path.resolve(__dirname, '..', '..', '..');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const rng = require(path.join(ROOT, 'dist', 'util', 'rng.js')) as typeof import('../../dist/util/rng');

/** A seeded generator of uniform and normal numbers, matrices and class indices. */
export class Rng extends rng.Rng {
  /** rows x cols normal matrix as float64 data. */
  matrix(rows: number, cols: number, sigma = 1): { data: Float64Array; rows: number; cols: number } {
    const data = new Float64Array(rows * cols);
    for (let i = 0; i < data.length; i++) data[i] = this.normal(sigma);
    return { data, rows, cols };
  }

  /** One class index per row. */
  classes(rows: number, cols: number): Int32Array {
    return Int32Array.from({ length: rows }, () => this.int(cols));
  }
}

/** One-hot rows for class indices. */
export function oneHot(classes: ArrayLike<number>, cols: number): { data: Float64Array; rows: number; cols: number } {
  const data = new Float64Array(classes.length * cols);
  for (let r = 0; r < classes.length; r++) data[r * cols + classes[r]] = 1;
  return { data, rows: classes.length, cols };
}

/** The same matrix in float32. */
export function toF32(m: { data: Float64Array; rows: number; cols: number }): { data: Float32Array; rows: number; cols: number } {
  return { data: Float32Array.from(m.data), rows: m.rows, cols: m.cols };
}
