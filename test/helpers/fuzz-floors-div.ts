// Error floors of the soft term of one distillation row, per divergence and for sparse teachers (see
// fuzz-floors.ts for the tolerance model: a result passes when |got - ref| <= tol * max(|ref|, floor)
// + tiny). Each floor is the magnitude of the terms the result combines, weighted by how far each term
// can be off in the backend's arithmetic: a log-probability a - log Z computed from a scaled logit
// a = (t - max t) / T carries an error of about eps (|a| + log Z), an exp e^a one of eps |a| relative,
// so a probability p one of eps p (1 + |a| + sum p |a|) (its own exp and its normaliser's). All values
// are computed here in float64 from the case's inputs (already rounded to its dtype).
import type { KdData, KdSpec } from './fuzz-gen';

/** The floors of one row's soft term. */
export interface SoftRowFloor {
  /** Of the row's (unweighted) soft term. */
  value: number;
  /** Of each gradient element, in units of d(soft)/d(s_j / T) (the caller applies the loss's weights). */
  grad: Float64Array;
  /**
   * What an element of the gradient may differ by as a whole, not as rounding (same units), or null:
   * TVD's subgradient where p and q are equal within the tolerance.
   */
  jump: Float64Array | null;
}

/** Max-shifted scaled logits x = (v - max) / T of a row, their log-sum-exp and probabilities. */
interface RowDist {
  x: Float64Array;
  lz: number;
  p: Float64Array;
  /** sum p |x| (the normaliser's share of each probability's relative error). */
  px: number;
}

function dist(v: ArrayLike<number>, o: number, n: number, invT: number): RowDist {
  let max = -Infinity;
  for (let j = o; j < o + n; j++) if (v[j] > max) max = v[j];
  const x = new Float64Array(n);
  let z = 0;
  for (let j = 0; j < n; j++) {
    x[j] = (v[o + j] - max) * invT;
    z += Math.exp(x[j]);
  }
  const lz = Math.log(z);
  const p = new Float64Array(n);
  let px = 0;
  for (let j = 0; j < n; j++) {
    p[j] = Math.exp(x[j] - lz);
    if (p[j] > 0) px += p[j] * Math.abs(x[j]);
  }
  return { x, lz, p, px };
}

function logAddExp(x: number, y: number): number {
  const hi = Math.max(x, y);
  if (hi === -Infinity) return -Infinity;
  return hi + Math.log1p(Math.exp(Math.min(x, y) - hi));
}

/**
 * The soft-term floors of kept row r of a dense-teacher case. `tol` and `tiny`: the comparison's, for
 * where TVD's sign of p - q is within them.
 */
export function denseSoftFloor(spec: KdSpec, data: KdData, r: number, tol: number, tiny: number): SoftRowFloor {
  const C = spec.cols;
  const invT = 1 / spec.temperature;
  const S = dist(data.student, r * C, C, invT);
  const Tt = dist(data.teacher, r * C, C, invT);
  const a = Tt.x;
  const b = S.x;
  const p = Tt.p;
  const q = S.p;
  const lz = Math.max(S.lz, 1) + Math.max(Tt.lz, 1);
  const grad = new Float64Array(C);
  let value = lz;
  let jump: Float64Array | null = null;
  switch (spec.loss.divergence) {
    case 'kl':
      // sum p (a - log Zt - b + log Zs); gradient q - p.
      for (let j = 0; j < C; j++) {
        if (p[j] > 0) value += p[j] * (Math.abs(a[j]) + Math.abs(b[j]));
        grad[j] = q[j] + p[j];
      }
      break;
    case 'reverse-kl': {
      // sum q (b - log Zs - a + log Zt), the forward KL's terms with the roles swapped; gradient
      // q_j (h_j - value) with h = log q - log p: h_j's error and the value's.
      for (let j = 0; j < C; j++) if (q[j] > 0) value += q[j] * (Math.abs(a[j]) + Math.abs(b[j]));
      for (let j = 0; j < C; j++) grad[j] = q[j] > 0 ? q[j] * (Math.abs(a[j]) + Math.abs(b[j]) + lz + value) : 0;
      break;
    }
    case 'jsd': {
      // beta sum p (log p - log m) + (1 - beta) sum q (log q - log m). log m, the log of
      // beta p + (1 - beta) q (or, where that underflows, the log-sum-exp of log beta + log p and
      // log(1 - beta) + log q), is off by about eps (|log m| + |log beta| + |log(1 - beta)|) plus the
      // relative error of the exps it mixes (|a| where p > 0, |b| where q > 0): M_j below. Where beta or
      // 1 - beta is tiny, log q - log m is a tiny difference of two logs of ordinary size, so the
      // value's floor (the terms' magnitude) is far above the value itself. Gradient
      // (1 - beta) q_j (log q_j - log m_j - KL(q || m)): each term's error, KL(q || m)'s being kq below.
      const beta = spec.loss.beta!;
      const lb = Math.log(beta);
      const l1b = Math.log1p(-beta);
      const M = new Float64Array(C);
      let kq = 0;
      for (let j = 0; j < C; j++) {
        const lp = a[j] - Tt.lz;
        const lq = b[j] - S.lz;
        const lm = logAddExp(lb + lp, l1b + lq);
        M[j] = Math.abs(lm) + Math.abs(lb) + Math.abs(l1b) + (p[j] > 0 ? Math.abs(a[j]) : 0) + (q[j] > 0 ? Math.abs(b[j]) : 0);
        if (p[j] > 0) value += beta * p[j] * (Math.abs(a[j]) + M[j]);
        if (q[j] > 0) {
          value += (1 - beta) * q[j] * (Math.abs(b[j]) + M[j]);
          kq += q[j] * (Math.abs(b[j]) + S.lz + M[j]);
        }
      }
      for (let j = 0; j < C; j++) grad[j] = q[j] > 0 ? (1 - beta) * q[j] * (Math.abs(b[j]) + lz + M[j] + kq) : 0;
      break;
    }
    case 'tvd': {
      // 1/2 sum |p - q|: each |p_j - q_j| is off by at most the errors of p_j and q_j, whatever their
      // cancellation (the value's floor is the mass those errors scale with, not the value, which is
      // 0 for identical rows). Gradient q_i (sigma_i - sum q sigma) / 2, sigma = sign(q - p): where
      // p_j and q_j agree within the tolerance, either side of the tie (or 0) is as right as the
      // other, and sigma_j's change of up to 2 moves element i by up to q_i ([i = j] + q_j): `jump`.
      const ep = new Float64Array(C);
      const eq = new Float64Array(C);
      let eqSum = 0;
      value = 0;
      for (let j = 0; j < C; j++) {
        ep[j] = p[j] > 0 ? p[j] * (1 + Math.abs(a[j]) + Tt.px) : 0;
        eq[j] = q[j] > 0 ? q[j] * (1 + Math.abs(b[j]) + S.px) : 0;
        value += 0.5 * (ep[j] + eq[j]);
        eqSum += eq[j];
      }
      let tied = 0;
      const isTied = new Uint8Array(C);
      for (let j = 0; j < C; j++) {
        if (Math.abs(p[j] - q[j]) <= tol * (ep[j] + eq[j]) + tiny) {
          isTied[j] = 1;
          tied += q[j];
        }
      }
      for (let j = 0; j < C; j++) grad[j] = eq[j] + 0.5 * q[j] * eqSum;
      if (tied > 0) jump = Float64Array.from({ length: C }, (_, j) => q[j] * (isTied[j] + tied));
      break;
    }
  }
  return { value, grad, jump };
}

/**
 * The soft-term floors of kept row r of a sparse-teacher case (docs/sparse-teachers.md): KL(p || q)
 * over the entries (plus the tail bucket), q the student's softmax over the whole row. Both backends
 * take the entries in float64; the student's sum of exps Zs is the kernel's (float32 exps in a float32
 * call), off by about eps Zs Q1 with Q1 = sum q (1 + |d|): log Zs by eps Q1, and the tail's student
 * mass q_out = (Zs - sum over the entries) / Zs by eps Q1 absolutely, so log q_out by eps Q1 / q_out
 * (docs/sparse-teachers.md states that resolution). Gradient: q_j - p_j on the entries and
 * q_j (1 - p_out / q_out) elsewhere: q_j's error, and p_out / q_out's relative error eps Q1 / q_out.
 */
export function sparseSoftFloor(spec: KdSpec, data: KdData, r: number): SoftRowFloor {
  const C = spec.cols;
  const sp = spec.sparse!;
  const { indices, values } = data.sparse!;
  const K = sp.k;
  const invT = 1 / spec.temperature;
  const S = dist(data.student, r * C, C, invT);
  const d = S.x;
  const q = S.p;
  let q1 = 0;
  for (let j = 0; j < C; j++) if (q[j] > 0) q1 += q[j] * (1 + Math.abs(d[j]));
  const tail = sp.kind === 'logprobs' && sp.tail !== false;
  const scale = sp.kind === 'logits' ? invT : 1;
  let mt = -Infinity;
  const inS = new Uint8Array(C);
  let count = 0;
  for (let e = r * K; e < (r + 1) * K; e++) {
    if (indices[e] < 0) continue;
    inS[indices[e]] = 1;
    count++;
    if (values[e] > mt) mt = values[e];
  }
  const shift = tail ? 0 : mt;
  const pOf = new Float64Array(C);
  const aOf = new Float64Array(C);
  let zt = 0;
  for (let e = r * K; e < (r + 1) * K; e++) {
    const i = indices[e];
    if (i < 0) continue;
    aOf[i] = (values[e] - shift) * scale;
    pOf[i] = Math.exp(aOf[i]);
    zt += pOf[i];
  }
  let value = Math.max(S.lz, 1) + q1;
  let ratio = 0;
  let qOut = 0;
  if (!tail) {
    for (let j = 0; j < C; j++) pOf[j] /= zt;
    value += Math.max(Math.log(zt), 1);
  } else {
    const pOut = count < C ? Math.max(1 - zt, 0) : 0;
    for (let j = 0; j < C; j++) if (!inS[j]) qOut += q[j];
    if (pOut > 0) {
      value += qOut > 0 ? pOut * (Math.abs(Math.log(pOut)) + Math.abs(Math.log(qOut)) + q1 / qOut) : Infinity;
      ratio = pOut / qOut;
    }
  }
  for (let j = 0; j < C; j++) if (inS[j] && pOf[j] > 0) value += pOf[j] * (Math.abs(aOf[j]) + Math.abs(d[j]));
  const grad = new Float64Array(C);
  for (let j = 0; j < C; j++) {
    const eq = q[j] > 0 ? q[j] * (1 + Math.abs(d[j]) + q1) : 0;
    grad[j] = eq * (1 + ratio) + (ratio > 0 ? (q[j] * ratio * q1) / qOut : 0) + (inS[j] ? pOf[j] : 0);
  }
  return { value, grad, jump: null };
}

/**
 * Whether kept row r of a sparse case has a tail bucket of teacher mass whose student mass q_out is
 * within the resolution of the kernels' q_out = (Zs - sum over the entries) / Zs: the rounding of Zs,
 * about eps (Q1 + C) of the row's mass (each exp's relative error eps (1 + |d|), and the sum's of C
 * terms). There q_out may come out as 0 (a KL of +inf), as rounding noise, or as the true value
 * (docs/sparse-teachers.md states this resolution).
 */
export function tailBelowResolution(spec: KdSpec, data: KdData, r: number): boolean {
  const sp = spec.sparse;
  if (sp === null || sp.kind !== 'logprobs' || sp.tail === false) return false;
  const C = spec.cols;
  const { indices, values } = data.sparse!;
  const inS = new Uint8Array(C);
  let P = 0;
  let count = 0;
  for (let e = r * sp.k; e < (r + 1) * sp.k; e++) {
    if (indices[e] < 0) continue;
    inS[indices[e]] = 1;
    count++;
    P += Math.exp(values[e]);
  }
  // p_out = 1 - P is taken in float64 in another summation order than here: it may be positive where
  // this sum reaches 1 within the rounding of its count terms.
  if (count === C || !(1 - P > -count * 2 ** -52)) return false;
  const S = dist(data.student, r * C, C, 1 / spec.temperature);
  let q1 = 0;
  let qOut = 0;
  for (let j = 0; j < C; j++) {
    if (S.p[j] > 0) q1 += S.p[j] * (1 + Math.abs(S.x[j]));
    if (!inS[j]) qOut += S.p[j];
  }
  const eps = spec.dtype === 'float32' ? 2 ** -24 : 2 ** -53;
  return qOut <= 64 * eps * (q1 + C);
}
