// The raw addon as kdloss loaded it (the same instance: kdloss has run its setup), and params builders
// in the addon's call convention (native/addon/layout.json).
import * as path from 'path';
import { capabilities } from 'kdloss';
import { AttentionSlot, DtypeCode, FeatureItemSlot, FeatureSlot, HardKindCode, KdSlot, ReductionCode, TargetKindCode } from '../../dist/backend/layout';

/** A compute entry: (params, async, ...buffers). */
export type RawEntry = (params: Float64Array, async: boolean, ...buffers: unknown[]) => { promise: Promise<void>; cancel(): void } | undefined;

/** The raw addon surface the tests poke at. */
export interface RawAddon {
  kd: RawEntry;
  feature: RawEntry;
  attention: RawEntry;
  setup(helpers: unknown): void;
  vecmath(op: string, input: unknown, output: unknown): unknown;
}

/** The addon kdloss loaded, or null without one. */
export function rawAddon(): RawAddon | null {
  if (capabilities() === null) return null;
  const root = path.dirname(require.resolve('kdloss/package.json'));
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { addonPath } = require(path.join(root, 'dist', 'backend', 'load.js')) as { addonPath(): string };
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(addonPath()) as RawAddon;
}

/** kd params: T = 2, the logits cross-entropy when there are targets, 'mean'. */
export function kdParams(rows: number, cols: number, targetKind = TargetKindCode.None, over: Partial<Record<KdSlot, number>> = {}): Float64Array {
  const p = new Float64Array(KdSlot.Length);
  p[KdSlot.Rows] = rows;
  p[KdSlot.Cols] = cols;
  p[KdSlot.Threads] = 1;
  p[KdSlot.Dtype] = DtypeCode.Float64;
  p[KdSlot.Temperature] = 2;
  p[KdSlot.HardKind] = targetKind === TargetKindCode.None ? HardKindCode.None : HardKindCode.CrossEntropyLogits;
  p[KdSlot.TargetKind] = targetKind;
  p[KdSlot.Epsilon] = 1e-10;
  p[KdSlot.IgnoreIndex] = -100;
  p[KdSlot.SoftWeight] = 0.5 * 4;
  p[KdSlot.HardWeight] = 0.5;
  p[KdSlot.Reduction] = ReductionCode.Mean;
  for (const [k, v] of Object.entries(over)) p[Number(k)] = v as number;
  return p;
}

/** feature params for layers of the given widths (weights 1, p = 2, 'mean'). */
export function featureParams(rows: number, cols: number[], over: Partial<Record<FeatureSlot, number>> = {}): Float64Array {
  const p = new Float64Array(FeatureSlot.Length + cols.length * FeatureItemSlot.Stride);
  p[FeatureSlot.Rows] = rows;
  p[FeatureSlot.Layers] = cols.length;
  p[FeatureSlot.Threads] = 1;
  p[FeatureSlot.Dtype] = DtypeCode.Float64;
  p[FeatureSlot.P] = 2;
  p[FeatureSlot.Reduction] = ReductionCode.Mean;
  cols.forEach((c, l) => {
    p[FeatureSlot.Length + l * FeatureItemSlot.Stride + FeatureItemSlot.Cols] = c;
    p[FeatureSlot.Length + l * FeatureItemSlot.Stride + FeatureItemSlot.Weight] = 1;
  });
  for (const [k, v] of Object.entries(over)) p[Number(k)] = v as number;
  return p;
}

/** attention params (beta 2, 'mean'). */
export function attentionParams(rows: number, cols: number, over: Partial<Record<AttentionSlot, number>> = {}): Float64Array {
  const p = new Float64Array(AttentionSlot.Length);
  p[AttentionSlot.Rows] = rows;
  p[AttentionSlot.Cols] = cols;
  p[AttentionSlot.Threads] = 1;
  p[AttentionSlot.Dtype] = DtypeCode.Float64;
  p[AttentionSlot.Beta] = 2;
  p[AttentionSlot.Reduction] = ReductionCode.Mean;
  for (const [k, v] of Object.entries(over)) p[Number(k)] = v as number;
  return p;
}

/** The code of what fn throws, or 'no error'. */
export function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return 'no error';
}
