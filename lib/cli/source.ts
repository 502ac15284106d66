/**
 * Where `kdloss eval` reads its inputs from. A file ({@link InputFile}: a .npy file or a safetensors
 * file, see formats.ts) holds one or more arrays ({@link ArraySource}: a dtype, a shape and a byte
 * range read on demand). The evaluation reads an array as rows ({@link RowSource}): the leading axes
 * flattened into rows, the trailing ones into a row (logits: the last axis is the classes; labels:
 * one element per row). The chunk reader and the checks above it know rows only, not the format.
 *
 * A sparse teacher (top-k indices and values, issue 19) is two arrays of shape [..., k] read as rows
 * of k elements: from one safetensors file (`indices` and `values`) or two .npy files, through the
 * same {@link InputFile.arrays} and {@link rowsOf}.
 * @module
 */
import type { FileIdentity } from './output';

/** Element types kdloss reads. */
export type ElementType =
  | 'float16'
  | 'bfloat16'
  | 'float32'
  | 'float64'
  | 'int8'
  | 'int16'
  | 'int32'
  | 'int64'
  | 'uint8'
  | 'uint16'
  | 'uint32'
  | 'uint64';

/** The logits' element types. */
export type LogitsType = 'float16' | 'bfloat16' | 'float32' | 'float64';

/** Whether `t` is one of the logits' element types. */
export function isFloatType(t: ElementType | null): t is LogitsType {
  return t === 'float16' || t === 'bfloat16' || t === 'float32' || t === 'float64';
}

/** The container formats. */
export type FileFormat = 'npy' | 'safetensors';

/** One array in a file. */
export interface ArraySource {
  /** The file as given on the command line (for messages). */
  readonly file: string;
  readonly format: FileFormat;
  /** The array's name in a file of several (a safetensors tensor); null for a .npy file. */
  readonly key: string | null;
  /** The element type as stored; null for one kdloss does not read (its name in {@link typeName}). */
  readonly dtype: ElementType | null;
  /** The on-disk type as the format names it, for messages: "'<f4' (float32)", "BF16 (bfloat16)". */
  readonly typeName: string;
  /** Bytes per element as stored (0 for a type kdloss does not read). */
  readonly itemsize: number;
  readonly shape: readonly number[];
  /** Elements: the product of the shape. */
  readonly size: number;
  /** The open file's device and inode: an output must never be this file. */
  readonly identity: FileIdentity;
  /**
   * Reads bytes [offset, offset + dst.length) of the array's data, as stored (little-endian).
   * @throws FileError when the file cannot be read or ends early
   */
  read(offset: number, dst: Uint8Array): Promise<void>;
}

/** An open input file and the arrays it holds. */
export interface InputFile {
  readonly file: string;
  readonly format: FileFormat;
  readonly identity: FileIdentity;
  /** The file's size in bytes. */
  readonly size: number;
  /** Its arrays, in the file's order (one, unnamed, for a .npy file). */
  readonly arrays: readonly ArraySource[];
  /** A cheap fingerprint of the content (see fileio.ts), to tell runs over other data apart. */
  fingerprint(): Promise<string>;
  /** Closes the file (idempotent). */
  close(): Promise<void>;
}

/** An array read in whole rows. */
export interface RowSource {
  readonly array: ArraySource;
  /** Rows: the product of the leading axes. */
  readonly rows: number;
  /** Elements per row: the product of the trailing axes. */
  readonly rowElements: number;
  /** Bytes per row: rowElements * itemsize. */
  readonly rowBytes: number;
  /**
   * Reads rows [row, row + n) into `dst` (at least n * rowBytes bytes), as stored.
   * @throws FileError when the file cannot be read or ends early
   */
  readRows(row: number, n: number, dst: Uint8Array): Promise<void>;
}

/** `array` read as rows of `rowElements` elements (which must divide its size). */
export function rowsOf(array: ArraySource, rowElements: number): RowSource {
  if (rowElements <= 0 || array.size % rowElements !== 0) throw new Error(`rows of ${rowElements} elements do not divide ${array.size}`);
  const rowBytes = rowElements * array.itemsize;
  return {
    array,
    rows: array.size / rowElements,
    rowElements,
    rowBytes,
    readRows: (row, n, dst) => array.read(row * rowBytes, dst.subarray(0, n * rowBytes)),
  };
}

/** How an array is named in messages: the file, and the tensor in a file of several. */
export function arrayName(a: ArraySource): string {
  return a.key === null ? a.file : `${a.file} [${a.key}]`;
}
