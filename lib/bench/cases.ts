/**
 * The benchmark cases and their preallocated inputs.
 * @module
 */
import type { DType, FloatArray } from '../matrix';
import { Rng } from '../util/rng';
import type { CaseSpec, ThreadCaseSpec } from './types';

/** Distillation settings of every KD case: T = 4, alpha = 0.7, CrossEntropyLoss (from logits). */
export const KD_T = 4;
export const KD_ALPHA = 0.7;
/** Feature loss: 3 layers of 256 x 4096, p = 2. */
export const FEATURE_LAYERS = 3;
export const FEATURE_P = 2;
/** Attention transfer: 256 x 4096, beta = 2. */
export const ATTENTION_BETA = 2;

const DTYPES: readonly DType[] = ['float32', 'float64'];
const KD_SHAPES: readonly [number, number][] = [
  [2, 3],
  [64, 10],
  [4096, 1000],
  [32768, 128],
];
/**
 * Extra sizes of the KD float32 one-hot series (the chart's x axis): with 2x3, 64x10 and the two
 * large shapes they span 6 to 4.2M elements. 1000 classes, like the 4096x1000 case.
 */
const KD_SWEEP: readonly [number, number][] = [
  [4, 1000],
  [32, 1000],
  [256, 1000],
  [1024, 1000],
];
/** The async thread-scaling shapes (float32, one-hot) and the thread counts they run with. */
const THREAD_SHAPES: readonly [number, number][] = [
  [4096, 1000],
  [32768, 128],
];
export const THREAD_COUNTS: readonly number[] = [1, 2];
const MAP_ROWS = 256;
const MAP_COLS = 4096;
/**
 * Rows of the larger-than-cache map cases (float32 forward only): feature 3 layers of 2048x4096 (192 MB
 * read) and attention 4096x4096 (128 MB). The 256x4096 cases read 24 MB and 8 MB, which may stay in a
 * large last-level cache and then run far above memory bandwidth; only inputs larger than any cache
 * measure the memory roofline.
 */
export const LARGE_MAP_ROWS: Readonly<Record<'feature' | 'attention', number>> = { feature: 2048, attention: 4096 };

const esize = (d: DType): number => (d === 'float32' ? 4 : 8);

function kdSpec(dtype: DType, rows: number, cols: number, targets: 'onehot' | 'index', grad: boolean): CaseSpec {
  const label = `kd${grad ? '+grad' : ''} ${rows}x${cols} ${targets}`;
  const n = rows * cols;
  const e = esize(dtype);
  // student + teacher (+ one-hot rows, or 4 bytes of class index per row) (+ the gradient written)
  const bytes = 2 * n * e + (targets === 'onehot' ? n * e : rows * 4) + (grad ? n * e : 0);
  return {
    id: `${label} ${dtype}`,
    label,
    kind: 'kd',
    dtype,
    rows,
    cols,
    layers: 1,
    targets,
    grad,
    forwardId: grad ? `kd ${rows}x${cols} ${targets} ${dtype}` : null,
    elements: n,
    bytes,
    // exp((s - max s)/T), exp((t - max t)/T) and exp(s - max s) for the cross-entropy at T = 1.
    expsPerElement: 3,
  };
}

function mapSpec(kind: 'feature' | 'attention', dtype: DType, grad: boolean, rows = MAP_ROWS): CaseSpec {
  const layers = kind === 'feature' ? FEATURE_LAYERS : 1;
  const base = kind === 'feature' ? `feature ${layers}x${rows}x${MAP_COLS} p${FEATURE_P}` : `attention ${rows}x${MAP_COLS} b${ATTENTION_BETA}`;
  const label = grad ? base.replace(kind, `${kind}+grad`) : base;
  const n = layers * rows * MAP_COLS;
  const e = esize(dtype);
  return {
    id: `${label} ${dtype}`,
    label,
    kind,
    dtype,
    rows,
    cols: MAP_COLS,
    layers,
    targets: null,
    grad,
    forwardId: grad ? `${base} ${dtype}` : null,
    elements: n,
    bytes: 2 * n * e + (grad ? n * e : 0),
    // p = 2 and beta = 2 are squares: no exps, so the memory roofline alone.
    expsPerElement: 0,
  };
}

/** The larger-than-cache case of a map loss (float32 forward), e.g. 'attention 4096x4096 b2 float32'. */
export function largeMapCaseId(kind: 'feature' | 'attention'): string {
  return mapSpec(kind, 'float32', false, LARGE_MAP_ROWS[kind]).id;
}

/** Every case, in table order. */
export function allCases(): CaseSpec[] {
  const cases: CaseSpec[] = [];
  const kdShapes = [...KD_SHAPES, ...KD_SWEEP].sort((a, b) => a[0] * a[1] - b[0] * b[1]);
  for (const [rows, cols] of kdShapes) {
    if (KD_SWEEP.some(([r, c]) => r === rows && c === cols)) {
      cases.push(kdSpec('float32', rows, cols, 'onehot', false));
      continue;
    }
    for (const targets of ['onehot', 'index'] as const) {
      for (const dtype of DTYPES) cases.push(kdSpec(dtype, rows, cols, targets, false));
    }
  }
  for (const dtype of DTYPES) cases.push(kdSpec(dtype, 4096, 1000, 'onehot', true));
  for (const kind of ['feature', 'attention'] as const) {
    for (const grad of [false, true]) {
      for (const dtype of DTYPES) cases.push(mapSpec(kind, dtype, grad));
    }
    cases.push(mapSpec(kind, 'float32', false, LARGE_MAP_ROWS[kind]));
  }
  return cases;
}

/** Cases whose id contains one of the filters (all cases without filters). */
export function selectCases(filter: string[] | undefined): CaseSpec[] {
  const all = allCases();
  if (!filter || filter.length === 0) return all;
  return all.filter((c) => filter.some((f) => c.id.includes(f)));
}

/** Every async thread-scaling case, e.g. 'kd 4096x1000 onehot float32 async'. */
export function allThreadCases(): ThreadCaseSpec[] {
  return THREAD_SHAPES.map(([rows, cols]) => {
    const sync = kdSpec('float32', rows, cols, 'onehot', false);
    return {
      id: `${sync.id} async`,
      label: sync.label,
      syncId: sync.id,
      dtype: sync.dtype,
      rows,
      cols,
      targets: 'onehot',
      elements: sync.elements,
    };
  });
}

/** Thread-scaling cases whose id contains one of the filters (all without filters). */
export function selectThreadCases(filter: string[] | undefined): ThreadCaseSpec[] {
  const all = allThreadCases();
  if (!filter || filter.length === 0) return all;
  return all.filter((c) => filter.some((f) => c.id.includes(f)));
}

/** Fills a new array of a dtype with normal(0, sigma) values. */
export function randomArray(dtype: DType, n: number, sigma: number, seed: number): FloatArray {
  const rng = new Rng(seed);
  const a = dtype === 'float32' ? new Float32Array(n) : new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal(sigma);
  return a;
}

/** One class index per row. */
export function randomClasses(rows: number, cols: number, seed: number): Int32Array {
  const rng = new Rng(seed);
  const idx = new Int32Array(rows);
  for (let r = 0; r < rows; r++) idx[r] = rng.int(cols);
  return idx;
}

/** One-hot rows of the class indices. */
export function oneHot(dtype: DType, idx: Int32Array, cols: number): FloatArray {
  const a = dtype === 'float32' ? new Float32Array(idx.length * cols) : new Float64Array(idx.length * cols);
  for (let r = 0; r < idx.length; r++) a[r * cols + idx[r]] = 1;
  return a;
}
