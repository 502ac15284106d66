/**
 * The js backend's soft terms besides the forward KL (which its distillation row computes itself): the
 * divergences of one row from its exps, in float64, with exact zeros where a probability is exactly 0
 * and no epsilon anywhere.
 * @module
 */
import { DivergenceCode } from './layout';

/** One row's scaled, max-shifted logits and their exps: a = (t - max t)/T, b = (s - max s)/T. */
export interface SoftRow {
  /** Columns. */
  n: number;
  /** Student exps e^b (Zs = their sum). */
  es: Float64Array;
  /** Teacher exps e^a (Zt = their sum). */
  et: Float64Array;
  zs: number;
  zt: number;
  /** b_j. */
  b(j: number): number;
  /** a_j. */
  a(j: number): number;
}

/** log(e^x + e^y) without overflow; -Infinity when both are. */
function logAddExp(x: number, y: number): number {
  const hi = x > y ? x : y;
  if (hi === -Infinity) return -Infinity;
  const lo = x > y ? y : x;
  return hi + Math.log1p(Math.exp(lo - hi));
}

/**
 * The row's soft term for `divergence` (not 'kl'), and, when `dq` is given, d(term)/d(s_j) * T into
 * dq[j] (the caller divides by T and scales). p = e^a / Zt, q = e^b / Zs.
 */
export function softDivergence(divergence: DivergenceCode, beta: number, row: SoftRow, dq: Float64Array | null): number {
  const { n, es, et, zs, zt } = row;
  const logZs = Math.log(zs);
  const logZt = Math.log(zt);
  switch (divergence) {
    case DivergenceCode.ReverseKl: {
      // sum q (log q - log p); q = 0 adds 0, p = 0 under q > 0 adds +Infinity, NaN stays NaN.
      let w = 0;
      // A q below the float range (es = 0, b finite) against p = 0 is +Infinity too, as in exact arithmetic.
      for (let j = 0; j < n; j++) {
        if (es[j] !== 0) w += es[j] * (row.b(j) - row.a(j));
        else if (row.b(j) - row.a(j) === Infinity) w = Infinity;
      }
      const value = w / zs + logZt - logZs;
      if (dq !== null) {
        // q_j (h_j - value), h = log q - log p. A value of +inf (or NaN) makes the term -inf (or NaN)
        // wherever q > 0, i.e. wherever b is not -inf, also where q is below the float range (es 0):
        // there the sign of h - value alone, as the kernels take it. A NaN Zs makes every q NaN.
        const finite = Number.isFinite(value);
        for (let j = 0; j < n; j++) {
          const q = es[j] / zs;
          const d = row.b(j) - logZs - (row.a(j) - logZt) - value;
          if (!finite && !Number.isNaN(zs)) dq[j] = row.b(j) === -Infinity ? 0 : d;
          else dq[j] = q !== 0 ? q * d : 0;
        }
      }
      return value;
    }
    case DivergenceCode.Jsd: {
      // beta KL(p || m) + (1 - beta) KL(q || m), log m = logaddexp(log beta + log p, log(1 - beta) + log q).
      const lb = Math.log(beta);
      const l1b = Math.log1p(-beta);
      let kp = 0;
      let kq = 0;
      for (let j = 0; j < n; j++) {
        const lp = row.a(j) - logZt;
        const lq = row.b(j) - logZs;
        const lm = logAddExp(lb + lp, l1b + lq);
        if (et[j] !== 0) kp += (et[j] / zt) * (lp - lm);
        if (es[j] !== 0) kq += (es[j] / zs) * (lq - lm);
      }
      if (dq !== null) {
        // q_j (g_j - sum q g), g = (1 - beta) log(q / m), sum q g = (1 - beta) KL(q || m). A NaN
        // KL(q || m) (a NaN p) makes the term NaN wherever q > 0 (b not -inf), also where q underflows.
        const nanKq = Number.isNaN(kq) && !Number.isNaN(zs);
        for (let j = 0; j < n; j++) {
          if (nanKq) {
            dq[j] = row.b(j) === -Infinity ? 0 : NaN;
            continue;
          }
          const q = es[j] / zs;
          if (!(q > 0)) {
            dq[j] = q === 0 ? 0 : NaN;
            continue;
          }
          const lp = row.a(j) - logZt;
          const lq = row.b(j) - logZs;
          const lm = logAddExp(lb + lp, l1b + lq);
          dq[j] = q * (1 - beta) * (lq - lm - kq);
        }
      }
      return beta * kp + (1 - beta) * kq;
    }
    case DivergenceCode.Tvd: {
      // 1/2 sum |p - q|; d/dq = sign(q - p) / 2, the subgradient 0 where p = q.
      let sum = 0;
      let sq = 0;
      for (let j = 0; j < n; j++) {
        const d = es[j] / zs - et[j] / zt;
        sum += Math.abs(d);
        sq += (es[j] / zs) * Math.sign(d);
      }
      if (dq !== null) {
        for (let j = 0; j < n; j++) {
          const q = es[j] / zs;
          dq[j] = 0.5 * q * (Math.sign(q - et[j] / zt) - sq);
        }
      }
      return 0.5 * sum;
    }
    default:
      throw new Error(`softDivergence: divergence ${divergence} is the row's own`);
  }
}
