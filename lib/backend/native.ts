/**
 * The native backend: hands validated jobs to the N-API addon (build/Release/kdloss.node).
 * @module
 */
import * as path from 'path';
import { fromNative } from '../errors';
import type { AttentionJob, Backend, FeatureJob, KdJob } from './types';

/** What the addon reports about its kernels. */
export interface NativeInfo {
  /** The kernel variant in use: 'scalar', 'avx2', 'avx512' or 'neon'. */
  isa: string;
  /** Variants compiled into this build, best first. */
  compiled: string[];
  /** What this CPU and OS support. */
  capabilities: { avx2: boolean; avx512: boolean; neon: boolean };
}

/** The raw addon surface (see native/addon/addon.cc). */
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
  ): void;
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
  ): void;
  attention(
    student: unknown,
    teacher: unknown,
    rows: number,
    cols: number,
    beta: number,
    rowOut: unknown,
    grad: unknown,
    gradScale: number,
  ): number;
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

/** Wraps a loaded addon as a backend. */
export function nativeBackend(addon: Addon): Backend {
  const params = new Float64Array(7);
  return {
    name: 'native',
    kd(job: KdJob, out: Float64Array): void {
      params[0] = job.temperature;
      params[1] = job.hard;
      params[2] = job.epsilon;
      params[3] = job.labelSmoothing;
      params[4] = job.ignoreIndex;
      params[5] = job.gradSoftScale;
      params[6] = job.gradHardScale;
      try {
        addon.kd(
          job.student,
          job.teacher,
          job.rows,
          job.cols,
          job.targets,
          job.targetKind,
          job.mask,
          params,
          job.rowSoft,
          job.rowHard,
          job.grad,
          out,
        );
      } catch (err) {
        fromNative(err);
      }
    },
    feature(job: FeatureJob, layerSums: Float64Array): void {
      try {
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
        );
      } catch (err) {
        fromNative(err);
      }
    },
    attention(job: AttentionJob): number {
      try {
        return addon.attention(
          job.student,
          job.teacher,
          job.rows,
          job.cols,
          job.beta,
          job.rowOut,
          job.grad,
          job.gradScale,
        );
      } catch (err) {
        return fromNative(err);
      }
    },
  };
}
