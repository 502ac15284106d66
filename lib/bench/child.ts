/**
 * The measuring side of the benchmark: one process per variant (the kernel variant is fixed per
 * process by KDLOSS_ISA, the js backend by KDLOSS_BACKEND=js). Run as
 * `node dist/bench/child.js '<ChildOptions JSON>'`; prints one {@link VariantReport} as JSON on stdout.
 * @module
 */
import { AttentionTransferLoss, DistillationLoss, FeatureDistillationLoss, getBackend, isa, setBackend } from '../index';
import { nativeAddon } from '../backend';
import type { DType, FloatArray, Matrix } from '../matrix';
import {
  allThreadCases,
  ATTENTION_BETA,
  FEATURE_LAYERS,
  FEATURE_P,
  KD_ALPHA,
  KD_T,
  oneHot,
  randomArray,
  randomClasses,
  selectCases,
} from './cases';
import { measure, measureAsync } from './measure';
import { machineScaling } from './scaling';
import type { CaseMeasurement, CaseSpec, ChildOptions, Roofline, Timing, TimingPolicy, VariantReport } from './types';

/** Inputs shared by the cases of one shape and dtype (all preallocated before timing). */
interface Inputs {
  students: Matrix[];
  teachers: Matrix[];
  idx: Int32Array;
  oneHot: Matrix | null;
  grads: FloatArray[];
}

const inputKey = (c: CaseSpec): string => `${c.kind === 'kd' ? 'kd' : 'map'} ${c.layers}x${c.rows}x${c.cols} ${c.dtype}`;

function buildInputs(c: CaseSpec): Inputs {
  const n = c.rows * c.cols;
  const sigma = c.kind === 'kd' ? 3 : 1;
  const students: Matrix[] = [];
  const teachers: Matrix[] = [];
  const grads: FloatArray[] = [];
  for (let l = 0; l < c.layers; l++) {
    const seed = 1000 * (l + 1) + (c.kind === 'kd' ? 1 : c.kind === 'feature' ? 2 : 3);
    students.push({ data: randomArray(c.dtype, n, sigma, seed), rows: c.rows, cols: c.cols });
    teachers.push({ data: randomArray(c.dtype, n, sigma, seed + 17), rows: c.rows, cols: c.cols });
    grads.push(c.dtype === 'float32' ? new Float32Array(n) : new Float64Array(n));
  }
  const idx = randomClasses(c.rows, c.cols, 4242);
  const oh = c.kind === 'kd' ? { data: oneHot(c.dtype, idx, c.cols), rows: c.rows, cols: c.cols } : null;
  return { students, teachers, idx, oneHot: oh, grads };
}

/** The timed call of a case: inputs, options and gradient buffers are all created here, outside the loop. */
function caseFn(c: CaseSpec, inp: Inputs): () => unknown {
  if (c.kind === 'kd') {
    const kd = new DistillationLoss(KD_T, KD_ALPHA);
    const s = inp.students[0];
    const t = inp.teachers[0];
    const y = c.targets === 'onehot' ? inp.oneHot! : inp.idx;
    if (c.grad) {
      const opts = { grad: true, gradOut: inp.grads[0] };
      return () => kd.forward(s, t, y, opts);
    }
    return () => kd.forward(s, t, y);
  }
  if (c.kind === 'feature') {
    const fl = new FeatureDistillationLoss(Array.from({ length: FEATURE_LAYERS }, () => 1), FEATURE_P);
    if (c.grad) {
      const opts = { grad: true, gradOut: inp.grads };
      return () => fl.forward(inp.students, inp.teachers, opts);
    }
    return () => fl.forward(inp.students, inp.teachers);
  }
  const at = new AttentionTransferLoss(ATTENTION_BETA);
  const s = inp.students[0];
  const t = inp.teachers[0];
  if (c.grad) {
    const opts = { grad: true, gradOut: inp.grads[0] };
    return () => at.forward(s, t, opts);
  }
  return () => at.forward(s, t);
}

/** Roofline probes through the active variant's vecmath. */
class Probes {
  private readonly buffers: Record<DType, FloatArray>;
  /** The exp probe's arguments and results, allocated once (see expRate). */
  private readonly expIo: Record<DType, { input: FloatArray; output: FloatArray }>;
  private readonly memCache = new Map<string, number>();
  readonly expPerSec: Record<DType, number>;

  constructor(
    private readonly addon: NonNullable<ReturnType<typeof nativeAddon>>,
    maxBytes: Record<DType, number>,
    private readonly policy: TimingPolicy,
  ) {
    this.buffers = {
      float32: new Float32Array(Math.ceil(maxBytes.float32 / 4)).fill(1),
      float64: new Float64Array(Math.ceil(maxBytes.float64 / 8)).fill(1),
    };
    const io = (input: FloatArray, output: FloatArray) => {
      for (let i = 0; i < input.length; i++) input[i] = -20 * ((i * 0.618034) % 1);
      return { input, output };
    };
    // 256 KB of arguments and 256 KB of results: L2-resident, and long enough that the fixed cost of the
    // addon call is a negligible share of the time (a short block reads a low exp rate, and the KD
    // roofline fractions would then read too high).
    this.expIo = {
      float32: io(new Float32Array(65536), new Float32Array(65536)),
      float64: io(new Float64Array(32768), new Float64Array(32768)),
    };
    this.expPerSec = { float32: this.expRate('float32'), float64: this.expRate('float64') };
  }

  /** vecmath('exp') elements/s over the probe's block of arguments in [-20, 0] (the best seen is kept: each exp-bound case probes again). */
  private expRate(dtype: DType): number {
    const { input, output } = this.expIo[dtype];
    const t = measure(() => this.addon.vecmath('exp', input, output), this.policy);
    return input.length / (t.medianNs * 1e-9);
  }

  /** Median ns of vecmath('sum') over `bytes` bytes of `dtype`. */
  memNs(dtype: DType, bytes: number): number {
    const key = `${dtype} ${bytes}`;
    let ns = this.memCache.get(key);
    if (ns === undefined) {
      const e = dtype === 'float32' ? 4 : 8;
      const view = this.buffers[dtype].subarray(0, Math.ceil(bytes / e));
      ns = measure(() => this.addon.vecmath('sum', view, null), this.policy).medianNs;
      this.memCache.set(key, ns);
    }
    return ns;
  }

  /** The roofline of a case, probed right after it ran (the exp rate too, so both see the same machine state). */
  roofline(c: CaseSpec): Roofline {
    const memNs = this.memNs(c.dtype, c.bytes);
    let expNs = 0;
    if (c.expsPerElement > 0) {
      const rate = this.expRate(c.dtype);
      this.expPerSec[c.dtype] = Math.max(this.expPerSec[c.dtype], rate);
      expNs = ((c.expsPerElement * c.elements) / rate) * 1e9;
    }
    return {
      memNs,
      expNs,
      ns: Math.max(memNs, expNs),
      bound: expNs > memNs ? 'exp' : 'memory',
      probeGBs: c.bytes / memNs,
      expPerSec: c.expsPerElement > 0 ? (c.expsPerElement * c.elements) / (expNs * 1e-9) : null,
    };
  }
}

/** Measures every selected case on the backend/variant this process runs. */
export async function measureVariant(opts: ChildOptions): Promise<VariantReport> {
  const start = Date.now();
  const isJs = opts.variant === 'js';
  if (isJs) setBackend('js');
  else {
    setBackend('native');
    if (isa() !== opts.variant) throw new Error(`asked for variant ${opts.variant}, the addon runs ${String(isa())}`);
  }
  if (getBackend() !== (isJs ? 'js' : 'native')) throw new Error('backend selection failed');
  const policy = isJs ? opts.js : opts.native;
  const log = (s: string): void => {
    if (opts.verbose) process.stderr.write(`  [${opts.variant}] ${s}\n`);
  };

  const cases = selectCases(undefined).filter((c) => opts.caseIds === null || opts.caseIds.includes(c.id));
  let probes: Probes | null = null;
  if (!isJs) {
    const addon = nativeAddon();
    if (addon === null) throw new Error('native addon not loaded');
    const maxBytes: Record<DType, number> = { float32: 1024, float64: 1024 };
    for (const c of cases) maxBytes[c.dtype] = Math.max(maxBytes[c.dtype], c.bytes);
    probes = new Probes(addon, maxBytes, opts.probe);
  }

  // The public-API latency line: validation included, class-index targets.
  const apiInputs = buildInputs(selectCases(['kd 64x10 index float32'])[0]);
  const apiKd = new DistillationLoss(KD_T, KD_ALPHA);
  const api: Timing = measure(
    () => apiKd.computeDistillation(apiInputs.students[0], apiInputs.teachers[0], apiInputs.idx),
    policy,
  );
  log(`api 64x10 float32: ${api.medianNs.toFixed(0)} ns`);
  // The same call through the async API, each call awaited before the next.
  const [asyncApi] = await measureAsync(
    [() => apiKd.computeDistillationAsync(apiInputs.students[0], apiInputs.teachers[0], apiInputs.idx)],
    policy,
  );
  log(`async api 64x10 float32: ${asyncApi.medianNs.toFixed(0)} ns`);

  const cache = new Map<string, Inputs>();
  const results: Record<string, CaseMeasurement> = {};
  cases.forEach((c, i) => {
    // Keep only inputs that a remaining case still needs.
    const needed = new Set(cases.slice(i).map(inputKey));
    for (const k of [...cache.keys()]) if (!needed.has(k)) cache.delete(k);
    let inp = cache.get(inputKey(c));
    if (inp === undefined) {
      inp = buildInputs(c);
      cache.set(inputKey(c), inp);
    }
    const t = measure(caseFn(c, inp), policy);
    const roofline = probes ? probes.roofline(c) : null;
    results[c.id] = { ...t, roofline };
    log(`${c.id}: ${(t.medianNs / 1e6).toFixed(3)} ms (${t.samples} samples x ${t.batch})`);
  });
  cache.clear();

  // Async thread scaling: forwardAsync at each thread count, measured interleaved.
  const threads: Record<string, Record<string, Timing>> = {};
  for (const tc of allThreadCases().filter((c) => opts.threadCaseIds.includes(c.id))) {
    const spec = selectCases([tc.syncId])[0];
    const inp = buildInputs(spec);
    const kd = new DistillationLoss(KD_T, KD_ALPHA);
    const y = tc.targets === 'onehot' ? inp.oneHot! : inp.idx;
    const fns = opts.threadCounts.map((n) => {
      const o = { threads: n };
      return () => kd.forwardAsync(inp.students[0], inp.teachers[0], y, o);
    });
    const timings = await measureAsync(fns, policy);
    threads[tc.id] = {};
    opts.threadCounts.forEach((n, i) => {
      threads[tc.id][String(n)] = timings[i];
      log(`${tc.id} ${n} thread${n === 1 ? '' : 's'}: ${(timings[i].medianNs / 1e6).toFixed(3)} ms (${timings[i].samples} samples x ${timings[i].batch})`);
    });
  }

  const machine = Object.keys(threads).length > 0 && opts.threadCounts.length > 1 ? await machineScaling(Math.max(...opts.threadCounts)) : null;
  if (machine !== null) log(`machine scaling (vecmath exp on ${Math.max(...opts.threadCounts)} workers): ${machine.toFixed(2)}x`);

  return {
    variant: opts.variant,
    backend: isJs ? 'js' : 'native',
    isa: isJs ? null : isa(),
    expPerSec: probes ? probes.expPerSec : null,
    api,
    asyncApi,
    cases: results,
    threads,
    machineScaling: machine,
    elapsedMs: Date.now() - start,
  };
}

if (require.main === module) {
  const opts = JSON.parse(process.argv[2] ?? '') as ChildOptions;
  measureVariant(opts).then(
    (report) => process.stdout.write(`${JSON.stringify(report)}\n`),
    (err: Error) => {
      process.stderr.write(`${err.stack ?? err.message}\n`);
      process.exitCode = 1;
    },
  );
}
