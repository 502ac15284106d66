// Deterministic random inputs for property-style tests (xorshift32 + Box-Muller).

/** A seeded generator of uniform and normal numbers. */
export class Rng {
  private s: number;

  constructor(seed: number) {
    this.s = seed >>> 0 || 1;
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    let x = this.s;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s / 4294967296;
  }

  /** Normal with mean 0 and standard deviation sigma. */
  normal(sigma = 1): number {
    const u = this.uniform() || 1e-12;
    return sigma * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.uniform());
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

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
