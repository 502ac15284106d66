/**
 * The native backend: hands validated jobs to the N-API addon in its call convention,
 * entry(params, async, ...buffers) (native/addon/layout.json, mirrored in ./layout.ts); ./load finds
 * and loads the addon.
 * @module
 */
import { types } from 'util';
import { markAsUntransferable } from 'worker_threads';
import { fromNative } from '../errors';
import type { DType } from '../matrix';
import {
  AttentionBuffer,
  AttentionSlot,
  DtypeCode,
  FeatureBuffer,
  FeatureItemBuffer,
  FeatureItemSlot,
  FeatureSlot,
  KdBuffer,
  KdSlot,
  SparseKdBuffer,
  SparseKdSlot,
} from './layout';
import type { AsyncHandle, AttentionJob, Backend, FeatureJob, Job, KdJob, SparseKdJob } from './types';

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
  promise: Promise<void>;
  cancel(): void;
}

/** A compute entry of the addon: sync calls return undefined, async calls a {@link RawHandle}. */
type Entry = (params: Float64Array, async: boolean, ...buffers: unknown[]) => RawHandle | undefined;

/** The raw addon surface (see native/addon/addon.cc). */
export interface Addon {
  kd: Entry;
  sparseKd: Entry;
  feature: Entry;
  attention: Entry;
  /** Hands the addon the helper async calls pin their buffers with (once per addon instance). */
  setup(helpers: { pin(buffer: ArrayBufferLike): boolean }): void;
  info(): NativeInfo;
  /** Element-wise exp/log into output, or the sum of input ('sum'; output ignored). */
  vecmath(op: 'exp' | 'log' | 'sum', input: Float32Array | Float64Array, output: Float32Array | Float64Array | null): number | undefined;
}

const resizable = Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, 'resizable')?.get;
/** Buffers already marked (marking costs about a microsecond; a lookup here, tens of nanoseconds). */
const marked = new WeakSet<ArrayBufferLike>();

/**
 * Makes a buffer safe for native threads to read until an async call settles, or says it cannot be.
 * A SharedArrayBuffer can be neither detached nor shrunk (a growable one only grows). A fixed-length
 * ArrayBuffer is marked untransferable, for good: from then on a transfer of it throws a
 * DataCloneError (Node >= 21) or copies it (Node 20 and older) instead of freeing it under the call. A
 * resizable ArrayBuffer could be shrunk, which unmaps its memory: refused.
 */
function pin(buffer: ArrayBufferLike): boolean {
  if (marked.has(buffer) || types.isSharedArrayBuffer(buffer)) return true;
  if (resizable !== undefined && resizable.call(buffer) === true) return false;
  markAsUntransferable(buffer);
  marked.add(buffer);
  return true;
}

const DTYPE_CODE: Record<DType, DtypeCode> = { float32: DtypeCode.Float32, float64: DtypeCode.Float64 };

function kdParams(job: KdJob, threads: number, p: Float64Array): Float64Array {
  p[KdSlot.Rows] = job.rows;
  p[KdSlot.Cols] = job.cols;
  p[KdSlot.Threads] = threads;
  p[KdSlot.Dtype] = DTYPE_CODE[job.dtype];
  p[KdSlot.Temperature] = job.temperature;
  p[KdSlot.Divergence] = job.divergence;
  p[KdSlot.Beta] = job.beta;
  p[KdSlot.HardKind] = job.hard;
  p[KdSlot.TargetKind] = job.targetKind;
  p[KdSlot.Epsilon] = job.epsilon;
  p[KdSlot.LabelSmoothing] = job.labelSmoothing;
  p[KdSlot.IgnoreIndex] = job.ignoreIndex;
  p[KdSlot.SoftWeight] = job.softWeight;
  p[KdSlot.HardWeight] = job.hardWeight;
  p[KdSlot.Reduction] = job.reduction;
  p[KdSlot.Normalizer] = job.normalizer;
  return p;
}

function sparseKdParams(job: SparseKdJob, threads: number): Float64Array {
  const p = new Float64Array(SparseKdSlot.Length);
  p[SparseKdSlot.Rows] = job.rows;
  p[SparseKdSlot.Cols] = job.cols;
  p[SparseKdSlot.K] = job.k;
  p[SparseKdSlot.Threads] = threads;
  p[SparseKdSlot.Dtype] = DTYPE_CODE[job.dtype];
  p[SparseKdSlot.Temperature] = job.temperature;
  p[SparseKdSlot.Divergence] = job.divergence;
  p[SparseKdSlot.SparseKind] = job.sparseKind;
  p[SparseKdSlot.Tail] = job.tail ? 1 : 0;
  p[SparseKdSlot.HardKind] = job.hard;
  p[SparseKdSlot.TargetKind] = job.targetKind;
  p[SparseKdSlot.Epsilon] = job.epsilon;
  p[SparseKdSlot.LabelSmoothing] = job.labelSmoothing;
  p[SparseKdSlot.IgnoreIndex] = job.ignoreIndex;
  p[SparseKdSlot.SoftWeight] = job.softWeight;
  p[SparseKdSlot.HardWeight] = job.hardWeight;
  p[SparseKdSlot.Reduction] = job.reduction;
  p[SparseKdSlot.Normalizer] = job.normalizer;
  return p;
}

/** sparseKd's buffers in the layout's order (the tuple type fails to compile if it changes). */
function sparseKdCall(addon: Addon, p: Float64Array, async: boolean, job: SparseKdJob): RawHandle | undefined {
  const order: [
    SparseKdBuffer.Student,
    SparseKdBuffer.Indices,
    SparseKdBuffer.Values,
    SparseKdBuffer.HardTargets,
    SparseKdBuffer.Grad,
    SparseKdBuffer.Mask,
    SparseKdBuffer.Argmax,
    SparseKdBuffer.RowSoft,
    SparseKdBuffer.RowHard,
  ] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  void order;
  const { student, indices, values, targets, grad, mask, argmax, rowSoft, rowHard } = job;
  return addon.sparseKd(p, async, student, indices, values, targets, grad, mask, argmax, rowSoft, rowHard);
}

function featureParams(job: FeatureJob, threads: number): Float64Array {
  const L = job.layers.length;
  const p = new Float64Array(FeatureSlot.Length + L * FeatureItemSlot.Stride);
  p[FeatureSlot.Rows] = job.rows;
  p[FeatureSlot.Layers] = L;
  p[FeatureSlot.Threads] = threads;
  p[FeatureSlot.Dtype] = DTYPE_CODE[job.dtype];
  p[FeatureSlot.P] = job.p;
  p[FeatureSlot.Reduction] = job.reduction;
  for (let l = 0; l < L; l++) {
    const o = FeatureSlot.Length + l * FeatureItemSlot.Stride;
    p[o + FeatureItemSlot.Cols] = job.layers[l].cols;
    p[o + FeatureItemSlot.Weight] = job.layers[l].weight;
  }
  return p;
}

function featureBuffers(job: FeatureJob): unknown[] {
  const bufs: unknown[] = new Array(FeatureBuffer.Count + job.layers.length * FeatureItemBuffer.Stride);
  bufs[FeatureBuffer.RowOut] = job.rowOut;
  job.layers.forEach((layer, l) => {
    const o = FeatureBuffer.Count + l * FeatureItemBuffer.Stride;
    bufs[o + FeatureItemBuffer.StudentFeatures] = layer.student;
    bufs[o + FeatureItemBuffer.TeacherFeatures] = layer.teacher;
    bufs[o + FeatureItemBuffer.Grads] = layer.grad;
  });
  return bufs;
}

function attentionParams(job: AttentionJob, threads: number): Float64Array {
  const p = new Float64Array(AttentionSlot.Length);
  p[AttentionSlot.Rows] = job.rows;
  p[AttentionSlot.Cols] = job.cols;
  p[AttentionSlot.Threads] = threads;
  p[AttentionSlot.Dtype] = DTYPE_CODE[job.dtype];
  p[AttentionSlot.Beta] = job.beta;
  p[AttentionSlot.Reduction] = job.reduction;
  return p;
}

/**
 * kd's buffers in the layout's order, the absent ones at the end left out (each one passed costs the
 * binding a check). The tuple type fails to compile if the layout's order changes under it.
 */
function kdCall(addon: Addon, p: Float64Array, async: boolean, job: KdJob): RawHandle | undefined {
  const order: [KdBuffer.Student, KdBuffer.Teacher, KdBuffer.HardTargets, KdBuffer.Grad, KdBuffer.Mask, KdBuffer.Argmax, KdBuffer.RowSoft, KdBuffer.RowHard] = [
    0, 1, 2, 3, 4, 5, 6, 7,
  ];
  void order;
  const { student: s, teacher: t, targets: y, grad: g, mask: m, argmax: a, rowSoft, rowHard } = job;
  if (rowSoft !== null || rowHard !== null) return addon.kd(p, async, s, t, y, g, m, a, rowSoft, rowHard);
  if (a !== null) return addon.kd(p, async, s, t, y, g, m, a);
  if (m !== null) return addon.kd(p, async, s, t, y, g, m);
  if (g !== null) return addon.kd(p, async, s, t, y, g);
  return addon.kd(p, async, s, t, y);
}

const ATTENTION_ORDER: [AttentionBuffer.StudentAttention, AttentionBuffer.TeacherAttention, AttentionBuffer.RowOut, AttentionBuffer.Grad] = [0, 1, 2, 3];
void ATTENTION_ORDER;

/** Calls the addon's entry for a job; returns the params array the results are written into. */
function call(addon: Addon, job: Job, threads: number, async: boolean, syncKd: Float64Array): { params: Float64Array; handle: RawHandle | undefined } {
  let params: Float64Array;
  let handle: RawHandle | undefined;
  switch (job.op) {
    case 'kd':
      params = kdParams(job, threads, async ? new Float64Array(KdSlot.Length) : syncKd);
      handle = kdCall(addon, params, async, job);
      break;
    case 'sparseKd':
      params = sparseKdParams(job, threads);
      handle = sparseKdCall(addon, params, async, job);
      break;
    case 'feature':
      params = featureParams(job, threads);
      handle = addon.feature(params, async, ...featureBuffers(job));
      break;
    case 'attention':
      params = attentionParams(job, threads);
      handle = addon.attention(params, async, job.student, job.teacher, job.rowOut, job.grad);
      break;
  }
  return { params, handle };
}

/** Copies a settled call's results out of its params. */
function readResults(job: Job, params: Float64Array, results: Float64Array): void {
  switch (job.op) {
    case 'kd':
      results[0] = params[KdSlot.SoftSum];
      results[1] = params[KdSlot.HardSum];
      results[2] = params[KdSlot.Kept];
      break;
    case 'sparseKd':
      results[0] = params[SparseKdSlot.SoftSum];
      results[1] = params[SparseKdSlot.HardSum];
      results[2] = params[SparseKdSlot.Kept];
      break;
    case 'feature':
      for (let l = 0; l < job.layers.length; l++) {
        results[l] = params[FeatureSlot.Length + l * FeatureItemSlot.Stride + FeatureItemSlot.Sum];
      }
      break;
    case 'attention':
      results[0] = params[AttentionSlot.Sum];
      break;
  }
}

/** Wraps a loaded addon as a backend. */
export function nativeBackend(addon: Addon): Backend {
  try {
    addon.setup({ pin });
  } catch {
    // This environment's addon instance already has its helper (a second backend over one addon).
  }
  // Sync kd calls reuse one params array: it is read and written before the call returns.
  const syncKd = new Float64Array(KdSlot.Length);
  return {
    name: 'native',
    run: (job, threads, results) => {
      let params: Float64Array;
      try {
        params = call(addon, job, threads, false, syncKd).params;
      } catch (err) {
        return fromNative(err);
      }
      readResults(job, params, results);
    },
    runAsync: (job, threads, results): AsyncHandle => {
      let raw: { params: Float64Array; handle: RawHandle | undefined };
      try {
        raw = call(addon, job, threads, true, syncKd);
      } catch (err) {
        return { promise: Promise.reject(toTyped(err)), cancel: () => undefined };
      }
      const { params, handle } = raw as { params: Float64Array; handle: RawHandle };
      return {
        promise: handle.promise.then(
          () => readResults(job, params, results),
          (err) => fromNative(err),
        ),
        cancel: handle.cancel,
      };
    },
  };
}

/** The typed error for an addon error (fromNative throws it). */
function toTyped(err: unknown): unknown {
  try {
    fromNative(err);
  } catch (e) {
    return e;
  }
}
