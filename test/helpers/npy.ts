// Writing and reading NumPy .npy files for the CLI tests, independently of lib/cli/npy.ts: headers of
// format versions 1.0, 2.0 and 3.0, any descr (also invalid ones, to test the errors), and large files
// written block by block.
import * as fs from 'fs';

export type NpyVersion = 1 | 2 | 3;

/** Options of {@link npyHeader}. */
export interface HeaderOptions {
  version?: NpyVersion;
  fortranOrder?: boolean;
  /** Replaces the whole header dict text (for malformed headers). */
  dict?: string;
  /** Extra text at the end of the dict, e.g. a v3 UTF-8 comment key. */
  extra?: string;
}

/** A Python tuple literal for a shape. */
export function pyShape(shape: readonly number[]): string {
  return shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
}

/** The magic, version, header length and header dict, padded to a multiple of 64 bytes as numpy does. */
export function npyHeader(descr: string, shape: readonly number[], opts: HeaderOptions = {}): Buffer {
  const version = opts.version ?? 1;
  const dict =
    opts.dict ?? `{'descr': '${descr}', 'fortran_order': ${opts.fortranOrder ? 'True' : 'False'}, 'shape': ${pyShape(shape)}, ${opts.extra ?? ''}}`;
  const body = Buffer.from(dict, version === 3 ? 'utf8' : 'latin1');
  const prefix = version === 1 ? 10 : 12;
  const total = Math.ceil((prefix + body.length + 1) / 64) * 64;
  const out = Buffer.alloc(total, 0x20);
  out.write('\x93NUMPY', 0, 'latin1');
  out[6] = version;
  out[7] = 0;
  if (version === 1) out.writeUInt16LE(total - prefix, 8);
  else out.writeUInt32LE(total - prefix, 8);
  body.copy(out, prefix);
  out[total - 1] = 0x0a;
  return out;
}

/** The descr numpy writes for a typed array. */
export function descrOf(a: ArrayBufferView): string {
  if (a instanceof Float32Array) return '<f4';
  if (a instanceof Float64Array) return '<f8';
  if (a instanceof Int32Array) return '<i4';
  if (a instanceof Uint32Array) return '<u4';
  if (a instanceof BigInt64Array) return '<i8';
  if (a instanceof Int16Array) return '<i2';
  if (a instanceof Uint8Array) return '|u1';
  if (a instanceof Int8Array) return '|i1';
  throw new Error('descrOf: unsupported array');
}

function bytes(a: ArrayBufferView): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** Writes `data` with `shape` (the descr from the array type unless given). */
export function writeNpy(
  file: string,
  data: ArrayBufferView,
  shape: readonly number[],
  opts: HeaderOptions & { descr?: string; truncateBy?: number } = {},
): void {
  const header = npyHeader(opts.descr ?? descrOf(data), shape, opts);
  const body = bytes(data);
  fs.writeFileSync(file, Buffer.concat([header, body.subarray(0, body.length - (opts.truncateBy ?? 0))]));
}

/** Writes a matrix { data, rows, cols }. */
export function writeMatrix(file: string, m: { data: Float32Array | Float64Array; rows: number; cols: number }, opts: HeaderOptions = {}): void {
  writeNpy(file, m.data, [m.rows, m.cols], opts);
}

/** Class indices as int64 (numpy's default integer dtype). */
export function toInt64(classes: ArrayLike<number>): BigInt64Array {
  return BigInt64Array.from(Array.from(classes, (c) => BigInt(c)));
}

/**
 * Writes a large file as `repeats` copies of `block` (rows of the same shape), never holding more
 * than the block in memory. `shape` is the whole file's shape.
 */
export function writeRepeated(file: string, block: ArrayBufferView, shape: readonly number[], repeats: number): void {
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, npyHeader(descrOf(block), shape));
    const b = bytes(block);
    for (let i = 0; i < repeats; i++) fs.writeSync(fd, b);
  } finally {
    fs.closeSync(fd);
  }
}

/** A parsed .npy file (little-endian, C order only). */
export interface NpyArray {
  descr: string;
  shape: number[];
  data: Float32Array | Float64Array | Int32Array | BigInt64Array;
}

/** Reads a .npy file written by numpy, kdloss or this helper. */
export function readNpy(file: string): NpyArray {
  const buf = fs.readFileSync(file);
  if (buf.subarray(0, 6).toString('latin1') !== '\x93NUMPY') throw new Error(`${file}: bad magic`);
  const major = buf[6];
  const len = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.subarray(start, start + len).toString('latin1');
  const descr = /'descr':\s*'([^']+)'/.exec(header)![1];
  const shape = /'shape':\s*\(([^)]*)\)/
    .exec(header)![1]
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map(Number);
  if (/'fortran_order':\s*True/.test(header)) throw new Error(`${file}: Fortran order`);
  const offset = start + len;
  const raw = buf.subarray(offset);
  const copy = new ArrayBuffer(raw.length);
  new Uint8Array(copy).set(raw);
  const Ctor = ({ '<f4': Float32Array, '<f8': Float64Array, '<i4': Int32Array, '<i8': BigInt64Array } as const)[descr as '<f4'];
  if (!Ctor) throw new Error(`${file}: unsupported descr ${descr}`);
  return { descr, shape, data: new Ctor(copy) };
}
