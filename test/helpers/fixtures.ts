// The PyTorch reference fixtures (test/fixtures/*.json, written by test/fixtures/generate.py): loading,
// decoding, and the tolerance check every reference test uses.
//
// Arrays are stored as { dtype, shape, b64 }: base64 of little-endian element bytes. References are
// float64; float32 cases hold the float32 inputs the library is called with, and their references
// were computed in float64 from exactly those values.
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { FloatArray, Matrix } from 'kdloss';

export type DTypeName = 'float32' | 'float64';
export type ReductionName = 'mean' | 'sum' | 'none';

/** An array as the fixtures store it. */
export interface EncodedArray {
  dtype: 'float64' | 'float32' | 'int32' | 'uint32' | 'uint8';
  shape: number[];
  b64: string;
}

/** A row-major matrix as the fixtures store it. */
export interface EncodedMatrix {
  rows: number;
  cols: number;
  data: EncodedArray;
}

/** Hard targets: a matrix, typed class indices, or a plain number[] of class indices. */
export type EncodedTargets =
  | { form: 'matrix'; data: EncodedMatrix }
  | { form: 'int32' | 'uint32'; data: EncodedArray }
  | { form: 'array'; values: number[] };

/** Constructor arguments of the built-in hard loss. */
export type HardLossConfig =
  | { type: 'CrossEntropyLoss'; options: { fromLogits?: boolean; labelSmoothing?: number; ignoreIndex?: number; epsilon?: number } }
  | { type: 'MseLoss' };

/** DistillationLoss.forward on one set of inputs. */
export interface KdCase {
  id: string;
  title: string;
  dtype: DTypeName;
  /** 'typed': Matrix arguments; 'nested': number[][] arguments. */
  form: 'typed' | 'nested';
  temperature: number;
  alpha: number;
  hardLoss: HardLossConfig;
  student: EncodedMatrix;
  teacher: EncodedMatrix;
  targets: EncodedTargets;
  mask?: EncodedArray;
  options: { reduction?: ReductionName; grad?: boolean };
  /** Pass a caller-owned gradient buffer (gradOut) instead of grad: true. */
  gradOut: boolean;
  expected: { loss: number; soft: number; hard: number; perSample?: EncodedArray; grad?: EncodedArray };
  floors: { loss: number; soft: number; hard: number; perSample?: EncodedArray; gradRows?: EncodedArray };
}

/** CrossEntropyLoss / MseLoss compute() and gradient(). */
export interface HardCase {
  id: string;
  title: string;
  dtype: DTypeName;
  hardLoss: HardLossConfig;
  predictions: EncodedMatrix;
  targets: EncodedTargets;
  expected: { loss: number; grad: EncodedArray };
  floors: { loss: number; gradRows: EncodedArray };
}

/** FeatureDistillationLoss.forward. */
export interface FeatureCase {
  id: string;
  title: string;
  dtype: DTypeName;
  layerWeights: number[];
  pNorm: 1 | 2;
  students: EncodedMatrix[];
  teachers: EncodedMatrix[];
  options: { reduction: ReductionName; grad: boolean };
  expected: { loss: number; perLayer: number[]; perSample?: EncodedArray; grads: EncodedArray[] };
  floors: { loss: number; perLayer: number[]; perSample?: EncodedArray; gradRows: EncodedArray[] };
}

/** AttentionTransferLoss.forward. */
export interface AttentionCase {
  id: string;
  title: string;
  dtype: DTypeName;
  beta: number;
  student: EncodedMatrix;
  teacher: EncodedMatrix;
  options: { reduction: ReductionName; grad: boolean };
  expected: { loss: number; perSample?: EncodedArray; grad: EncodedArray };
  floors: { loss: number; perSample?: EncodedArray; gradRows: EncodedArray };
}

interface FixtureFile<C> {
  format: number;
  generator: { tool: string; torch: string; numpy: string };
  cases: C[];
}

/** The fixtures directory of the package under test (found through its own package.json). */
export const FIXTURES_DIR = path.join(path.dirname(require.resolve('kdloss/package.json')), 'test', 'fixtures');

function load<C>(name: string): C[] {
  const file = path.join(FIXTURES_DIR, name);
  const doc = JSON.parse(fs.readFileSync(file, 'utf8')) as FixtureFile<C>;
  if (doc.format !== 1) throw new Error(`${file}: unknown fixture format ${doc.format}`);
  if (!Array.isArray(doc.cases) || doc.cases.length === 0) throw new Error(`${file}: no cases`);
  return doc.cases;
}

/** The fixtures of one family. */
export const fixtures = {
  kd: (): KdCase[] => load<KdCase>('kd.json'),
  hard: (): HardCase[] => load<HardCase>('hard.json'),
  feature: (): FeatureCase[] => load<FeatureCase>('feature.json'),
  attention: (): AttentionCase[] => load<AttentionCase>('attention.json'),
};

if (os.endianness() !== 'LE') throw new Error('the fixtures store little-endian bytes; this platform is big-endian');

const CTORS = {
  float64: Float64Array,
  float32: Float32Array,
  int32: Int32Array,
  uint32: Uint32Array,
  uint8: Uint8Array,
} as const;

type Decoded<D extends EncodedArray['dtype']> = InstanceType<(typeof CTORS)[D]>;

/** Decodes an array into a fresh, aligned typed array of its dtype. */
export function decode<D extends EncodedArray['dtype']>(a: EncodedArray & { dtype: D }): Decoded<D> {
  const bytes = Buffer.from(a.b64, 'base64');
  const ctor = CTORS[a.dtype];
  const n = a.shape.reduce((x, y) => x * y, 1);
  if (bytes.length !== n * ctor.BYTES_PER_ELEMENT) {
    throw new Error(`fixture array: ${bytes.length} bytes for shape [${a.shape}] of ${a.dtype}`);
  }
  const buf = new ArrayBuffer(bytes.length);
  new Uint8Array(buf).set(bytes);
  return new ctor(buf) as Decoded<D>;
}

/** Decodes a float array (float32 or float64). */
export function decodeFloat(a: EncodedArray): FloatArray {
  if (a.dtype !== 'float32' && a.dtype !== 'float64') throw new Error(`expected a float array, got ${a.dtype}`);
  return decode(a) as FloatArray;
}

/** Decodes a float64 reference array. */
export function decodeF64(a: EncodedArray): Float64Array {
  if (a.dtype !== 'float64') throw new Error(`expected a float64 reference, got ${a.dtype}`);
  return decode(a) as Float64Array;
}

/** Decodes a matrix into a typed {@link Matrix}. */
export function decodeMatrix(m: EncodedMatrix): Matrix {
  const data = decodeFloat(m.data);
  if (data.length !== m.rows * m.cols) throw new Error(`fixture matrix: ${data.length} elements for ${m.rows}x${m.cols}`);
  return { data, rows: m.rows, cols: m.cols };
}

/** A matrix as number[][] (the nested-array input form). */
export function toNested(m: Matrix): number[][] {
  return Array.from({ length: m.rows }, (_, r) => Array.from(m.data.subarray(r * m.cols, (r + 1) * m.cols)));
}

/** Decodes targets into the form the fixture names. */
export function decodeTargets(t: EncodedTargets): Matrix | Int32Array | Uint32Array | number[] {
  switch (t.form) {
    case 'matrix':
      return decodeMatrix(t.data);
    case 'int32':
    case 'uint32':
      return decode(t.data) as Int32Array | Uint32Array;
    case 'array':
      return [...t.values];
  }
}

// ------------------------------------------------------------------------------------------------
// Tolerance

/**
 * Relative tolerance per input dtype: float64 results must match to 1e-12, float32 results (float32
 * lanes with float64 sums) to 1e-5, both relative to max(|ref|, floor) where the floor is the
 * resolution scale the generator derived for that quantity (see test/fixtures/generate.py, "Error floors").
 */
export const TOLERANCE: Record<DTypeName, number> = { float64: 1e-12, float32: 1e-5 };

/**
 * Worst observed normalised errors |got - ref| / max(|ref|, floor) by key, with the worst plain
 * relative error |got - ref| / |ref| of scalars and per-row values (informational: it shows where
 * the floors matter).
 */
export const worstErrors = new Map<string, { err: number; where: string; plain: number; plainWhere: string }>();

/** Records an error under `key` ('<group>#<case id>': the worst is kept per group, with its case). */
function record(stat: string | undefined, err: number, what: string, plain = Number.NaN): void {
  if (stat === undefined) return;
  const [key, id = ''] = stat.split('#');
  const where = id ? `${id} ${what}` : what;
  const prev = worstErrors.get(key) ?? { err: -1, where, plain: Number.NaN, plainWhere: '' };
  if (err > prev.err) {
    prev.err = err;
    prev.where = where;
  }
  if (plain > prev.plain || (Number.isNaN(prev.plain) && !Number.isNaN(plain))) {
    prev.plain = plain;
    prev.plainWhere = where;
  }
  worstErrors.set(key, prev);
}

function plainError(got: number, ref: number): number {
  return got === ref ? 0 : ref === 0 ? Number.NaN : Math.abs(got - ref) / Math.abs(ref);
}

/** Normalised error: |got - ref| / max(|ref|, floor); 0 when both are exactly equal (incl. 0 = 0). */
export function normalisedError(got: number, ref: number, floor: number): number {
  if (got === ref) return 0;
  const scale = Math.max(Math.abs(ref), floor);
  return Math.abs(got - ref) / scale;
}

/** Asserts |got - ref| <= tol * max(|ref|, floor). */
export function expectClose(got: number, ref: number, floor: number, tol: number, what: string, key?: string): void {
  expect(got, `${what}: not a number`).to.be.a('number');
  const err = normalisedError(got, ref, floor);
  record(key, err, what, plainError(got, ref));
  if (!(err <= tol)) {
    expect.fail(
      `${what}: got ${got}, PyTorch ${ref}, |diff| = ${Math.abs(got - ref)} is ${err.toExponential(3)} of ` +
        `max(|ref|, floor ${floor}); tolerance ${tol}`,
    );
  }
}

/**
 * Asserts element-wise |got[i] - ref[i]| <= tol * max(|ref[i]|, floor(i)), reporting the worst element.
 * `floor(i)` gives the floor of element i (e.g. its row's gradient floor).
 */
export function expectAllClose(
  got: ArrayLike<number>,
  ref: ArrayLike<number>,
  floor: (i: number) => number,
  tol: number,
  what: string,
  key?: string,
): void {
  expect(got.length, `${what}: length`).to.equal(ref.length);
  let worst = 0;
  let at = -1;
  let plain = Number.NaN;
  for (let i = 0; i < ref.length; i++) {
    const err = normalisedError(got[i], ref[i], floor(i));
    if (!(err <= worst)) {
      worst = err;
      at = i;
    }
    const p = plainError(got[i], ref[i]);
    if (!Number.isNaN(p)) plain = Number.isNaN(plain) ? p : Math.max(plain, p);
  }
  record(key, worst, what, /grad/.test(what) ? Number.NaN : plain);
  if (!(worst <= tol)) {
    expect.fail(
      `${what}[${at}]: got ${got[at]}, PyTorch ${ref[at]}, |diff| = ${Math.abs(got[at] - ref[at])} is ` +
        `${worst.toExponential(3)} of max(|ref|, floor ${floor(at)}); tolerance ${tol}`,
    );
  }
}

/** A floor function for a rows x cols array with one floor per row. */
export function rowFloors(rows: Float64Array, cols: number): (i: number) => number {
  return (i) => rows[Math.floor(i / cols)];
}
