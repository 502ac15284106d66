/**
 * A sparse (top-k) teacher for `kdloss eval` (docs/sparse-teachers.md): each row's top-k entries as
 * two arrays of one shape [..., k], token indices (int32 or int64, -1 for an unused slot) and their
 * values (the teacher's logits or log-probabilities, float32 or float64 like the student's logits),
 * the leading axes flattened into rows as the student's are. Read from one safetensors file
 * (`--teacher-topk`: tensors `indices` and `values`) or from two files of one array each
 * (`--teacher-indices`, `--teacher-values`), chunk by chunk with the student's rows.
 *
 * The entries of every row read are checked here, before the library sees them, so that a bad entry
 * is reported with its file and its row in that file (the library checks them again, and names the
 * row of the chunk): an index outside [-1, V) or repeated within a row, and for log-probabilities one
 * above 0 or a row whose probabilities add up to more than 1 (both beyond the library's
 * LOGPROB_SLACK, the same bounds).
 * @module
 */
import { LOGPROB_SLACK } from '../sparse';
import { FileError } from './errors';
import { arrayError, nameList } from './formats';
import { shapeStr } from './npy';
import { quoteName } from './safetensors';
import { type ArraySource, arrayName, type InputFile, isFloatType, type LogitsType, rowsOf, type RowSource } from './source';

/** What a sparse teacher's values are (the library's SparseTeacherKind). */
export type SparseKind = 'logits' | 'logprobs';

/** The tensors a `--teacher-topk` file must hold. */
export const TOPK_KEYS = ['indices', 'values'] as const;

/** A sparse teacher as given on the command line: one safetensors file, or two files. */
export interface SparseTeacherSpec {
  /** A safetensors file with tensors `indices` and `values` (`--teacher-topk`). */
  topk?: string;
  /** Files of one array each (`--teacher-indices`, `--teacher-values`), when `topk` is not given. */
  indices?: string;
  values?: string;
  kind: SparseKind;
  /** The tail bucket (logprobs only). */
  tail: boolean;
}

/** A sparse teacher's settings, as reports carry them (equal in every shard of one evaluation). */
export interface SparseTeacherSettings {
  format: 'sparse';
  /** Slots per row: the arrays' last axis. */
  k: number;
  kind: SparseKind;
  tail: boolean;
}

/** The opened and checked sparse teacher. */
export interface SparseSource {
  indices: RowSource;
  values: RowSource;
  indicesFile: InputFile;
  valuesFile: InputFile;
  settings: SparseTeacherSettings;
}

/** The two arrays a spec names, before their checks. */
export interface SparseArrays {
  indices: ArraySource;
  values: ArraySource;
  indicesFile: InputFile;
  valuesFile: InputFile;
}

/** The one array of a file given to `--<flag>`. */
function onlyArray(input: InputFile, flag: string): ArraySource {
  const n = input.arrays.length;
  if (n === 1) return input.arrays[0];
  if (n === 0) throw new FileError(input.file, 'the file holds no tensors');
  throw new FileError(
    input.file,
    `the file holds ${n} tensors (${nameList(input.arrays.map((a) => a.key!))}); --${flag} reads a file of one array ` +
      `(a safetensors file of 'indices' and 'values' tensors goes to --teacher-topk)`,
  );
}

/**
 * Opens the files of a sparse teacher (through `open`, which opens each file once) and picks its two arrays.
 * @throws FileError for a --teacher-topk file that is not safetensors or lacks a tensor, or a file of several arrays
 */
export async function selectSparseArrays(spec: SparseTeacherSpec, open: (file: string) => Promise<InputFile>): Promise<SparseArrays> {
  if (spec.topk !== undefined) {
    const file = await open(spec.topk);
    if (file.format !== 'safetensors') {
      throw new FileError(
        file.file,
        `--teacher-topk reads a safetensors file of 'indices' and 'values' tensors, not a .npy file (give two .npy files with --teacher-indices and --teacher-values)`,
      );
    }
    const [indices, values] = TOPK_KEYS.map((key) => {
      const a = file.arrays.find((x) => x.key === key);
      if (a !== undefined) return a;
      const held = file.arrays.length === 0 ? 'the file holds no tensors' : `the file holds ${nameList(file.arrays.map((x) => x.key!))}`;
      throw new FileError(file.file, `no tensor ${quoteName(key)} (${held}); --teacher-topk reads tensors named 'indices' and 'values'`);
    });
    return { indices, values, indicesFile: file, valuesFile: file };
  }
  const indicesFile = await open(spec.indices!);
  const valuesFile = await open(spec.values!);
  return { indices: onlyArray(indicesFile, 'teacher-indices'), values: onlyArray(valuesFile, 'teacher-values'), indicesFile, valuesFile };
}

/**
 * Checks the arrays' headers against the student's logits (`rows` x `cols` of `dtype`).
 * @throws FileError naming the array and the problem
 */
export function checkSparseArrays(a: SparseArrays, spec: SparseTeacherSpec, student: ArraySource, rows: number, cols: number, dtype: LogitsType): SparseSource {
  const { indices, values } = a;
  if (indices.dtype !== 'int32' && indices.dtype !== 'int64') {
    throw arrayError(indices, `unsupported dtype ${indices.typeName} for top-k indices (expected int32 or int64)`);
  }
  if (!isFloatType(values.dtype)) {
    throw arrayError(values, `unsupported dtype ${values.typeName} for top-k values (expected float32 or float64, the student's dtype)`);
  }
  if (values.dtype === 'float16' || values.dtype === 'bfloat16') {
    throw arrayError(values, `${values.typeName} top-k values are not supported: a sparse teacher's values are float32 or float64, the student's dtype (widen them to float32)`);
  }
  if (dtype !== 'float32' && dtype !== 'float64') {
    throw arrayError(student, `${dtype} logits with a sparse teacher are not supported: a sparse teacher takes float32 or float64 student logits`);
  }
  if (values.dtype !== dtype) {
    throw arrayError(values, `dtype ${values.dtype} does not match ${arrayName(student)} (${dtype}); a sparse teacher's values must have the student's dtype`);
  }
  for (const [x, what] of [
    [indices, 'indices'],
    [values, 'values'],
  ] as const) {
    if (x.shape.length < 2) throw arrayError(x, `expected top-k ${what} of 2 or more axes (..., k), got shape ${shapeStr(x.shape)}`);
  }
  const same = indices.shape.length === values.shape.length && indices.shape.every((d, i) => d === values.shape[i]);
  if (!same) {
    throw arrayError(values, `shape ${shapeStr(values.shape)} does not match ${arrayName(indices)} ${shapeStr(indices.shape)}; top-k indices and values must have one shape (..., k)`);
  }
  const k = indices.shape[indices.shape.length - 1];
  if (k === 0) throw arrayError(indices, `no top-k slots (shape ${shapeStr(indices.shape)}: k = 0)`);
  if (k > cols) {
    throw arrayError(indices, `k = ${k} entries per row (shape ${shapeStr(indices.shape)}), more than the ${cols} classes of ${arrayName(student)}`);
  }
  const tRows = indices.size / k;
  if (tRows !== rows) throw arrayError(indices, `${tRows} rows (shape ${shapeStr(indices.shape)}), but ${arrayName(student)} has ${rows} rows`);
  return {
    indices: rowsOf(indices, k),
    values: rowsOf(values, k),
    indicesFile: a.indicesFile,
    valuesFile: a.valuesFile,
    settings: { format: 'sparse', k, kind: spec.kind, tail: spec.kind === 'logprobs' && spec.tail },
  };
}

/** Bytes a sparse teacher stores per token: k indices and k values. */
export function sparseBytesPerToken(k: number, indicesItemsize: number, valuesItemsize: number): number {
  return k * (indicesItemsize + valuesItemsize);
}

/** One chunk's entries as the library takes them. */
export interface SparseChunk {
  indices: Int32Array;
  values: Float32Array | Float64Array;
}

/** The buffers of one chunk of a sparse teacher. */
export interface SparseBuffers {
  /** Raw int64 indices (null for int32 ones, read in place). */
  raw: Uint8Array | null;
  indices: Int32Array;
  values: Float32Array | Float64Array;
  /** Whether each class was seen in the row being checked (all 0 between rows). */
  seen: Uint8Array;
}

/** The bytes of one row of each buffer a chunk of a sparse teacher takes. */
export function sparseRowBytes(s: SparseSource): number {
  const k = s.settings.k;
  return s.indices.rowBytes + (s.indices.array.dtype === 'int64' ? 4 * k : 0) + s.values.rowBytes;
}

/** Allocates the buffers of chunks of `chunkRows` rows (`cols`: the student's classes). */
export function allocSparse(s: SparseSource, chunkRows: number, cols: number): SparseBuffers {
  const n = chunkRows * s.settings.k;
  return {
    raw: s.indices.array.dtype === 'int64' ? new Uint8Array(8 * n) : null,
    indices: new Int32Array(n),
    values: s.values.array.dtype === 'float64' ? new Float64Array(n) : new Float32Array(n),
    seen: new Uint8Array(cols),
  };
}

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * Reads rows [row, row + n) of the entries into `buf` and checks them (see the module comment).
 * @throws FileError when a file cannot be read, or naming the array and the (absolute) row of the first bad entry
 */
export async function readSparse(s: SparseSource, buf: SparseBuffers, row: number, n: number, cols: number): Promise<SparseChunk> {
  const k = s.settings.k;
  const indices = buf.indices.subarray(0, n * k);
  const values = buf.values.subarray(0, n * k);
  await Promise.all([s.indices.readRows(row, n, buf.raw ?? bytesOf(indices)), s.values.readRows(row, n, bytesOf(values))]);
  if (buf.raw !== null) widenIndices(s.indices.array, buf.raw, indices, row, k, cols);
  checkEntries(s, indices, values, row, n, cols, buf.seen);
  return { indices, values };
}

/** int64 indices (little-endian) as int32: -1 or in [0, cols), else an error naming the row. */
function widenIndices(a: ArraySource, raw: Uint8Array, out: Int32Array, firstRow: number, k: number, cols: number): void {
  const w = new Uint32Array(raw.buffer, raw.byteOffset, 2 * out.length);
  for (let e = 0; e < out.length; e++) {
    const lo = w[2 * e];
    const hi = w[2 * e + 1];
    if (hi === 0 && lo < cols) out[e] = lo;
    else if (hi === 0xffffffff && lo === 0xffffffff) out[e] = -1;
    else throw outOfRange(a, firstRow + Math.floor(e / k), new BigInt64Array(raw.buffer, raw.byteOffset + 8 * e, 1)[0], cols);
  }
}

function outOfRange(a: ArraySource, row: number, v: number | bigint, cols: number): FileError {
  return arrayError(a, `row ${row}: index ${v} out of range [0, ${cols}) (-1 marks an unused slot; the student has ${cols} classes)`);
}

/** The library's checks of the entries, with the file and the row in it (see the module comment). */
function checkEntries(s: SparseSource, indices: Int32Array, values: Float32Array | Float64Array, firstRow: number, n: number, cols: number, seen: Uint8Array): void {
  const k = s.settings.k;
  const logprobs = s.settings.kind === 'logprobs';
  for (let r = 0; r < n; r++) {
    const o = r * k;
    let sum = 0;
    let bad: FileError | null = null;
    for (let e = o; e < o + k && bad === null; e++) {
      const i = indices[e];
      if (i === -1) continue;
      if (i < 0 || i >= cols) bad = outOfRange(s.indices.array, firstRow + r, i, cols);
      else if (seen[i] !== 0) bad = arrayError(s.indices.array, `row ${firstRow + r}: index ${i} appears more than once`);
      else {
        seen[i] = 1;
        if (logprobs) {
          const v = values[e];
          if (v > LOGPROB_SLACK) {
            bad = arrayError(s.values.array, `row ${firstRow + r}: value ${v} of index ${i} is not a log-probability (expected <= 0 with --teacher-kind logprobs)`);
          }
          sum += Math.exp(v);
        }
      }
    }
    for (let e = o; e < o + k; e++) if (indices[e] >= 0 && indices[e] < cols) seen[indices[e]] = 0;
    if (bad !== null) throw bad;
    if (sum > 1 + LOGPROB_SLACK) {
      throw arrayError(
        s.values.array,
        `row ${firstRow + r}: its probabilities (e^value) add up to ${sum}, more than 1 (--teacher-kind logprobs takes log-probabilities over the whole vocabulary)`,
      );
    }
  }
}
