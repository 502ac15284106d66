/**
 * Options shared by the losses' `forward` methods.
 * @module
 */
import { ConfigError, InputError, ShapeError } from './errors';
import { checkAttached } from './matrix';

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

/** Validates an options argument (undefined means no options). */
export function optionsOf<O extends object>(v: O | undefined, name = 'options'): O {
  if (v === undefined) return {} as O;
  if (typeof v !== 'object' || v === null) throw new InputError(`${name}: expected an object`);
  return v;
}

/** Validates a per-row mask: a Uint8Array with one entry per row (0 leaves the row out). */
export function maskOf(v: unknown, rows: number): Uint8Array | null {
  if (v === undefined || v === null) return null;
  if (!(v instanceof Uint8Array)) throw new InputError('mask: expected a Uint8Array with one entry per row');
  checkAttached(v, 'mask');
  if (v.length !== rows) throw new ShapeError(`mask: expected length ${rows}, got ${v.length}`);
  return v;
}
