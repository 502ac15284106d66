/**
 * safetensors files (the format Hugging Face writes): an 8-byte little-endian header length N, N
 * bytes of UTF-8 JSON `{ name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__"?:
 * { string: string } }`, then the tensors' raw little-endian row-major data, offsets relative to the
 * end of the header. Everything in the header is checked before any data is read: the length (within
 * the file and at most {@link MAX_HEADER} bytes, the reference implementation's limit), the text
 * (UTF-8, a JSON object, no duplicate keys, bounded nesting), every entry (a known dtype, a shape of
 * non-negative integers, two integer offsets, nothing else), each tensor's byte length against its
 * shape and dtype, and the data region covered exactly by the tensors, none overlapping another.
 * @module
 */
import type { promises as fsp, Stats } from 'fs';
import * as os from 'os';
import { FileError } from './errors';
import { fingerprint, readFully } from './fileio';
import type { FileIdentity } from './output';
import type { ArraySource, ElementType, InputFile } from './source';
import { JsonSyntaxError, type JsonValue, kindOf, parseStrictJson, truncate } from './strict-json';

/** The largest header accepted (bytes): the reference implementation's limit. */
export const MAX_HEADER = 100_000_000;

/** Tensor names in messages are cut to this many characters. */
const NAME_MAX = 80;

interface DtypeInfo {
  bits: number;
  /** The element type kdloss reads it as (null: one kdloss does not read). */
  dtype: ElementType | null;
  /** A readable name for messages. */
  name: string;
}

/** The dtypes of the format (safetensors' Dtype enum). */
const DTYPES = new Map<string, DtypeInfo>([
  ['BOOL', { bits: 8, dtype: null, name: 'bool' }],
  ['U8', { bits: 8, dtype: 'uint8', name: 'uint8' }],
  ['I8', { bits: 8, dtype: 'int8', name: 'int8' }],
  ['F8_E5M2', { bits: 8, dtype: null, name: 'float8 e5m2' }],
  ['F8_E4M3', { bits: 8, dtype: null, name: 'float8 e4m3' }],
  ['F8_E8M0', { bits: 8, dtype: null, name: 'float8 e8m0' }],
  ['F4', { bits: 4, dtype: null, name: 'float4 e2m1' }],
  ['F6_E2M3', { bits: 6, dtype: null, name: 'float6 e2m3' }],
  ['F6_E3M2', { bits: 6, dtype: null, name: 'float6 e3m2' }],
  ['I16', { bits: 16, dtype: 'int16', name: 'int16' }],
  ['U16', { bits: 16, dtype: 'uint16', name: 'uint16' }],
  ['F16', { bits: 16, dtype: 'float16', name: 'float16' }],
  ['BF16', { bits: 16, dtype: 'bfloat16', name: 'bfloat16' }],
  ['I32', { bits: 32, dtype: 'int32', name: 'int32' }],
  ['U32', { bits: 32, dtype: 'uint32', name: 'uint32' }],
  ['F32', { bits: 32, dtype: 'float32', name: 'float32' }],
  ['C64', { bits: 64, dtype: null, name: 'complex64' }],
  ['F64', { bits: 64, dtype: 'float64', name: 'float64' }],
  ['I64', { bits: 64, dtype: 'int64', name: 'int64' }],
  ['U64', { bits: 64, dtype: 'uint64', name: 'uint64' }],
]);

/** One tensor of a parsed header. */
export interface TensorInfo {
  name: string;
  /** The dtype as the file names it ('BF16'). */
  dtypeName: string;
  dtype: ElementType | null;
  itemsize: number;
  shape: number[];
  size: number;
  /** Byte range in the data region. */
  begin: number;
  end: number;
}

/** A parsed and checked header. */
export interface SafetensorsHeader {
  /** Bytes before the data: 8 + the header's length. */
  dataStart: number;
  /** The tensors in the header's order. */
  tensors: TensorInfo[];
  metadata: Map<string, string> | null;
}

/** A tensor's name as messages quote it (escaped by the caller, cut here). */
export function quoteName(name: string): string {
  return `'${truncate(name, NAME_MAX)}'`;
}

/** "[1, 2]" for messages. */
function listStr(v: readonly number[]): string {
  return `[${v.join(', ')}]`;
}

/** Whether a file's first bytes may be a safetensors header: a JSON object after the 8-byte length. */
export function looksLikeSafetensors(prefix: Uint8Array): boolean {
  return prefix.length >= 9 && prefix[8] === 0x7b; // '{'
}

/** A non-negative integer from the header, or an error naming `what`. */
function nonNegativeInt(v: JsonValue, bad: (problem: string) => never, what: string): number {
  if (typeof v !== 'number' || v < 0 || Object.is(v, -0)) {
    bad(`${what}: expected a non-negative integer, got ${kindOf(v)}`);
  }
  return v as number;
}

/** Checks one tensor entry. */
function tensorInfo(name: string, entry: JsonValue, dataLength: number, file: string): TensorInfo {
  const bad = (problem: string): never => {
    throw new FileError(file, `safetensors header: tensor ${quoteName(name)}: ${problem}`);
  };
  if (!(entry instanceof Map)) return bad(`expected an object { dtype, shape, data_offsets }, got ${kindOf(entry)}`);
  for (const k of entry.keys()) {
    if (k !== 'dtype' && k !== 'shape' && k !== 'data_offsets') bad(`unknown key ${quoteName(k)} (expected dtype, shape and data_offsets)`);
  }
  for (const k of ['dtype', 'shape', 'data_offsets']) if (!entry.has(k)) bad(`no '${k}'`);
  const dtypeName = entry.get('dtype')!;
  if (typeof dtypeName !== 'string') return bad(`dtype: expected a string, got ${kindOf(dtypeName)}`);
  const info = DTYPES.get(dtypeName);
  if (info === undefined) return bad(`unknown dtype ${quoteName(dtypeName)} (expected one of ${[...DTYPES.keys()].join(', ')})`);
  const shapeV = entry.get('shape')!;
  if (!Array.isArray(shapeV)) return bad(`shape: expected an array of non-negative integers, got ${kindOf(shapeV)}`);
  const shape = shapeV.map((d, i) => nonNegativeInt(d, bad, `shape[${i}]`));
  let size = 1;
  for (const d of shape) size *= d;
  if (!Number.isSafeInteger(size * info.bits)) return bad(`shape ${listStr(shape)} is too large`);
  const offsets = entry.get('data_offsets')!;
  if (!Array.isArray(offsets) || offsets.length !== 2) {
    return bad(`data_offsets: expected [begin, end], got ${Array.isArray(offsets) ? `${offsets.length} values` : kindOf(offsets)}`);
  }
  const begin = nonNegativeInt(offsets[0], bad, 'data_offsets[0]');
  const end = nonNegativeInt(offsets[1], bad, 'data_offsets[1]');
  if (end < begin) bad(`data_offsets ${listStr([begin, end])} end before they begin`);
  if (end > dataLength) {
    bad(`data_offsets ${listStr([begin, end])} run past the end of the data (${dataLength} bytes after the header): truncated file or bad offsets`);
  }
  if ((size * info.bits) % 8 !== 0) bad(`shape ${listStr(shape)} of ${dtypeName} is not a whole number of bytes`);
  const bytes = (size * info.bits) / 8;
  if (end - begin !== bytes) {
    bad(`data_offsets ${listStr([begin, end])} hold ${end - begin} bytes, but shape ${listStr(shape)} of ${dtypeName} needs ${bytes}`);
  }
  return { name, dtypeName, dtype: info.dtype, itemsize: info.bits / 8, shape, size, begin, end };
}

/** Checks that the tensors cover [0, dataLength) exactly, none overlapping another. */
function checkLayout(tensors: TensorInfo[], dataLength: number, file: string): void {
  const bad = (problem: string): never => {
    throw new FileError(file, `safetensors header: ${problem}`);
  };
  const sorted = [...tensors].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  let last: TensorInfo | null = null;
  for (const t of sorted) {
    if (t.begin < pos) {
      bad(`tensors ${quoteName(last!.name)} ${listStr([last!.begin, last!.end])} and ${quoteName(t.name)} ${listStr([t.begin, t.end])} overlap`);
    }
    if (t.begin > pos) bad(`bytes ${listStr([pos, t.begin])} of the data belong to no tensor`);
    pos = t.end;
    last = t;
  }
  if (pos < dataLength) bad(`${dataLength - pos} bytes after the last tensor's data belong to no tensor`);
}

/**
 * Parses and checks a header.
 * @param header the N header bytes
 * @param dataLength bytes after the header
 * @throws FileError naming the file and the problem
 */
export function parseSafetensorsHeader(header: Uint8Array, dataLength: number, file: string): SafetensorsHeader {
  const bad = (problem: string): never => {
    throw new FileError(file, `safetensors header: ${problem}`);
  };
  if (header[0] !== 0x7b) bad("does not start with '{'");
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(header);
  } catch {
    return bad('not valid UTF-8');
  }
  let root: JsonValue;
  try {
    root = parseStrictJson(text);
  } catch (err) {
    if (err instanceof JsonSyntaxError) return bad(`not valid JSON: ${err.message}`);
    throw err;
  }
  if (!(root instanceof Map)) return bad(`expected a JSON object, got ${kindOf(root)}`);
  const tensors: TensorInfo[] = [];
  let metadata: Map<string, string> | null = null;
  for (const [name, entry] of root) {
    if (name === '__metadata__') {
      if (entry === null) continue;
      if (!(entry instanceof Map)) return bad(`__metadata__: expected an object of strings, got ${kindOf(entry)}`);
      for (const [k, v] of entry) if (typeof v !== 'string') bad(`__metadata__ ${quoteName(k)}: expected a string, got ${kindOf(v)}`);
      metadata = entry as Map<string, string>;
      continue;
    }
    tensors.push(tensorInfo(name, entry, dataLength, file));
  }
  checkLayout(tensors, dataLength, file);
  return { dataStart: 8 + header.length, tensors, metadata };
}

/** An open safetensors file. */
export class SafetensorsFile implements InputFile {
  readonly format = 'safetensors';
  readonly arrays: readonly ArraySource[];

  private constructor(
    readonly file: string,
    private readonly fh: fsp.FileHandle,
    readonly header: SafetensorsHeader,
    readonly identity: FileIdentity,
    readonly size: number,
  ) {
    const { dataStart } = header;
    this.arrays = header.tensors.map((t) => ({
      file,
      format: 'safetensors' as const,
      key: t.name,
      dtype: t.dtype,
      typeName: `${t.dtypeName} (${DTYPES.get(t.dtypeName)!.name})`,
      itemsize: t.itemsize,
      shape: t.shape,
      size: t.size,
      identity,
      read: (offset: number, dst: Uint8Array) => readFully(fh, dst, dataStart + t.begin + offset, file),
    }));
  }

  /**
   * Reads and checks the header of an open file.
   * @throws FileError naming the file and the problem
   */
  static async open(file: string, fh: fsp.FileHandle, st: Stats): Promise<SafetensorsFile> {
    const bad = (problem: string): never => {
      throw new FileError(file, problem);
    };
    if (st.size < 8) bad(`truncated safetensors file: ${st.size} bytes, and the header length alone takes 8`);
    const prefix = Buffer.alloc(8);
    await readFully(fh, prefix, 0, file);
    const n = prefix.readBigUInt64LE(0);
    if (n > BigInt(MAX_HEADER)) bad(`safetensors header length ${n} is larger than the ${MAX_HEADER} bytes allowed`);
    const length = Number(n);
    if (length > st.size - 8) bad(`safetensors header length ${length} runs past the end of the file (${st.size} bytes)`);
    if (length < 2) bad(`safetensors header length ${length} is too small for a JSON object`);
    if (os.endianness() !== 'LE') bad('safetensors data is little-endian, and this host is big-endian');
    const header = Buffer.alloc(length);
    await readFully(fh, header, 8, file);
    const parsed = parseSafetensorsHeader(header, st.size - 8 - length, file);
    return new SafetensorsFile(file, fh, parsed, { dev: st.dev, ino: st.ino }, st.size);
  }

  fingerprint(): Promise<string> {
    return fingerprint(this.fh, this.size, this.file);
  }

  async close(): Promise<void> {
    await this.fh.close().catch(() => undefined);
  }
}
