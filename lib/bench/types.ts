/**
 * Shapes of the benchmark's options and results (the JSON written to bench/results/).
 * @module
 */
import type { DType } from '../matrix';

/** How long a measurement runs. Samples are batches of calls sized to take about `sampleUs`. */
export interface TimingPolicy {
  /** Warm-up before sampling (at least one call). */
  warmupMs: number;
  /** Sampling stops once both `minTimeMs` and `minSamples` are reached ... */
  minTimeMs: number;
  minSamples: number;
  /** ... or once `maxTimeMs` has passed and at least `floorSamples` samples were taken. */
  maxTimeMs: number;
  floorSamples: number;
  /** Target duration of one sample (a batch of calls), so tiny calls are not timer-bound. */
  sampleUs: number;
}

/** Options of {@link runBenchmarks}. */
export interface BenchOptions {
  /** Native variants to measure (default: every compiled variant this CPU supports). */
  variants?: string[];
  /** Measure the pure TypeScript backend too (default true; needed for the x-vs-js column). */
  js?: boolean;
  /** Only cases whose id contains one of these substrings (default: all). */
  filter?: string[];
  /** Shorter time boxes (a smoke run; numbers are noisier). */
  quick?: boolean;
  /** Progress lines (default: written to stderr). Pass `() => {}` for silence. */
  log?: (line: string) => void;
  /** Per-case progress from the child processes. */
  verbose?: boolean;
  /** Evaluate the project's performance targets (targets.ts) into `checks` (default: none). */
  targets?: boolean;
}

/** What a child process is told to do (serialised on its command line). */
export interface ChildOptions {
  variant: string;
  caseIds: string[] | null;
  native: TimingPolicy;
  js: TimingPolicy;
  probe: TimingPolicy;
  verbose: boolean;
  /** Async thread-scaling cases this child measures (only the default native variant gets any). */
  threadCaseIds: string[];
  /** Thread counts of those cases, e.g. [1, 2]. */
  threadCounts: number[];
}

/** One benchmark case. */
export interface CaseSpec {
  /** Unique id, e.g. 'kd 4096x1000 onehot float32'. */
  id: string;
  /** Label without the dtype, e.g. 'kd 4096x1000 onehot'. */
  label: string;
  kind: 'kd' | 'feature' | 'attention';
  dtype: DType;
  rows: number;
  cols: number;
  /** Feature layers (1 for the others). */
  layers: number;
  /** KD hard targets. */
  targets: 'onehot' | 'index' | null;
  /** forward with {grad: true, gradOut} into a preallocated buffer. */
  grad: boolean;
  /** For grad cases: the id of the same computation without the gradient. */
  forwardId: string | null;
  /** Student elements per call (all layers). */
  elements: number;
  /** Bytes the kernel must read, plus the gradient bytes it writes (each counted once). */
  bytes: number;
  /** exp evaluations the kernel needs per student element. */
  expsPerElement: number;
}

/**
 * An async thread-scaling case: `forwardAsync(student, teacher, targets, { threads })` on the same
 * inputs as the synchronous case `syncId`, awaited one call at a time, at each thread count.
 */
export interface ThreadCaseSpec {
  /** e.g. 'kd 4096x1000 onehot float32 async'. */
  id: string;
  /** e.g. 'kd 4096x1000 onehot'. */
  label: string;
  /** The synchronous case with the same inputs. */
  syncId: string;
  dtype: DType;
  rows: number;
  cols: number;
  targets: 'onehot' | 'index';
  elements: number;
}

/** A timing. */
export interface Timing {
  /** Median over samples of the time per call. */
  medianNs: number;
  /** Fastest sample's time per call. */
  minNs: number;
  /** Samples taken (each a batch of `batch` calls). */
  samples: number;
  batch: number;
  /**
   * Async measurements only: CPU time of the whole process (all threads) / wall time during the
   * samples, i.e. how many cores the calls actually got (about 2 when 2 threads each had a core).
   */
  cpuPerWall?: number;
}

/** The roofline of one case on one variant. */
export interface Roofline {
  /** Time of vecmath('sum') over `bytes` bytes of the case's dtype. */
  memNs: number;
  /** The exps the kernel needs at the measured vecmath('exp') rate (0 when it needs none). */
  expNs: number;
  /** max(memNs, expNs). */
  ns: number;
  bound: 'memory' | 'exp';
  /** Bandwidth the sum probe reached, GB/s. */
  probeGBs: number;
  /** The vecmath('exp') rate probed for this case (null when the case needs no exps). */
  expPerSec: number | null;
}

/** A child's measurement of one case. */
export interface CaseMeasurement extends Timing {
  roofline: Roofline | null;
}

/** What one child process reports. */
export interface VariantReport {
  variant: string;
  backend: 'native' | 'js';
  /** The native variant that actually ran (null for js). */
  isa: string | null;
  /** vecmath('exp') rate in elements/s per dtype (null for js). */
  expPerSec: Record<DType, number> | null;
  /** The 64x10 float32 computeDistillation call with Int32Array targets, validation included. */
  api: Timing;
  /** The same call through computeDistillationAsync (default threads), awaited one call at a time. */
  asyncApi: Timing;
  cases: Record<string, CaseMeasurement>;
  /** Thread-scaling case id -> thread count (as a string) -> timing; {} when this child measured none. */
  threads: Record<string, Record<string, Timing>>;
  /** With thread cases: the machine's own scaling at the largest thread count (see scaling.ts). */
  machineScaling: number | null;
  elapsedMs: number;
}

/** One case's result on one variant, as merged by the parent. */
export interface VariantCaseResult extends CaseMeasurement {
  elementsPerSec: number;
  /** js median / this median (null without a js measurement). */
  vsJs: number | null;
  /** For grad cases: this median / the forward-only median on the same variant. */
  vsForward: number | null;
  /** roofline.ns / medianNs (null for js). */
  rooflineFraction: number | null;
  /**
   * The same with the memory time of the fastest sum probe of any native variant in this run (the
   * machine's bandwidth, should this variant's own sum not reach it); null for js.
   */
  machineRooflineFraction: number | null;
}

/** A case with its results on every variant. */
export interface CaseResult extends CaseSpec {
  results: Record<string, VariantCaseResult>;
}

/** A thread-scaling case with its timings per thread count, measured on one native variant. */
export interface ThreadCaseResult extends ThreadCaseSpec {
  /** Thread count (as a string) -> timing and throughput. */
  results: Record<string, Timing & { elementsPerSec: number }>;
  /** Median with the smallest thread count / median with the largest (null when one is missing). */
  speedup: number | null;
  /** The synchronous single-thread median of the same case and variant, when it was measured. */
  syncMedianNs: number | null;
}

/** A performance target and whether the run met it. */
export interface Check {
  name: string;
  variant: string;
  value: number | null;
  target: string;
  met: boolean | null;
}

/** Machine and run information. */
export interface MachineInfo {
  /** git describe of the package checkout ('+dirty' with local changes), or null. */
  commit: string | null;
  /** mtime of the addon binary measured, or null. */
  addonBuilt: string | null;
  cpu: string;
  cores: number;
  memoryGB: number;
  /** 1, 5 and 15 minute load averages when the run ended (other load skews the numbers). */
  loadAverage: number[];
  node: string;
  platform: string;
  arch: string;
  kdloss: string;
  capabilities: { avx2: boolean; avx512: boolean; neon: boolean; compiled: string[] } | null;
}

/** Everything one `npm run bench` measured. */
export interface BenchResults {
  schema: 'kdloss-bench/2';
  date: string;
  machine: MachineInfo;
  policies: { native: TimingPolicy; js: TimingPolicy; probe: TimingPolicy };
  notes: string[];
  /** Measured variants, native best first, then 'js'. */
  variants: string[];
  /** The variant the library picks by default (the checks are evaluated on it), or null. */
  defaultVariant: string | null;
  /** Variants whose child failed, with the reason. */
  errors: Record<string, string>;
  probes: Record<string, { expPerSec: Record<DType, number>; bandwidthGBs: Record<DType, number>; probeBytes: Record<DType, number> }>;
  api: Record<string, Timing>;
  /** 64x10 float32 computeDistillationAsync latency per variant (awaited one call at a time). */
  asyncApi: Record<string, Timing>;
  cases: CaseResult[];
  /** Async thread scaling, measured on `variant` (the default native variant) only. */
  threads: {
    variant: string | null;
    counts: number[];
    cases: ThreadCaseResult[];
    /**
     * vecmath('exp') on the largest thread count of worker threads at once / on one (scaling.ts): what
     * the machine gives pure compute, the ceiling of every speedup above (null when not measured).
     */
    machineScaling: number | null;
  };
  /** The project's performance targets, evaluated only when asked for (`--targets`); [] otherwise. */
  checks: Check[];
  elapsedMs: number;
}
