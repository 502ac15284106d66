/**
 * Labels as the library takes them: each row's class index in [0, cols), or the ignore index, from
 * integer class indices of any width or from one-hot float rows (16-bit ones compared bit by bit).
 * @module
 */
import { arrayError } from './formats';
import type { RowSource } from './source';

/** The bits of 1.0 in the 16-bit formats; 0 is 0x0000 or 0x8000 (-0) in both. */
const ONE_16: Record<string, number> = { float16: 0x3c00, bfloat16: 0x3f80 };

/**
 * Converts a chunk of raw labels to class indices in [0, cols), leaving labels equal to
 * `ignoreIndex` (an int32, or null for none) as they are.
 * @param firstRow the chunk's first row in the file, for messages
 * @throws FileError naming the file and the (absolute) row of the first bad label
 */
export function convertLabels(
  source: RowSource,
  raw: Uint8Array,
  n: number,
  cols: number,
  firstRow: number,
  out: Int32Array,
  ignoreIndex: number | null,
): void {
  const a = source.array;
  const ignoreNote = ignoreIndex === null ? '' : ` and not the ignore index ${ignoreIndex}`;
  const bad = (r: number, v: string | number | bigint): never => {
    throw arrayError(a, `row ${firstRow + r}: class index ${v} out of range [0, ${cols})${ignoreNote} (the logits have ${cols} classes)`);
  };
  const skip = ignoreIndex ?? NaN;
  const buf = raw.buffer as ArrayBuffer;
  const off = raw.byteOffset;
  switch (a.dtype) {
    case 'int8':
    case 'uint8':
    case 'int16':
    case 'uint16':
    case 'int32':
    case 'uint32': {
      const Ctor = { int8: Int8Array, uint8: Uint8Array, int16: Int16Array, uint16: Uint16Array, int32: Int32Array, uint32: Uint32Array }[a.dtype];
      const v = new Ctor(buf, off, n);
      for (let r = 0; r < n; r++) {
        const c = v[r];
        if (c >= 0 && c < cols) out[r] = c;
        else if (c === skip) out[r] = c;
        else bad(r, c);
      }
      return;
    }
    case 'int64':
    case 'uint64': {
      // Little-endian 64-bit values as (low, high) 32-bit halves: an int32 when the high half is the
      // sign extension of the low one.
      const w = new Uint32Array(buf, off, 2 * n);
      const signed = a.dtype === 'int64';
      for (let r = 0; r < n; r++) {
        const lo = w[2 * r];
        const hi = w[2 * r + 1];
        const c = hi === 0 ? lo : signed && hi === 0xffffffff && lo >= 0x80000000 ? lo - 0x100000000 : NaN;
        if (c >= 0 && c < cols) out[r] = c;
        else if (c === skip) out[r] = c;
        else bad(r, signed ? new BigInt64Array(buf, off + 8 * r, 1)[0] : new BigUint64Array(buf, off + 8 * r, 1)[0]);
      }
      return;
    }
    case 'float16':
    case 'bfloat16':
    case 'float32':
    case 'float64': {
      const sixteen = a.dtype === 'float16' || a.dtype === 'bfloat16';
      const v = sixteen
        ? new Uint16Array(buf, off, n * cols)
        : a.dtype === 'float32'
          ? new Float32Array(buf, off, n * cols)
          : new Float64Array(buf, off, n * cols);
      const one = sixteen ? ONE_16[a.dtype] : 1;
      for (let r = 0; r < n; r++) {
        const o = r * cols;
        let hot = -1;
        for (let j = 0; j < cols; j++) {
          const x = v[o + j];
          if (x === one && hot < 0) hot = j;
          else if (sixteen ? (x & 0x7fff) !== 0 : x !== 0) {
            hot = -2;
            break;
          }
        }
        if (hot < 0) throw arrayError(a, `row ${firstRow + r} is not one-hot (float labels must be rows of zeros with a single 1)`);
        out[r] = hot;
      }
      return;
    }
    default:
      throw arrayError(a, `unsupported dtype ${a.typeName} for labels`);
  }
}
