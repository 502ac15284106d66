/**
 * kdloss: knowledge-distillation losses and their gradients, computed by SIMD C++ kernels behind a
 * validated TypeScript API (with a pure TypeScript backend of identical semantics).
 * @packageDocumentation
 */
import { nativeInfo } from './backend';

export { DistillationLoss } from './distillation';
export type { DistillationForwardOptions, DistillationOptions, DistillationResult, Divergence } from './distillation';
export type { SparseTeacher, SparseTeacherKind } from './sparse';
export { FeatureDistillationLoss } from './feature';
export type { FeatureForwardOptions, FeatureResult } from './feature';
export { AttentionTransferLoss } from './attention';
export type { AttentionForwardOptions, AttentionResult } from './attention';
export { CrossEntropyLoss, MseLoss } from './losses';
export type { CrossEntropyOptions, Loss } from './losses';
export { AbortError, ConfigError, InputError, KdError, NativeError, ShapeError } from './errors';
export type { KdErrorCode } from './errors';
export type { ClassIndices, DType, FloatArray, Matrix, MatrixInput, Targets } from './matrix';
export type { AsyncOptions, Reduction } from './options';
export { getBackend, nativeLoadError, setBackend } from './backend';
export type { BackendName } from './backend';

/** The kernel variant the native backend runs ('scalar', 'avx2', 'avx512', 'neon'), or null without the addon. */
export function isa(): string | null {
  return nativeInfo()?.isa ?? null;
}

/** What this CPU offers and which variants this build contains, or null without the addon. */
export function capabilities(): {
  /** The CPU and OS run the AVX2 (with FMA) kernels. */
  avx2: boolean;
  /** The CPU and OS run the AVX-512 (F, DQ, BW, VL) kernels. */
  avx512: boolean;
  /** The CPU runs the NEON kernels. */
  neon: boolean;
  /** Variants compiled into this build, best first. */
  compiled: string[];
} | null {
  const info = nativeInfo();
  return info ? { ...info.capabilities, compiled: info.compiled } : null;
}
