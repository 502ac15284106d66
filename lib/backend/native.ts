/**
 * The native backend: hands validated jobs to the N-API addon (found and loaded by ./load).
 * @module
 */
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
  /** `io` layout: see {@link KdIo}; the results are written to its last three slots. */
  kd(
    student: unknown,
    teacher: unknown,
    targets: unknown,
    mask: unknown,
    rowSoft: unknown,
    rowHard: unknown,
    grad: unknown,
    argmax: unknown,
    io: Float64Array,
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

/** Calls the addon, converting its coded errors to typed ones. */
function guarded<R>(call: () => R): R {
  try {
    return call();
  } catch (err) {
    return fromNative(err);
  }
}

/** An async handle whose promise rejects with typed errors; `done` runs first when the call succeeds. */
function asyncHandle(raw: RawHandle, done?: () => void): AsyncHandle {
  const promise = done === undefined ? raw.promise : raw.promise.then((v) => (done(), v));
  return { promise: promise.catch(fromNative), cancel: raw.cancel };
}

/**
 * Slots of the addon's kd `io` buffer (native/addon/addon.cc documents the same layout): the shape,
 * settings and thread count travel in one Float64Array because every N-API value costs the binding a
 * call of its own, and a small distillation call is latency-bound; the sums come back in it too.
 */
const enum KdIo {
  Rows,
  Cols,
  TargetKind,
  Threads,
  Temperature,
  HardKind,
  Epsilon,
  LabelSmoothing,
  IgnoreIndex,
  GradSoftScale,
  GradHardScale,
  /** Bit k set when optional argument k (mask, rowSoft, rowHard, grad, argmax) is passed. */
  Present,
  Soft,
  Hard,
  Kept,
  Length,
}

/** Writes a job into a kd `io` buffer. */
function kdIo(job: KdJob, threads: number, io: Float64Array): Float64Array {
  io[KdIo.Rows] = job.rows;
  io[KdIo.Cols] = job.cols;
  io[KdIo.TargetKind] = job.targetKind;
  io[KdIo.Threads] = threads;
  io[KdIo.Temperature] = job.temperature;
  io[KdIo.HardKind] = job.hard;
  io[KdIo.Epsilon] = job.epsilon;
  io[KdIo.LabelSmoothing] = job.labelSmoothing;
  io[KdIo.IgnoreIndex] = job.ignoreIndex;
  io[KdIo.GradSoftScale] = job.gradSoftScale;
  io[KdIo.GradHardScale] = job.gradHardScale;
  io[KdIo.Present] =
    (job.mask !== null ? 1 : 0) |
    (job.rowSoft !== null ? 2 : 0) |
    (job.rowHard !== null ? 4 : 0) |
    (job.grad !== null ? 8 : 0) |
    (job.argmax !== null ? 16 : 0);
  return io;
}

/** Copies the sums of a finished kd call from its `io` buffer into `out` ([soft, hard, kept]). */
function kdResults(io: Float64Array, out: Float64Array): void {
  out[0] = io[KdIo.Soft];
  out[1] = io[KdIo.Hard];
  out[2] = io[KdIo.Kept];
}

/** Wraps a loaded addon as a backend. */
export function nativeBackend(addon: Addon): Backend {
  // Sync calls reuse one io buffer (read and written before the call returns); async calls get their own.
  const syncIo = new Float64Array(KdIo.Length);
  const kd = (job: KdJob, io: Float64Array, async: boolean) =>
    addon.kd(job.student, job.teacher, job.targets, job.mask, job.rowSoft, job.rowHard, job.grad, job.argmax, io, async);
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
        kd(job, kdIo(job, threads, syncIo), false);
      } catch (err) {
        fromNative(err);
      }
      kdResults(syncIo, out);
    },
    feature: (job, sums, threads) => void feature(job, sums, threads, false),
    attention: (job, threads) => attention(job, threads, false) as number,
    kdAsync: (job, out, threads) => {
      const io = kdIo(job, threads, new Float64Array(KdIo.Length));
      return asyncHandle(guarded(() => kd(job, io, true)) as RawHandle, () => kdResults(io, out));
    },
    featureAsync: (job, sums, threads) => asyncHandle(feature(job, sums, threads, true) as RawHandle),
    attentionAsync: (job, threads) => asyncHandle(attention(job, threads, true) as RawHandle),
  };
}
