/**
 * The one shape of a prepared call, shared by every loss: `prepare` validates the arguments (reading
 * each once) into a {@link Call}; {@link runSync} and {@link runAsync} run its job on the current
 * backend and hand back `finish()`, which turns the backend's sums into the loss's result.
 * @module
 */
import { backend } from './backend';
import type { Job } from './backend/types';
import { AbortError } from './errors';

/**
 * Async calls of at most this many elements are computed on the calling thread (a few microseconds)
 * instead of being sent to the thread pool, whose round trip costs more than the work.
 */
export const INLINE_ELEMENTS = 1 << 14;

/** A validated call: its job, how to run it, and how to read its result. */
export abstract class Call<R> {
  /**
   * @param job the backend job
   * @param threads threads to run it on
   * @param elements its size, which decides whether an async call is worth the thread pool
   * @param results where the backend writes the job's sums
   * @param signal aborts an async call
   */
  constructor(
    readonly job: Job,
    readonly threads: number,
    readonly elements: number,
    readonly results: Float64Array,
    readonly signal: AbortSignal | undefined,
  ) {}

  /** The result, from the job's outputs and `results`. */
  abstract finish(): R;
}

/** Runs a call now. */
export function runSync<R>(call: Call<R>): R {
  backend().run(call.job, call.threads, call.results);
  return call.finish();
}

/**
 * Runs a call off the main thread (small ones inline). When its signal aborts, the work is cancelled
 * and the promise rejects with an {@link AbortError} once no thread touches the call's buffers any
 * more; a signal already aborted rejects before any work starts.
 */
export async function runAsync<R>(call: Call<R>): Promise<R> {
  const { signal } = call;
  if (signal?.aborted) throw new AbortError(signal.reason);
  if (call.elements <= INLINE_ELEMENTS) return runSync(call);
  const handle = backend().runAsync(call.job, call.threads, call.results);
  if (signal === undefined) {
    await handle.promise;
    return call.finish();
  }
  let aborted = false;
  const onAbort = (): void => {
    aborted = true;
    handle.cancel();
  };
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    await handle.promise;
  } catch (err) {
    if (!aborted) throw err;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
  if (aborted) throw new AbortError(signal.reason);
  return call.finish();
}
