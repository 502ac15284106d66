/**
 * Options shared by the losses' `forward` methods.
 * @module
 */
import * as os from 'os';
import { ReductionCode } from './backend/types';
import { ConfigError, InputError, ShapeError } from './errors';
import { checkAttached } from './matrix';
import { isUint8Array, lengthOf } from './views';

/**
 * How per-row losses are reduced: 'mean' (default; for distillation the mean over kept rows, PyTorch's
 * `batchmean`), 'sum', or 'none' (per-row values in `perSample`; `loss` is then the mean).
 */
export type Reduction = 'mean' | 'sum' | 'none';

/** Validates a reduction option. */
export function reductionOf(v: unknown): Reduction {
  if (v === undefined) return 'mean';
  if (v === 'mean' || v === 'sum' || v === 'none') return v;
  throw new ConfigError(`reduction: expected 'mean', 'sum' or 'none', got ${String(v)}`);
}

/** What an omitted options argument reads as; shared (and frozen) so calls without options allocate nothing. */
const NO_OPTIONS = Object.freeze({});

/** Validates an options argument (undefined means no options). */
export function optionsOf<O extends object>(v: O | undefined, name = 'options'): O {
  if (v === undefined) return NO_OPTIONS as O;
  if (typeof v !== 'object' || v === null) throw new InputError(`${name}: expected an object`);
  return v;
}

/** The backends' code of a reduction. */
export function reductionCode(r: Reduction): ReductionCode {
  return r === 'sum' ? ReductionCode.Sum : r === 'none' ? ReductionCode.None : ReductionCode.Mean;
}

/** Validates a per-row mask: a Uint8Array with one entry per row (0 leaves the row out). */
export function maskOf(v: unknown, rows: number): Uint8Array | null {
  if (v === undefined || v === null) return null;
  if (!isUint8Array(v)) throw new InputError('mask: expected a Uint8Array with one entry per row');
  checkAttached(v, 'mask');
  const n = lengthOf(v);
  if (n !== rows) throw new ShapeError(`mask: expected length ${rows}, got ${n}`);
  return v;
}

/** Options every async method accepts besides its sync options. */
export interface AsyncOptions {
  /** Aborting rejects the promise with an {@link AbortError} and stops the work between row blocks. */
  signal?: AbortSignal;
  /** Threads for this call (default for async calls: the core count, capped so small inputs are not split). */
  threads?: number;
}

/** Elements per thread below which the default thread count does not split the work further. */
export const MIN_ELEMENTS_PER_THREAD = 1 << 17;

function cores(): number {
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}

/** The default thread count for `elements` elements: all cores, capped for small inputs. */
export function defaultThreads(elements: number): number {
  return Math.max(1, Math.min(cores(), Math.floor(elements / MIN_ELEMENTS_PER_THREAD)));
}

/**
 * Validates a `threads` option. Sync calls default to 1 thread, async calls to
 * {@link defaultThreads}. An explicit count is used as given (results do not depend on it).
 */
export function threadsOf(v: unknown, elements: number, async: boolean): number {
  if (v === undefined) return async ? defaultThreads(elements) : 1;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 1024) {
    throw new ConfigError(`threads: expected an integer in [1, 1024], got ${String(v)}`);
  }
  return v;
}

/** Validates an AbortSignal option. */
export function signalOf(v: unknown): AbortSignal | undefined {
  if (v === undefined) return undefined;
  if (!(v instanceof AbortSignal)) throw new InputError('signal: expected an AbortSignal');
  return v;
}
