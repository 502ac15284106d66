/**
 * The inputs of `kdloss eval` and the chunks of rows read from them: the student and teacher logits
 * and the optional labels are opened and checked against each other, then read chunk by chunk into
 * two preallocated buffer sets, the next chunk being read while the caller works on the current one.
 * Memory is bounded by the two sets whatever the file size.
 * @module
 */
import { constants as bufferConstants } from 'buffer';
import * as os from 'os';
import { allocFloat, type DType, type FloatArray } from '../matrix';
import { CliError, FileError } from './errors';
import { shapeStr } from './npy';
import { openSource } from './formats';
import type { RowSource } from './source';

/** 'indices' (1-D integers) or 'one-hot' (a float matrix of the logits' shape). */
export type LabelsKind = 'indices' | 'one-hot';

/** The files of an evaluation, as given on the command line. */
export interface InputFiles {
  student: string;
  teacher: string;
  labels?: string;
}

/** The opened and checked inputs of an evaluation. */
export interface EvalInputs {
  student: RowSource;
  teacher: RowSource;
  labels: RowSource | null;
  rows: number;
  cols: number;
  dtype: DType;
  labelsKind: LabelsKind | null;
}

/** One chunk of rows in the reader's buffers: valid until the caller asks for the next chunk. */
export interface Chunk {
  /** The chunk's first row in the files. */
  row: number;
  rows: number;
  student: FloatArray;
  teacher: FloatArray;
  /** Class indices in [0, cols) (null without labels). */
  labels: Int32Array | null;
}

/** Checks the logits' headers: 2-D float, non-empty, student and teacher alike. */
function checkLogits(student: RowSource, teacher: RowSource): { rows: number; cols: number; dtype: DType } {
  for (const r of [student, teacher]) {
    if (r.dtype !== 'float32' && r.dtype !== 'float64') {
      throw new FileError(r.file, `unsupported dtype ${r.typeName} for logits (expected float32 or float64)`);
    }
    if (r.shape.length !== 2) throw new FileError(r.file, `expected a 2-D array of logits (rows, classes), got shape ${shapeStr(r.shape)}`);
    if (r.shape[0] === 0) throw new FileError(r.file, `no rows (shape ${shapeStr(r.shape)})`);
    if (r.shape[1] === 0) throw new FileError(r.file, `no classes (shape ${shapeStr(r.shape)})`);
  }
  const [sr, sc] = student.shape;
  const [tr, tc] = teacher.shape;
  if (student.dtype !== teacher.dtype) {
    throw new CliError(
      `${teacher.file}: dtype ${teacher.dtype} does not match ${student.file} (${student.dtype}); student and teacher logits must share a dtype`,
    );
  }
  if (tr !== sr) throw new CliError(`${teacher.file}: ${tr} rows, but ${student.file} has ${sr} rows`);
  if (tc !== sc) throw new CliError(`${teacher.file}: ${tc} classes, but ${student.file} has ${sc} classes`);
  return { rows: sr, cols: sc, dtype: student.dtype as DType };
}

/** Checks the labels' header against the logits; returns the kind of labels. */
function checkLabels(labels: RowSource, student: RowSource, rows: number, cols: number): LabelsKind {
  const shape = labels.shape;
  if (labels.dtype === 'float32' || labels.dtype === 'float64') {
    if (shape.length !== 2) {
      throw new FileError(labels.file, `float labels must be a one-hot matrix (rows, classes), got shape ${shapeStr(shape)}`);
    }
    if (shape[0] !== rows) throw new CliError(`${labels.file}: ${shape[0]} rows, but ${student.file} has ${rows} rows`);
    if (shape[1] !== cols) throw new CliError(`${labels.file}: ${shape[1]} classes, but ${student.file} has ${cols} classes`);
    return 'one-hot';
  }
  if (shape.length !== 1) {
    throw new FileError(labels.file, `integer labels must be 1-D class indices, got shape ${shapeStr(shape)}`);
  }
  if (shape[0] !== rows) throw new CliError(`${labels.file}: ${shape[0]} labels, but ${student.file} has ${rows} rows`);
  return 'indices';
}

/**
 * Opens the inputs and checks them against each other.
 * @throws FileError / CliError for a bad file or a mismatch (the files opened so far are closed)
 */
export async function openInputs(files: InputFiles): Promise<EvalInputs> {
  const opened: RowSource[] = [];
  try {
    const student = await openSource(files.student);
    opened.push(student);
    const teacher = await openSource(files.teacher);
    opened.push(teacher);
    const labels = files.labels !== undefined ? await openSource(files.labels) : null;
    if (labels) opened.push(labels);
    const { rows, cols, dtype } = checkLogits(student, teacher);
    const labelsKind = labels ? checkLabels(labels, student, rows, cols) : null;
    return { student, teacher, labels, rows, cols, dtype, labelsKind };
  } catch (err) {
    await Promise.all(opened.map((s) => s.close()));
    throw err;
  }
}

/** Closes every input file. */
export async function closeInputs(inputs: EvalInputs): Promise<void> {
  await Promise.all([inputs.student.close(), inputs.teacher.close(), inputs.labels?.close()]);
}

/**
 * Converts a chunk of raw labels to class indices in [0, cols).
 * @throws FileError naming the file and the (absolute) row of the first bad label
 */
function convertLabels(source: RowSource, raw: Uint8Array, n: number, cols: number, firstRow: number, out: Int32Array): void {
  const file = source.file;
  const bad = (r: number, v: string | number | bigint): never => {
    throw new FileError(file, `row ${firstRow + r}: class index ${v} out of range [0, ${cols}) (the logits have ${cols} classes)`);
  };
  const buf = raw.buffer as ArrayBuffer;
  const off = raw.byteOffset;
  switch (source.dtype) {
    case 'int8':
    case 'uint8':
    case 'int16':
    case 'uint16':
    case 'int32':
    case 'uint32': {
      const Ctor = { int8: Int8Array, uint8: Uint8Array, int16: Int16Array, uint16: Uint16Array, int32: Int32Array, uint32: Uint32Array }[source.dtype];
      const v = new Ctor(buf, off, n);
      for (let r = 0; r < n; r++) {
        const c = v[r];
        if (c < 0 || c >= cols) bad(r, c);
        out[r] = c;
      }
      return;
    }
    case 'int64':
    case 'uint64': {
      // Little-endian 64-bit values as (low, high) 32-bit halves: in range iff high == 0 and low < cols.
      const w = new Uint32Array(buf, off, 2 * n);
      for (let r = 0; r < n; r++) {
        const lo = w[2 * r];
        if (w[2 * r + 1] !== 0 || lo >= cols) {
          const big = source.dtype === 'int64' ? new BigInt64Array(buf, off + 8 * r, 1)[0] : new BigUint64Array(buf, off + 8 * r, 1)[0];
          bad(r, big);
        }
        out[r] = lo;
      }
      return;
    }
    case 'float32':
    case 'float64': {
      const v = source.dtype === 'float32' ? new Float32Array(buf, off, n * cols) : new Float64Array(buf, off, n * cols);
      for (let r = 0; r < n; r++) {
        const o = r * cols;
        let hot = -1;
        for (let j = 0; j < cols; j++) {
          const x = v[o + j];
          if (x === 1 && hot < 0) hot = j;
          else if (x !== 0) {
            hot = -2;
            break;
          }
        }
        if (hot < 0) {
          throw new FileError(file, `row ${firstRow + r} is not one-hot (float labels must be rows of zeros with a single 1)`);
        }
        out[r] = hot;
      }
      return;
    }
  }
}

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** One set of chunk buffers. */
interface BufferSet {
  student: FloatArray;
  teacher: FloatArray;
  /** Raw label bytes (null without labels). */
  labelsRaw: Uint8Array | null;
  labels: Int32Array | null;
}

/** The most elements (of any type) one typed array holds in this runtime. */
export const MAX_ARRAY_LENGTH = bufferConstants.MAX_LENGTH;

/** Bytes as '1.2 GB' / '340 MB' for messages. */
function fmtBytes(b: number): string {
  return b >= 1e9 ? `${(b / 1e9).toFixed(1)} GB` : `${Math.max(1, Math.round(b / 1e6))} MB`;
}

/** The bytes the two buffer sets of `rows`-row chunks take. */
function chunkBytes(inputs: EvalInputs, rows: number): number {
  const logits = 2 * rows * inputs.cols * inputs.student.itemsize;
  const labels = inputs.labels ? rows * (inputs.labels.rowBytes + 4) : 0;
  return 2 * (logits + labels);
}

/**
 * Checks that chunks of `chunkRows` rows fit: every buffer within one typed array, both buffer sets
 * within this machine's memory.
 * @param given whether `chunkRows` came from --chunk-rows (else it is the default, one row at least)
 * @throws FileError for a row too wide for one array; CliError for chunks too large, saying how to lower them
 */
function checkChunkSize(inputs: EvalInputs, chunkRows: number, given: boolean): void {
  const { student, labels, cols, dtype } = inputs;
  // Elements of the largest array of one row: the logits, or the raw bytes of a one-hot label row.
  const rowLength = Math.max(cols, labels ? labels.rowBytes : 0);
  if (rowLength > MAX_ARRAY_LENGTH) {
    const file = cols > MAX_ARRAY_LENGTH ? student.file : labels!.file;
    throw new FileError(
      file,
      `rows of ${cols} classes are too wide: kdloss reads whole rows, and one array holds at most ${MAX_ARRAY_LENGTH} ${cols > MAX_ARRAY_LENGTH ? 'elements' : 'bytes'}`,
    );
  }
  const what = `chunks of ${chunkRows} rows x ${cols} classes (${dtype}${labels ? `, ${labels.dtype} labels` : ''})`;
  const maxRows = Math.max(1, Math.floor(MAX_ARRAY_LENGTH / rowLength));
  if (chunkRows > maxRows) {
    throw new CliError(
      `--chunk-rows ${chunkRows}: ${what} need arrays of ${chunkRows * rowLength} elements, more than one array holds (${MAX_ARRAY_LENGTH}); use --chunk-rows ${maxRows} or fewer`,
    );
  }
  const need = chunkBytes(inputs, chunkRows);
  const memory = os.totalmem();
  if (need > memory) {
    const fit = Math.floor(memory / chunkBytes(inputs, 1));
    throw new CliError(
      given
        ? `--chunk-rows ${chunkRows}: ${what} need ${fmtBytes(need)} of buffers (two sets of the inputs' rows), more than this machine's memory (${fmtBytes(memory)}); use --chunk-rows ${Math.max(1, Math.floor(fit / 2))} or fewer`
        : `${student.file}: rows of ${cols} classes (${dtype}) need ${fmtBytes(need)} of buffers for one row of each input, twice, more than this machine's memory (${fmtBytes(memory)})`,
    );
  }
}

/** Reads the inputs in chunks of `chunkRows` rows, double-buffered (see the module comment). */
export class ChunkReader {
  private readonly sets: [BufferSet, BufferSet];

  /**
   * Allocates the two buffer sets.
   * @param given whether `chunkRows` came from --chunk-rows (for messages)
   * @throws FileError / CliError when chunks of `chunkRows` rows cannot be held (see {@link checkChunkSize})
   */
  constructor(
    private readonly inputs: EvalInputs,
    readonly chunkRows: number,
    given = true,
  ) {
    checkChunkSize(inputs, chunkRows, given);
    const make = (): BufferSet => ({
      student: allocFloat(inputs.dtype, chunkRows * inputs.cols),
      teacher: allocFloat(inputs.dtype, chunkRows * inputs.cols),
      labelsRaw: inputs.labels ? new Uint8Array(chunkRows * inputs.labels.rowBytes) : null,
      labels: inputs.labels ? new Int32Array(chunkRows) : null,
    });
    try {
      this.sets = [make(), make()];
    } catch (err) {
      if (!(err instanceof RangeError)) throw err;
      const need = fmtBytes(chunkBytes(inputs, chunkRows));
      throw new CliError(
        given
          ? `--chunk-rows ${chunkRows}: the chunk buffers (${need}) could not be allocated; use a smaller --chunk-rows`
          : `${inputs.student.file}: the chunk buffers (${need}) could not be allocated`,
      );
    }
  }

  /** Reads rows [row, row + n) into `set`. */
  private async read(set: BufferSet, row: number, n: number): Promise<Chunk> {
    const { student, teacher, labels, cols } = this.inputs;
    await Promise.all([
      student.readRows(row, n, bytesOf(set.student)),
      teacher.readRows(row, n, bytesOf(set.teacher)),
      labels ? labels.readRows(row, n, set.labelsRaw!) : undefined,
    ]);
    if (labels) convertLabels(labels, set.labelsRaw!, n, cols, row, set.labels!);
    return {
      row,
      rows: n,
      student: set.student.subarray(0, n * cols),
      teacher: set.teacher.subarray(0, n * cols),
      labels: set.labels ? set.labels.subarray(0, n) : null,
    };
  }

  /**
   * The chunks of every row in order. While the caller works on a chunk, the next one is read into the
   * other buffer set; asking for the next chunk hands the current one's buffers back.
   * @throws FileError when a file cannot be read or holds a bad label (at the chunk that has it)
   */
  async *chunks(): AsyncGenerator<Chunk> {
    const rows = this.inputs.rows;
    const next = (row: number, set: BufferSet): Promise<Chunk> | null => {
      if (row >= rows) return null;
      const p = this.read(set, row, Math.min(this.chunkRows, rows - row));
      p.catch(() => undefined); // handled when awaited; not an unhandled rejection while the caller computes
      return p;
    };
    let cur = 0;
    let pending = next(0, this.sets[0]);
    try {
      while (pending !== null) {
        const chunk = await pending;
        cur = 1 - cur;
        pending = next(chunk.row + chunk.rows, this.sets[cur]);
        yield chunk;
      }
    } finally {
      // Stopped early: let the read in flight finish before the caller closes the files.
      await pending?.catch(() => undefined);
    }
  }
}
