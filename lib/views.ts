/**
 * Typed-array facts read the way the runtime itself reads them: brand checks that a Proxy or an
 * object made with `Object.create(Float32Array.prototype)` cannot pass, and the `%TypedArray%`
 * prototype getters captured when kdloss loads, so an own `length` or `buffer` property defined on a
 * caller's array cannot lie to the validation.
 * @module
 */
import { types } from 'util';

const TypedArrayPrototype = Object.getPrototypeOf(Uint8Array.prototype) as object;

function getter(name: string): (this: unknown) => unknown {
  const d = Object.getOwnPropertyDescriptor(TypedArrayPrototype, name);
  if (d?.get === undefined) throw new Error(`kdloss: %TypedArray%.prototype.${name} has no getter`);
  return d.get;
}

const lengthGetter = getter('length');
const bufferGetter = getter('buffer');
const byteOffsetGetter = getter('byteOffset');
const byteLengthGetter = getter('byteLength');

/** Any typed array (not a DataView, not a Proxy of one). */
export type View = Float32Array | Float64Array | Int32Array | Uint32Array | Uint8Array;

/** True for a genuine Float32Array. */
export const isFloat32Array = types.isFloat32Array as (v: unknown) => v is Float32Array;
/** True for a genuine Float64Array. */
export const isFloat64Array = types.isFloat64Array as (v: unknown) => v is Float64Array;
/** True for a genuine Int32Array. */
export const isInt32Array = types.isInt32Array as (v: unknown) => v is Int32Array;
/** True for a genuine Uint32Array. */
export const isUint32Array = types.isUint32Array as (v: unknown) => v is Uint32Array;
/** True for a genuine Uint8Array. */
export const isUint8Array = types.isUint8Array as (v: unknown) => v is Uint8Array;

/** Element count of a genuine typed array (0 once its buffer is detached). */
export function lengthOf(v: View): number {
  return lengthGetter.call(v) as number;
}

/** The ArrayBuffer or SharedArrayBuffer under a genuine typed array. */
export function bufferOf(v: View): ArrayBufferLike {
  return bufferGetter.call(v) as ArrayBufferLike;
}

/** Byte range [begin, end) of a genuine typed array within its buffer. */
export function byteRangeOf(v: View): [number, number] {
  const begin = byteOffsetGetter.call(v) as number;
  return [begin, begin + (byteLengthGetter.call(v) as number)];
}

/** Whether a genuine typed array's buffer has been detached (transferred). */
export function isDetached(v: View): boolean {
  // A view on a detached buffer has length 0; only then is the buffer looked at (reading `buffer`
  // materialises the buffer of a small on-heap array: too slow for every input of every call).
  if (lengthOf(v) !== 0) return false;
  const buf = bufferOf(v) as ArrayBuffer & { detached?: boolean };
  if (typeof buf.detached === 'boolean') return buf.detached;
  if ((buf as ArrayBuffer).byteLength !== 0) return false;
  try {
    new Uint8Array(buf); // throws for a detached buffer (runtimes without ArrayBuffer#detached)
    return false;
  } catch {
    return true;
  }
}
