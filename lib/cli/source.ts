/**
 * Where `kdloss eval` reads its inputs from: a file holding one array, read in whole rows into the
 * caller's buffers. Every file format (today .npy) is opened through `openSource` (formats.ts) and
 * read through {@link RowSource}, so the chunk reader and the checks above it do not know the format.
 * @module
 */
import type { FileIdentity } from './output';

/** Element types a source may hold. */
export type ElementType = 'float32' | 'float64' | 'int8' | 'int16' | 'int32' | 'int64' | 'uint8' | 'uint16' | 'uint32' | 'uint64';

/** One array in a file, read in whole rows. */
export interface RowSource {
  /** The file as given on the command line (for messages). */
  readonly file: string;
  /** The element type of the data as stored. */
  readonly dtype: ElementType;
  /** The on-disk type as the format names it, for messages: "'<f4' (float32)". */
  readonly typeName: string;
  /** Bytes per element as stored. */
  readonly itemsize: number;
  /** The array's shape as stored. */
  readonly shape: readonly number[];
  /** Rows: the first axis. */
  readonly rows: number;
  /** Elements per row: the product of the remaining axes (1 for a 1-D array). */
  readonly rowElements: number;
  /** Bytes per row: rowElements * itemsize. */
  readonly rowBytes: number;
  /** The open file's device and inode: an output must never be this file. */
  readonly identity: FileIdentity;
  /**
   * Reads rows [row, row + n) into `dst` (at least n * rowBytes bytes), as stored (little-endian).
   * @throws FileError when the file cannot be read or ends early
   */
  readRows(row: number, n: number, dst: Uint8Array): Promise<void>;
  /** Closes the file (idempotent). */
  close(): Promise<void>;
}
