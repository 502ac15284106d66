/**
 * The chunks of rows `kdloss eval` reads from its inputs (inputs.ts): rows of the student and teacher
 * logits and of the optional labels, read chunk by chunk into two preallocated buffer sets, the next
 * chunk being read while the caller works on the current one. Memory is bounded by the two sets
 * whatever the file size.
 * @module
 */
import { constants as bufferConstants } from 'buffer';
import * as os from 'os';
import { CliError, FileError } from './errors';
import type { EvalInputs } from './inputs';
import { convertLabels } from './labels';
import type { LogitsType } from './source';

export { closeInputs, type EvalInputs, type InputFiles, type LabelsKind, openInputs } from './inputs';

/** Logits as read: 16-bit formats as their raw bits. */
export type LogitsArray = Float32Array | Float64Array | Uint16Array;

/** A buffer for `n` logits of `dtype`. */
export function allocLogits(dtype: LogitsType, n: number): LogitsArray {
  return dtype === 'float64' ? new Float64Array(n) : dtype === 'float32' ? new Float32Array(n) : new Uint16Array(n);
}

/** One chunk of rows in the reader's buffers: valid until the caller asks for the next chunk. */
export interface Chunk {
  /** The chunk's first row in the files. */
  row: number;
  rows: number;
  student: LogitsArray;
  teacher: LogitsArray;
  /** Class indices in [0, cols), or the ignore index (null without labels). */
  labels: Int32Array | null;
}

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** One set of chunk buffers. */
interface BufferSet {
  student: LogitsArray;
  teacher: LogitsArray;
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
  const logits = 2 * rows * inputs.cols * inputs.student.array.itemsize;
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
    const file = cols > MAX_ARRAY_LENGTH ? student.array.file : labels!.array.file;
    throw new FileError(
      file,
      `rows of ${cols} classes are too wide: kdloss reads whole rows, and one array holds at most ${MAX_ARRAY_LENGTH} ${cols > MAX_ARRAY_LENGTH ? 'elements' : 'bytes'}`,
    );
  }
  const what = `chunks of ${chunkRows} rows x ${cols} classes (${dtype}${labels ? `, ${labels.array.dtype} labels` : ''})`;
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
        : `${student.array.file}: rows of ${cols} classes (${dtype}) need ${fmtBytes(need)} of buffers for one row of each input, twice, more than this machine's memory (${fmtBytes(memory)})`,
    );
  }
}

/** What a {@link ChunkReader} reads. */
export interface ChunkOptions {
  /** Whether `chunkRows` came from --chunk-rows (for messages; default true). */
  given?: boolean;
  /** The rows read: [start, end) (default: every row). */
  start?: number;
  end?: number;
  /** Labels left as they are (null: none). */
  ignoreIndex?: number | null;
}

/** Reads the inputs in chunks of `chunkRows` rows, double-buffered (see the module comment). */
export class ChunkReader {
  private readonly sets: [BufferSet, BufferSet];
  private readonly start: number;
  private readonly end: number;
  private readonly ignoreIndex: number | null;

  /**
   * Allocates the two buffer sets.
   * @throws FileError / CliError when chunks of `chunkRows` rows cannot be held (see {@link checkChunkSize})
   */
  constructor(
    private readonly inputs: EvalInputs,
    readonly chunkRows: number,
    options: ChunkOptions = {},
  ) {
    const given = options.given ?? true;
    this.start = options.start ?? 0;
    this.end = options.end ?? inputs.rows;
    this.ignoreIndex = options.ignoreIndex ?? null;
    checkChunkSize(inputs, chunkRows, given);
    const make = (): BufferSet => ({
      student: allocLogits(inputs.dtype, chunkRows * inputs.cols),
      teacher: allocLogits(inputs.dtype, chunkRows * inputs.cols),
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
          : `${inputs.student.array.file}: the chunk buffers (${need}) could not be allocated`,
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
    if (labels) convertLabels(labels, set.labelsRaw!, n, cols, row, set.labels!, this.ignoreIndex);
    return {
      row,
      rows: n,
      student: set.student.subarray(0, n * cols),
      teacher: set.teacher.subarray(0, n * cols),
      labels: set.labels ? set.labels.subarray(0, n) : null,
    };
  }

  /**
   * The chunks of the rows in order. While the caller works on a chunk, the next one is read into the
   * other buffer set; asking for the next chunk hands the current one's buffers back.
   * @throws FileError when a file cannot be read or holds a bad label (at the chunk that has it)
   */
  async *chunks(): AsyncGenerator<Chunk> {
    const end = this.end;
    const next = (row: number, set: BufferSet): Promise<Chunk> | null => {
      if (row >= end) return null;
      const p = this.read(set, row, Math.min(this.chunkRows, end - row));
      p.catch(() => undefined); // handled when awaited; not an unhandled rejection while the caller computes
      return p;
    };
    let cur = 0;
    let pending = next(this.start, this.sets[0]);
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
