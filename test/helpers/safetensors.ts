// Writing safetensors files for the CLI tests, independently of lib/cli/safetensors.ts: tensors of
// any dtype laid out one after another, an optional __metadata__, and hand-made headers (any text,
// any length field) for the error and fuzz tests. Also the 16-bit formats: rounding float32 values to
// float16 / bfloat16 bits (to nearest even) and widening them back exactly.
import * as fs from 'fs';

export type StDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'U16' | 'U32' | 'U64' | 'BOOL' | 'F8_E4M3';

export interface StTensor {
  dtype: StDtype;
  shape: number[];
  /** The raw little-endian data (any typed array; its bytes are written as they are). */
  data: ArrayBufferView;
}

function bytes(a: ArrayBufferView): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** The 8-byte length and the header text, padded with spaces to a multiple of 8 bytes as the reference writer does. */
export function headerBytes(json: string, length?: bigint): Buffer {
  const text = Buffer.from(json, 'utf8');
  const padded = Buffer.concat([text, Buffer.alloc((8 - (text.length % 8)) % 8, 0x20)]);
  const n = Buffer.alloc(8);
  n.writeBigUInt64LE(length ?? BigInt(padded.length));
  return Buffer.concat([n, padded]);
}

/** The header JSON and data of `tensors` laid out in order. */
export function layout(tensors: Record<string, StTensor>, metadata?: Record<string, string>): { json: string; data: Buffer } {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  const parts: Buffer[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const b = bytes(t.data);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + b.length] };
    parts.push(b);
    offset += b.length;
  }
  return { json: JSON.stringify(header), data: Buffer.concat(parts) };
}

/** The bytes of a safetensors file holding `tensors`. */
export function safetensorsBytes(tensors: Record<string, StTensor>, metadata?: Record<string, string>): Buffer {
  const { json, data } = layout(tensors, metadata);
  return Buffer.concat([headerBytes(json), data]);
}

/** Writes a safetensors file holding `tensors`; returns `file`. */
export function writeSafetensors(file: string, tensors: Record<string, StTensor>, metadata?: Record<string, string>): string {
  fs.writeFileSync(file, safetensorsBytes(tensors, metadata));
  return file;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 bits of `x` rounded to bfloat16 (nearest even; NaN stays NaN). */
export function toBf16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0];
  if (Number.isNaN(f32[0])) return (b >>> 16) | 0x40;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/** float16 bits of `x` rounded to nearest even (overflow to infinity, subnormals kept). */
export function toF16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const man = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (man ? 0x200 : 0);
  const v = Math.abs(f32[0]);
  if (v >= 65520) return sign | 0x7c00;
  if (v < 2 ** -14) {
    // Subnormal: units of 2^-24, rounded to nearest even.
    const units = v * 2 ** 24;
    let q = Math.floor(units);
    const rest = units - q;
    if (rest > 0.5 || (rest === 0.5 && q % 2 === 1)) q++;
    return sign | q;
  }
  const e = exp - 127 + 15;
  let m = man >>> 13;
  const rest = man & 0x1fff;
  let h = (e << 10) | m;
  if (rest > 0x1000 || (rest === 0x1000 && (m & 1) === 1)) h++;
  m = h;
  return sign | m;
}

/** The float32 value of bfloat16 bits (exact). */
export function fromBf16Bits(h: number): number {
  u32[0] = h << 16;
  return f32[0];
}

/** The float32 value of float16 bits (exact). */
export function fromF16Bits(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** A float matrix in a 16-bit format: its bits and the exactly widened float32 values. */
export function toHalf(data: ArrayLike<number>, dtype: 'float16' | 'bfloat16'): { bits: Uint16Array; widened: Float32Array } {
  const bits = Uint16Array.from(data, dtype === 'float16' ? toF16Bits : toBf16Bits);
  const widened = Float32Array.from(bits, dtype === 'float16' ? fromF16Bits : fromBf16Bits);
  return { bits, widened };
}
