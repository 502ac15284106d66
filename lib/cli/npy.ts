/**
 * NumPy .npy files: header parsing (format versions 1.0, 2.0 and 3.0), a streaming row-chunk reader
 * over a file handle, and a streaming float64 writer. Only what `kdloss eval` needs: little-endian
 * (or byte-order-free) float16/float32/float64 and integer arrays in C order.
 *
 * Format: the magic `\x93NUMPY`, major and minor version bytes, the header length (uint16 LE in v1,
 * uint32 LE in v2 and v3), then the header: a Python dict literal
 * `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }` (latin-1 in v1/v2, UTF-8 in v3)
 * padded with spaces and a newline, then the raw data.
 * @module
 */
import { promises as fsp, type Stats } from 'fs';
import * as os from 'os';
import { FileError, fsProblem } from './errors';
import { fingerprint, readFully } from './fileio';
import { type FileIdentity, type NamedInput, OutputFile } from './output';
import type { ArraySource, ElementType, InputFile } from './source';

/** Element types the reader supports. */
export type NpyDType = ElementType;

/** A parsed .npy header. */
export interface NpyHeader {
  /** Format version [major, minor]. */
  version: [number, number];
  /** The descr string as written, e.g. '<f4'. */
  descr: string;
  dtype: NpyDType;
  /** Bytes per element. */
  itemsize: number;
  shape: number[];
  fortranOrder: boolean;
  /** Byte offset of the data. */
  dataOffset: number;
  /** Elements: the product of the shape. */
  size: number;
}

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY
/** Headers longer than this are refused (numpy writes a few hundred bytes). */
const MAX_HEADER = 1 << 20;

const KINDS: Record<string, NpyDType> = {
  f2: 'float16',
  f4: 'float32',
  f8: 'float64',
  i1: 'int8',
  i2: 'int16',
  i4: 'int32',
  i8: 'int64',
  u1: 'uint8',
  u2: 'uint16',
  u4: 'uint32',
  u8: 'uint64',
};

/** Human-readable description of a descr for messages: "'<f2' (float16)". */
function describeDescr(descr: string): string {
  const m = /^[<>=|]?([a-zA-Z])(\d+)$/.exec(descr);
  if (!m) return `'${descr}'`;
  const names: Record<string, string> = { f: 'float', i: 'int', u: 'uint', c: 'complex', b: 'bool', U: 'unicode', S: 'bytes', M: 'datetime', m: 'timedelta' };
  const kind = names[m[1]];
  if (!kind) return `'${descr}'`;
  const bits = m[1] === 'U' || m[1] === 'S' ? '' : String(Number(m[2]) * 8);
  return `'${descr}' (${kind}${bits})`;
}

// ---------------------------------------------------------------------------------------------
// The header dict: a small parser for the Python literals numpy writes.

type PyValue = string | number | boolean | null | PyValue[] | { [k: string]: PyValue };

class PyLiteralParser {
  private i = 0;

  constructor(private readonly s: string) {}

  parse(): PyValue {
    const v = this.value();
    this.ws();
    if (this.i !== this.s.length) throw new Error(`unexpected '${this.s[this.i]}' at offset ${this.i}`);
    return v;
  }

  private ws(): void {
    while (this.i < this.s.length && /\s/.test(this.s[this.i])) this.i++;
  }

  private value(): PyValue {
    this.ws();
    const c = this.s[this.i];
    if (c === undefined) throw new Error('unexpected end');
    if (c === '{') return this.dict();
    if (c === '(') return this.seq(')');
    if (c === '[') return this.seq(']');
    if (c === "'" || c === '"') return this.str();
    const m = /^(True|False|None|[+-]?\d+L?)/.exec(this.s.slice(this.i, this.i + 40));
    if (!m) throw new Error(`unexpected '${c}' at offset ${this.i}`);
    this.i += m[0].length;
    if (m[0] === 'True') return true;
    if (m[0] === 'False') return false;
    if (m[0] === 'None') return null;
    return Number(m[0].replace(/L$/, ''));
  }

  private str(): string {
    const q = this.s[this.i++];
    let out = '';
    while (this.i < this.s.length && this.s[this.i] !== q) {
      if (this.s[this.i] === '\\') this.i++;
      out += this.s[this.i++];
    }
    if (this.i >= this.s.length) throw new Error('unterminated string');
    this.i++;
    return out;
  }

  /** A tuple or list from its opening bracket to `close`. */
  private seq(close: string): PyValue[] {
    this.i++; // the opening bracket
    const out: PyValue[] = [];
    for (;;) {
      this.ws();
      if (this.s[this.i] === close) {
        this.i++;
        return out;
      }
      out.push(this.value());
      this.ws();
      if (this.s[this.i] === ',') this.i++;
      else if (this.s[this.i] !== close) throw new Error(`expected ',' or '${close}' at offset ${this.i}`);
    }
  }

  private dict(): { [k: string]: PyValue } {
    this.i++; // {
    const out: { [k: string]: PyValue } = {};
    for (;;) {
      this.ws();
      if (this.s[this.i] === '}') {
        this.i++;
        return out;
      }
      const k = this.value();
      if (typeof k !== 'string') throw new Error('dict key is not a string');
      this.ws();
      if (this.s[this.i++] !== ':') throw new Error(`expected ':' at offset ${this.i - 1}`);
      out[k] = this.value();
      this.ws();
      if (this.s[this.i] === ',') this.i++;
      else if (this.s[this.i] !== '}') throw new Error(`expected ',' or '}' at offset ${this.i}`);
    }
  }
}

/**
 * Parses the fixed prefix and header of a .npy file.
 * @param head the first bytes of the file (at least the whole header, or the whole file if shorter)
 * @param fileSize the file's size, to check the data length
 * @param file the file's name for messages
 * @throws FileError for a bad magic, version, header, dtype, byte order, order, shape or data length
 */
export function parseNpyHeader(head: Uint8Array, fileSize: number, file: string): NpyHeader {
  const buf = Buffer.from(head.buffer, head.byteOffset, head.byteLength);
  if (buf.length < MAGIC.length || !buf.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new FileError(file, fileSize === 0 ? 'empty file, not a NumPy .npy file' : 'not a NumPy .npy file (bad magic)');
  }
  if (buf.length < 8) throw new FileError(file, 'truncated .npy header');
  const major = buf[6];
  const minor = buf[7];
  if (major < 1 || major > 3) throw new FileError(file, `unsupported .npy format version ${major}.${minor} (expected 1.0, 2.0 or 3.0)`);
  const lenBytes = major === 1 ? 2 : 4;
  if (buf.length < 8 + lenBytes) throw new FileError(file, 'truncated .npy header');
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = 8 + lenBytes;
  if (headerLen > MAX_HEADER) throw new FileError(file, `.npy header of ${headerLen} bytes is too large`);
  if (start + headerLen > buf.length) throw new FileError(file, `truncated .npy header (${headerLen} bytes announced, file has ${fileSize - start})`);
  const text = buf.subarray(start, start + headerLen).toString(major === 3 ? 'utf8' : 'latin1');

  let dict: PyValue;
  try {
    dict = new PyLiteralParser(text).parse();
  } catch (err) {
    throw new FileError(file, `malformed .npy header: ${(err as Error).message}`);
  }
  if (typeof dict !== 'object' || dict === null || Array.isArray(dict)) throw new FileError(file, 'malformed .npy header: not a dict');
  for (const key of ['descr', 'fortran_order', 'shape']) {
    if (!(key in dict)) throw new FileError(file, `malformed .npy header: no '${key}' key`);
  }

  const descr = dict.descr;
  if (typeof descr !== 'string') throw new FileError(file, 'unsupported dtype: a structured array (expected float logits, or integer labels)');
  const m = /^([<>=|]?)([a-zA-Z]\d+)$/.exec(descr);
  const dtype = m ? KINDS[m[2]] : undefined;
  if (!m || dtype === undefined) {
    throw new FileError(file, `unsupported dtype ${describeDescr(descr)} (expected float16, float32 or float64, or integer labels)`);
  }
  const itemsize = Number(m[2].slice(1));
  const order = m[1];
  if (order === '>' && itemsize > 1) throw new FileError(file, `unsupported byte order: big-endian ${describeDescr(descr)} (expected little-endian '<')`);
  if (order === '=' && itemsize > 1 && os.endianness() !== 'LE') {
    throw new FileError(file, `unsupported byte order: native order ${describeDescr(descr)} on a big-endian host`);
  }

  if (typeof dict.fortran_order !== 'boolean') throw new FileError(file, "malformed .npy header: 'fortran_order' is not True or False");
  const shape = dict.shape;
  if (!Array.isArray(shape) || !shape.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)) {
    throw new FileError(file, "malformed .npy header: 'shape' is not a tuple of non-negative integers");
  }
  const dims = shape as number[];
  if (dict.fortran_order && dims.filter((d) => d !== 1).length > 1) {
    throw new FileError(file, 'Fortran (column-major) order is not supported; save a C-order array (np.ascontiguousarray)');
  }
  let size = 1;
  for (const d of dims) size *= d;
  if (!Number.isSafeInteger(size * itemsize)) throw new FileError(file, `shape ${shapeStr(dims)} is too large`);
  const dataOffset = start + headerLen;
  const expected = size * itemsize;
  const actual = fileSize - dataOffset;
  if (actual < expected) {
    throw new FileError(file, `truncated data: shape ${shapeStr(dims)} ${dtype} needs ${expected} bytes after the header, the file has ${actual}`);
  }
  if (actual > expected) {
    throw new FileError(file, `${actual - expected} unexpected bytes after the data of shape ${shapeStr(dims)} ${dtype}`);
  }
  return { version: [major, minor], descr, dtype, itemsize, shape: dims, fortranOrder: dict.fortran_order, dataOffset, size };
}

/** A shape as numpy prints it: (3, 4), (5,). */
export function shapeStr(shape: readonly number[]): string {
  return shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
}

// ---------------------------------------------------------------------------------------------
// Reading

/** An open .npy file: one array. */
export class NpyFile implements InputFile {
  readonly format = 'npy';
  readonly arrays: readonly ArraySource[];

  private constructor(
    /** The file as given on the command line. */
    readonly file: string,
    private readonly fh: fsp.FileHandle,
    readonly header: NpyHeader,
    readonly identity: FileIdentity,
    readonly size: number,
  ) {
    const dataOffset = header.dataOffset;
    this.arrays = [
      {
        file,
        format: 'npy',
        key: null,
        dtype: header.dtype,
        typeName: describeDescr(header.descr),
        itemsize: header.itemsize,
        shape: header.shape,
        size: header.size,
        identity,
        read: (offset, dst) => readFully(fh, dst, dataOffset + offset, file),
      },
    ];
  }

  /**
   * Parses the header of a file {@link openInput} found to start with the .npy magic.
   * @param prefix the file's first bytes (at least 12, or the whole file if shorter)
   * @throws FileError for every header problem
   */
  static async open(file: string, fh: fsp.FileHandle, st: Stats, prefix: Buffer): Promise<NpyFile> {
    let head: Uint8Array = prefix;
    if (prefix.length >= 10 && prefix.subarray(0, 6).equals(MAGIC)) {
      const major = prefix[6];
      const len = major === 1 ? prefix.readUInt16LE(8) : prefix.length >= 12 ? prefix.readUInt32LE(8) : 0;
      const total = Math.min(st.size, (major === 1 ? 10 : 12) + Math.min(len, MAX_HEADER + 1));
      if (total > prefix.length) {
        const full = Buffer.alloc(total);
        await readFully(fh, full, 0, file);
        head = full;
      }
    }
    return new NpyFile(file, fh, parseNpyHeader(head, st.size, file), { dev: st.dev, ino: st.ino }, st.size);
  }

  fingerprint(): Promise<string> {
    return fingerprint(this.fh, this.size, this.file);
  }

  /** Closes the file handle (idempotent). */
  async close(): Promise<void> {
    await this.fh.close().catch(() => undefined);
  }
}

/** Whether a file's first bytes are the .npy magic. */
export function isNpy(prefix: Uint8Array): boolean {
  return prefix.length >= MAGIC.length && Buffer.from(prefix.buffer, prefix.byteOffset, MAGIC.length).equals(MAGIC);
}

// ---------------------------------------------------------------------------------------------
// Writing

/**
 * A .npy header for `descr` and `shape` in C order: version 1.0 when it fits (else 2.0), padded with
 * spaces and a newline so the data starts at a multiple of 64 bytes, as numpy writes it.
 */
export function npyHeader(descr: string, shape: readonly number[]): Buffer {
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeStr(shape)}, }`;
  for (const major of [1, 2]) {
    const prefix = major === 1 ? 10 : 12;
    const unpadded = prefix + dict.length + 1;
    const total = Math.ceil(unpadded / 64) * 64;
    const headerLen = total - prefix;
    if (major === 1 && headerLen > 0xffff) continue;
    const out = Buffer.alloc(total, 0x20);
    MAGIC.copy(out, 0);
    out[6] = major;
    out[7] = 0;
    if (major === 1) out.writeUInt16LE(headerLen, 8);
    else out.writeUInt32LE(headerLen, 8);
    out.write(dict, prefix, 'latin1');
    out[total - 1] = 0x0a;
    return out;
  }
  throw new Error('unreachable');
}

/**
 * Writes a 1-D float64 .npy file of known length in pieces: the header first, then the values as
 * they come, into a temporary file renamed over the destination by {@link NpyF64Writer.close} once
 * exactly `length` values were written (see output.ts).
 */
export class NpyF64Writer {
  private written = 0;
  private position: number;
  private pending: Promise<void> = Promise.resolve();
  /** The first failed write, reported by {@link check}, {@link flush} and {@link close}. */
  private failure: FileError | null = null;

  private constructor(
    private readonly out: OutputFile,
    readonly length: number,
    headerBytes: number,
  ) {
    this.position = headerBytes;
  }

  /** The output as given on the command line. */
  get file(): string {
    return this.out.file;
  }

  /**
   * Creates the temporary file for `file` and writes the header of a float64 array of `length` values.
   * @param inputs the files `file` must not be (compared by device and inode)
   * @throws CliError / FileError when `file` is an input, not a regular file, or cannot be written
   */
  static async create(file: string, length: number, inputs: readonly NamedInput[] = [], flag = 'per-sample'): Promise<NpyF64Writer> {
    const out = await OutputFile.create(file, flag, inputs);
    const header = npyHeader('<f8', [length]);
    try {
      await out.handle.write(header, 0, header.length, 0);
    } catch (err) {
      await out.discard();
      throw new FileError(file, `cannot write: ${fsProblem(err)}`);
    }
    return new NpyF64Writer(out, length, header.length);
  }

  /**
   * Queues `values` after the previous ones. The array must not change until {@link flush} resolves;
   * writes happen in order, one at a time.
   */
  write(values: Float64Array): void {
    if (this.written + values.length > this.length) throw new Error(`${this.file}: more than ${this.length} values written`);
    this.written += values.length;
    const position = this.position;
    this.position += values.byteLength;
    const bytes = Buffer.from(values.buffer, values.byteOffset, values.byteLength);
    this.pending = this.pending.then(async () => {
      if (this.failure) return;
      let done = 0;
      while (done < bytes.length) {
        try {
          const { bytesWritten } = await this.out.handle.write(bytes, done, bytes.length - done, position + done);
          done += bytesWritten;
        } catch (err) {
          this.failure = new FileError(this.file, `write failed: ${fsProblem(err)}`);
          return;
        }
      }
    });
  }

  /** Throws the first failed write, if any (writes run in the background: call between pieces to stop early). */
  check(): void {
    if (this.failure) throw this.failure;
  }

  /** Waits for every queued write; throws the first failed one. */
  async flush(): Promise<void> {
    await this.pending;
    this.check();
  }

  /** Flushes, checks the count and renames the file into place. */
  async close(): Promise<void> {
    await this.flush();
    if (this.written !== this.length) throw new Error(`${this.file}: ${this.written} of ${this.length} values written`);
    await this.out.commit();
  }

  /** Removes the temporary file (after an error or an interruption); the destination is untouched. */
  async discard(): Promise<void> {
    await this.pending;
    await this.out.discard();
  }
}
