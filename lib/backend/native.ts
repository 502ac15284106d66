/**
 * The native backend: hands validated jobs to the N-API addon (build/Release/kdloss.node).
 * @module
 */
import * as path from 'path';
import { fromNative } from '../errors';
import type { AsyncHandle, AttentionJob, Backend, FeatureJob, KdJob } from './types';

/** What the addon reports about its kernels. */
export interface NativeInfo {
  /** The kernel variant in use: 'scalar', 'avx2', 'avx512' or 'neon'. */
  isa: string;
  /** Variants compiled into this build, best first. */
  compiled: string[];
  /** What this CPU and OS support. */
  capabilities: { avx2: boolean; avx512: boolean; neon: boolean };
}

/** What an async addon call returns. */
interface RawHandle {
  promise: Promise<number>;
  cancel(): void;
}

/**
 * The raw addon surface (see native/addon/addon.cc). Every compute call ends with `threads` and an
 * `async` flag; async calls return a {@link RawHandle}.
 */
export interface Addon {
  kd(
    student: unknown,
    teacher: unknown,
    rows: number,
    cols: number,
    targets: unknown,
    targetKind: number,
    mask: unknown,
    params: Float64Array,
    rowSoft: unknown,
    rowHard: unknown,
    grad: unknown,
    out: Float64Array,
    argmax: Int32Array | null,
    threads: number,
    async: boolean,
  ): RawHandle | undefined;
  feature(
    rows: number,
    p: number,
    students: unknown[],
    teachers: unknown[],
    cols: Float64Array,
    rowWeights: Float64Array,
    rowOut: unknown,
    grads: unknown[] | null,
    gradScales: Float64Array | null,
    layerSums: Float64Array,
    threads: number,
    async: boolean,
  ): RawHandle | undefined;
  attention(
    student: unknown,
    teacher: unknown,
    rows: number,
    cols: number,
    beta: number,
    rowOut: unknown,
    grad: unknown,
    gradScale: number,
    threads: number,
    async: boolean,
  ): RawHandle | number;
  info(): NativeInfo;
  /** Element-wise exp/log into output, or the sum of input ('sum'; output ignored). */
  vecmath(op: 'exp' | 'log' | 'sum', input: Float32Array | Float64Array, output: Float32Array | Float64Array | null): number | undefined;
}

/** Path of the addon: KDLOSS_ADDON if set, else the node-gyp build next to the package. */
export function addonPath(): string {
  return process.env.KDLOSS_ADDON || path.join(__dirname, '..', '..', 'build', 'Release', 'kdloss.node');
}

/** Loads the addon; throws whatever loading throws (missing file, unusable KDLOSS_ISA, ...). */
export function loadAddon(): Addon {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(addonPath()) as Addon;
}

/** Calls the addon, converting its coded errors to typed ones. */
function guarded<R>(call: () => R): R {
  try {
    return call();
  } catch (err) {
    return fromNative(err);
  }
}

/** An async handle whose promise rejects with typed errors. */
function asyncHandle(raw: RawHandle): AsyncHandle {
  return { promise: raw.promise.catch(fromNative), cancel: raw.cancel };
}

/** Writes a job's scalar settings into the addon's `params` layout. */
function kdParams(job: KdJob, params: Float64Array): Float64Array {
  params[0] = job.temperature;
  params[1] = job.hard;
  params[2] = job.epsilon;
  params[3] = job.labelSmoothing;
  params[4] = job.ignoreIndex;
  params[5] = job.gradSoftScale;
  params[6] = job.gradHardScale;
  return params;
}

/** Wraps a loaded addon as a backend. */
export function nativeBackend(addon: Addon): Backend {
  // Sync calls reuse one params buffer (the addon reads it before returning); async calls get their own.
  const syncParams = new Float64Array(7);
  const kd = (job: KdJob, out: Float64Array, threads: number, params: Float64Array, async: boolean) =>
    addon.kd(
      job.student,
      job.teacher,
      job.rows,
      job.cols,
      job.targets,
      job.targetKind,
      job.mask,
      kdParams(job, params),
      job.rowSoft,
      job.rowHard,
      job.grad,
      out,
      job.argmax,
      threads,
      async,
    );
  const feature = (job: FeatureJob, layerSums: Float64Array, threads: number, async: boolean) =>
    guarded(() =>
      addon.feature(
        job.rows,
        job.p,
        job.students,
        job.teachers,
        job.cols,
        job.rowWeights,
        job.rowOut,
        job.grads,
        job.gradScales,
        layerSums,
        threads,
        async,
      ),
    );
  const attention = (job: AttentionJob, threads: number, async: boolean) =>
    guarded(() =>
      addon.attention(job.student, job.teacher, job.rows, job.cols, job.beta, job.rowOut, job.grad, job.gradScale, threads, async),
    );
  return {
    name: 'native',
    // The sync kd call is the latency-critical one: a plain try/catch, no closure per call.
    kd: (job, out, threads) => {
      try {
        kd(job, out, threads, syncParams, false);
      } catch (err) {
        fromNative(err);
      }
    },
    feature: (job, sums, threads) => void feature(job, sums, threads, false),
    attention: (job, threads) => attention(job, threads, false) as number,
    kdAsync: (job, out, threads) => asyncHandle(guarded(() => kd(job, out, threads, new Float64Array(7), true)) as RawHandle),
    featureAsync: (job, sums, threads) => asyncHandle(feature(job, sums, threads, true) as RawHandle),
    attentionAsync: (job, threads) => asyncHandle(attention(job, threads, true) as RawHandle),
  };
}
