/**
 * The seeded random generator of the benchmark inputs and of the tests: xorshift32 for uniforms,
 * Box-Muller for normals. The same seed gives the same numbers in every process and on every machine.
 * @module
 */

/** A seeded generator of uniform and normal numbers. */
export class Rng {
  private s: number;

  /** A seed of 0 is taken as 1 (xorshift's state must not be 0). */
  constructor(seed: number) {
    this.s = seed >>> 0 || 1;
  }

  /** Uniform in [0, 1), in steps of 2^-32. */
  uniform(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s / 4294967296;
  }

  /** Normal with mean 0 and standard deviation `sigma`. */
  normal(sigma = 1): number {
    const u = this.uniform() || 1e-12;
    return sigma * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.uniform());
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }
}
