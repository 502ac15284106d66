/**
 * The chunks of rows `kdloss eval` reads from its inputs (inputs.ts): rows of the student and teacher
 * logits (or of a sparse teacher's entries, sparse-teacher.ts) and of the optional labels, read chunk by chunk into two preallocated buffer sets, the next
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
import { allocSparse, readSparse, type SparseBuffers, type SparseChunk, sparseRowBytes } from './sparse-teacher';

export { closeInputs, type EvalInputs, type InputFiles, type LabelsKind, openInputs } from './inputs';

/** Logits as read: 16-bit formats as their raw bits. */
export type LogitsArray = Float32Array | Float64Array | Uint16Array;

/** `n` logits of `dtype` over `buffer` from byte `offset` (a new buffer when none is given). */
export function allocLogits(dtype: LogitsType, n: number, buffer?: ArrayBuffer, offset = 0): LogitsArray {
  const Ctor = dtype === 'float64' ? Float64Array : dtype === 'float32' ? Float32Array : Uint16Array;
  return buffer === undefined ? new Ctor(n) : new Ctor(buffer, offset, n);
}

/**
 * Rows are placed so that every row's address modulo {@link ROW_ALIGN} is that of its row index times
 * the row's bytes, wherever its chunk starts: the SIMD kernels start a wide row's sweep at its first
 * vector-aligned element, so a row's rounding depends on its address modulo the vector size. Placed
 * so, a row gives the same bits in every chunking, shard and process, and merged shards equal the
 * whole run bit for bit. The logits live in a WebAssembly.Memory, whose buffer V8 allocates page
 * aligned (an ArrayBuffer's address modulo 64 is the allocator's choice); where one cannot be made
 * (larger than 4 GiB, or no WebAssembly), plain buffers keep every result correct, only no longer
 * bit-identical across chunkings for rows whose bytes are not a multiple of the vector size.
 */
export const ROW_ALIGN = 64;

/** WebAssembly's memory constructor (absent under --jitless). */
const wasm = (globalThis as { WebAssembly?: { Memory: new (d: { initial: number; maximum?: number }) => { buffer: ArrayBuffer } } }).WebAssembly;

/**
 * One buffer for the `slots` logits arrays (two sets of student and dense teacher, or of the student
 * alone), each ROW_ALIGN-aligned with room to shift.
 */
function logitsBuffer(dtype: LogitsType, elements: number, slots: number): { buffer: ArrayBuffer | undefined; stride: number } {
  const itemsize = dtype === 'float64' ? 8 : dtype === 'float32' ? 4 : 2;
  const stride = Math.ceil((elements * itemsize + ROW_ALIGN) / ROW_ALIGN) * ROW_ALIGN;
  const pages = Math.ceil((slots * stride) / 65536);
  if (wasm !== undefined && pages <= 65536) {
    try {
      return { buffer: new wasm.Memory({ initial: pages, maximum: pages }).buffer, stride };
    } catch {
      // Address space refused (ulimit -v): plain buffers below.
    }
  }
  return { buffer: undefined, stride };
}

/** One chunk of rows in the reader's buffers: valid until the caller asks for the next chunk. */
export interface Chunk {
  /** The chunk's first row in the files. */
  row: number;
  rows: number;
  student: LogitsArray;
  /** Dense teacher logits (null with a sparse teacher). */
  teacher: LogitsArray | null;
  /** A sparse teacher's entries, checked (null with a dense teacher). */
  sparse: SparseChunk | null;
  /** Class indices in [0, cols), or the ignore index (null without labels). */
  labels: Int32Array | null;
}

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** One set of chunk buffers. */
interface BufferSet {
  student: LogitsArray;
  teacher: LogitsArray | null;
  sparse: SparseBuffers | null;
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
  const logits = (inputs.teacher ? 2 : 1) * rows * inputs.cols * inputs.student.array.itemsize;
  const sparse = inputs.sparse ? rows * sparseRowBytes(inputs.sparse) : 0;
  const labels = inputs.labels ? rows * (inputs.labels.rowBytes + 4) : 0;
  return 2 * (logits + sparse + labels);
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
    const slack = ROW_ALIGN / inputs.student.array.itemsize;
    const elements = chunkRows * inputs.cols + slack;
    const { buffer, stride } = logitsBuffer(inputs.dtype, elements, inputs.teacher ? 4 : 2);
    let slot = 0;
    const logits = (): LogitsArray => allocLogits(inputs.dtype, elements, buffer, stride * slot++);
    const make = (): BufferSet => ({
      student: logits(),
      teacher: inputs.teacher ? logits() : null,
      sparse: inputs.sparse ? allocSparse(inputs.sparse, chunkRows, inputs.cols) : null,
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

  /** Reads rows [row, row + n) into `set`, placed as {@link ROW_ALIGN} says. */
  private async read(set: BufferSet, row: number, n: number): Promise<Chunk> {
    const { student, teacher, sparse, labels, cols } = this.inputs;
    const shift = ((ROW_ALIGN - ((row * student.rowBytes) % ROW_ALIGN)) % ROW_ALIGN) / student.array.itemsize;
    const s = set.student.subarray(shift, shift + n * cols);
    const t = teacher ? set.teacher!.subarray(shift, shift + n * cols) : null;
    const [, , entries] = await Promise.all([
      student.readRows(row, n, bytesOf(s)),
      teacher ? teacher.readRows(row, n, bytesOf(t!)) : undefined,
      sparse ? readSparse(sparse, set.sparse!, row, n, cols) : null,
      labels ? labels.readRows(row, n, set.labelsRaw!) : undefined,
    ]);
    if (labels) convertLabels(labels, set.labelsRaw!, n, cols, row, set.labels!, this.ignoreIndex);
    return {
      row,
      rows: n,
      student: s,
      teacher: t,
      sparse: entries,
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
