/**
 * Typed errors of kdloss. Every failure the library reports is a {@link KdError} subclass with a stable
 * `code`, in the style of Node's own errors (`err.code === 'ERR_KD_SHAPE'`).
 * @module
 */

/** Stable error codes. */
export type KdErrorCode = 'ERR_KD_CONFIG' | 'ERR_KD_SHAPE' | 'ERR_KD_INPUT' | 'ERR_KD_NATIVE';

/** Base class of every error kdloss throws. */
export class KdError extends Error {
  /** Stable machine-readable code. */
  readonly code: KdErrorCode;

  /**
   * @param code stable error code
   * @param message human-readable message naming the argument and expected vs actual value
   */
  constructor(code: KdErrorCode, message: string) {
    super(message);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Invalid configuration: a temperature, alpha, weight, norm, beta or option out of its domain. */
export class ConfigError extends KdError {
  /** @param message names the option and the accepted range */
  constructor(message: string) {
    super('ERR_KD_CONFIG', message);
  }
}

/** Shapes that do not fit: zero rows or columns, wrong data length, mismatched inputs. */
export class ShapeError extends KdError {
  /** @param message names the argument, the expected and the actual shape */
  constructor(message: string) {
    super('ERR_KD_SHAPE', message);
  }
}

/** Invalid input values or types: wrong types, mixed dtypes, ragged arrays, bad class indices. */
export class InputError extends KdError {
  /** @param message names the argument and what was wrong with it */
  constructor(message: string) {
    super('ERR_KD_INPUT', message);
  }
}

/** The native addon is unavailable or failed to load (the js backend still works). */
export class NativeError extends KdError {
  /** @param message why the addon could not be used */
  constructor(message: string) {
    super('ERR_KD_NATIVE', message);
  }
}

/** Re-throws an error from the native addon as the matching typed error; other errors pass through. */
export function fromNative(err: unknown): never {
  const e = err as { code?: unknown; message?: string };
  switch (e?.code) {
    case 'ERR_KD_CONFIG':
      throw new ConfigError(String(e.message));
    case 'ERR_KD_SHAPE':
      throw new ShapeError(String(e.message));
    case 'ERR_KD_INPUT':
      throw new InputError(String(e.message));
    default:
      throw err;
  }
}

/** An async computation was aborted through its AbortSignal. `cause` is the signal's reason. */
export class AbortError extends Error {
  /** Node's code for aborted operations. */
  readonly code = 'ABORT_ERR';

  /** @param reason the signal's abort reason */
  constructor(reason?: unknown) {
    super('The operation was aborted', reason === undefined ? undefined : { cause: reason });
    this.name = 'AbortError';
  }
}
