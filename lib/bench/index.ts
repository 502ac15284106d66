/**
 * The benchmark suite (`kdloss bench`, `npm run bench`): one child process per kernel variant
 * (and one for the js backend) measures every case; the parent merges, adds rooflines and ratios,
 * and evaluates the performance targets. A benchmark, never a test.
 * @module
 */
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { addonPath } from '../backend/load';
import type { DType } from '../matrix';
import { toJsonText } from '../util/json';
import { PACKAGE_ROOT, packageVersion } from '../util/package';
import { selectCases, selectThreadCases, THREAD_COUNTS } from './cases';
import { renderChart } from './svg';
import { evaluateChecks } from './targets';
import type {
  BenchOptions,
  BenchResults,
  CaseResult,
  ChildOptions,
  MachineInfo,
  Timing,
  ThreadCaseResult,
  TimingPolicy,
  VariantCaseResult,
  VariantReport,
} from './types';

export type * from './types';
export { allCases, allThreadCases } from './cases';
export { formatResults } from './format';
export { renderChart } from './svg';

/** Default time boxes: native cases >= 0.3 s and >= 15 samples after warm-up. */
export const POLICIES: { native: TimingPolicy; js: TimingPolicy; probe: TimingPolicy } = {
  native: { warmupMs: 50, minTimeMs: 300, minSamples: 15, maxTimeMs: 3000, floorSamples: 5, sampleUs: 200 },
  // The js backend is far slower on large cases: it may stop after 1 s with 3 samples.
  js: { warmupMs: 100, minTimeMs: 300, minSamples: 15, maxTimeMs: 1000, floorSamples: 3, sampleUs: 200 },
  probe: { warmupMs: 20, minTimeMs: 100, minSamples: 10, maxTimeMs: 1000, floorSamples: 5, sampleUs: 200 },
};

function quickPolicy(p: TimingPolicy): TimingPolicy {
  return { ...p, warmupMs: p.warmupMs / 2, minTimeMs: p.minTimeMs / 5, minSamples: 5, maxTimeMs: p.maxTimeMs / 4, floorSamples: 2 };
}

interface Caps {
  avx2: boolean;
  avx512: boolean;
  neon: boolean;
  compiled: string[];
}

/** Environment of a child: the variant chosen only by what the bench sets. */
function childEnv(variant: string | null): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.KDLOSS_ISA;
  delete env.KDLOSS_BACKEND;
  if (variant === 'js') env.KDLOSS_BACKEND = 'js';
  else if (variant !== null) env.KDLOSS_ISA = variant;
  return env;
}

/**
 * The library's capabilities as a fresh process with the default variant sees them (so a KDLOSS_ISA
 * or KDLOSS_BACKEND in this process's environment does not matter).
 */
function loadCaps(): { caps: Caps | null; error: string | null } {
  const script =
    `const kd = require(${JSON.stringify(path.join(__dirname, '..', 'index.js'))});` +
    'const e = kd.nativeLoadError();' +
    'process.stdout.write(JSON.stringify({ caps: kd.capabilities(), error: e ? e.message : null }));';
  const r = spawnSync(process.execPath, ['-e', script], { env: childEnv(null), encoding: 'utf8' });
  if (r.status !== 0) return { caps: null, error: (r.stderr || r.error?.message || 'probe failed').trim().split('\n')[0] };
  try {
    return JSON.parse(r.stdout) as { caps: Caps | null; error: string | null };
  } catch (err) {
    return { caps: null, error: (err as Error).message };
  }
}

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return m[1].trim();
  } catch {
    // not Linux
  }
  return os.cpus()[0]?.model ?? 'unknown';
}

/**
 * The package's git commit (with '+dirty' for local changes) when the package is a checkout of its
 * own, null otherwise: an installed package inside the user's repository is not that repository.
 */
function gitCommit(): string | null {
  if (!fs.existsSync(path.join(PACKAGE_ROOT, '.git'))) return null;
  const r = spawnSync('git', ['describe', '--always', '--dirty=+dirty', '--abbrev=12'], { cwd: PACKAGE_ROOT, encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** When the addon in use was built (mtime of its file: a local build or the prebuild), or null. */
function addonBuilt(): string | null {
  try {
    return fs.statSync(addonPath()).mtime.toISOString();
  } catch {
    return null;
  }
}

/** Machine and build information recorded with the results. */
export function machineInfo(caps: Caps | null): MachineInfo {
  return {
    commit: gitCommit(),
    addonBuilt: addonBuilt(),
    cpu: cpuModel(),
    cores: os.cpus().length,
    memoryGB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100),
    node: process.version,
    platform: os.platform(),
    arch: os.arch(),
    kdloss: packageVersion(),
    capabilities: caps,
  };
}

/** Compiled variants this CPU can run, best first. */
export function runnableVariants(caps: Caps | null): string[] {
  if (caps === null) return [];
  return caps.compiled.filter((v) => v === 'scalar' || (caps as unknown as Record<string, unknown>)[v] === true);
}

function runChild(opts: ChildOptions, log: (s: string) => void): Promise<VariantReport> {
  const env = childEnv(opts.variant);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(__dirname, 'child.js'), JSON.stringify(opts)], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      err += d;
      if (opts.verbose) for (const line of d.split('\n')) if (line.trim() !== '') log(line);
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) {
        try {
          resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as VariantReport);
        } catch (e) {
          reject(new Error(`unreadable output: ${(e as Error).message}`));
        }
      } else {
        const lines = err.split('\n').filter((l) => l.trim() !== '' && !/^\s+at /.test(l) && !/^Node\.js v/.test(l));
        const tail = (lines.find((l) => /Error\b/.test(l)) ?? lines.slice(-3).join(' | ')).trim();
        reject(new Error(`exited with ${signal ?? `code ${code}`}${tail ? `: ${tail}` : ''}`));
      }
    });
  });
}

/**
 * Default output directory: kdloss-bench/ in the current directory. Never the package's own directory:
 * an installed package (in node_modules) is not the user's to write into.
 */
export function defaultResultsDir(): string {
  return path.resolve('kdloss-bench');
}

/**
 * Writes latest.json (the results, numbers as util/json.ts writes them) and latest.svg (the chart,
 * see {@link renderChart}) into `dir`, each through a temporary file renamed into place; returns
 * their paths.
 * @throws the file system's error (the temporary file removed)
 */
export function writeResults(results: BenchResults, dir = defaultResultsDir()): string[] {
  fs.mkdirSync(dir, { recursive: true });
  const outputs: [string, string][] = [
    ['latest.json', `${toJsonText(results)}\n`],
    ['latest.svg', renderChart(results)],
  ];
  return outputs.map(([name, text]) => {
    const file = path.join(dir, name);
    const tmp = `${file}.${process.pid}.tmp`;
    try {
      fs.writeFileSync(tmp, text);
      fs.renameSync(tmp, file);
    } catch (err) {
      fs.rmSync(tmp, { force: true });
      throw err;
    }
    return file;
  });
}

/**
 * Measures every case on every runnable native variant and on the js backend, one child process each,
 * and returns the merged results (not written anywhere; see {@link writeResults}).
 */
export async function runBenchmarks(options: BenchOptions = {}): Promise<BenchResults> {
  const start = Date.now();
  const log = options.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  const policies = options.quick
    ? { native: quickPolicy(POLICIES.native), js: quickPolicy(POLICIES.js), probe: quickPolicy(POLICIES.probe) }
    : POLICIES;
  const { caps, error: capsError } = loadCaps();
  const runnable = runnableVariants(caps);
  const nativeVariants = options.variants ? options.variants.filter((v) => runnable.includes(v)) : runnable;
  for (const v of options.variants ?? []) if (!runnable.includes(v)) log(`[bench] skipping ${v}: not compiled or not supported by this CPU`);
  if (caps === null) log(`[bench] native addon unavailable (${capsError ?? 'unknown'}): js backend only`);
  const variants = [...nativeVariants, ...(options.js === false ? [] : ['js'])];
  const specs = selectCases(options.filter);
  const threadSpecs = selectThreadCases(options.filter);
  if (specs.length === 0 && threadSpecs.length === 0) throw new Error(`no case matches ${JSON.stringify(options.filter)}`);
  // Thread scaling only on the first (best) native variant: the library's default unless --variants says otherwise.
  const threadsVariant = nativeVariants[0] ?? null;
  const threadCounts = [...THREAD_COUNTS];

  const reports: Record<string, VariantReport> = {};
  const errors: Record<string, string> = {};
  for (const [i, variant] of variants.entries()) {
    const t0 = Date.now();
    const nThreadCases = variant === threadsVariant ? threadSpecs.length : 0;
    const n = specs.length + nThreadCases;
    log(`[bench] ${i + 1}/${variants.length} ${variant}: ${n} case${n === 1 ? '' : 's'}${nThreadCases ? ` (${nThreadCases} async thread scaling)` : ''} ...`);
    try {
      reports[variant] = await runChild(
        {
          variant,
          caseIds: options.filter ? specs.map((c) => c.id) : null,
          native: policies.native,
          js: policies.js,
          probe: policies.probe,
          verbose: options.verbose === true,
          threadCaseIds: variant === threadsVariant ? threadSpecs.map((c) => c.id) : [],
          threadCounts,
        },
        log,
      );
      log(`[bench]   ${variant} done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    } catch (err) {
      errors[variant] = (err as Error).message;
      log(`[bench]   ${variant} FAILED: ${errors[variant]}`);
    }
  }
  const measured = variants.filter((v) => reports[v] !== undefined);
  const nativeMeasured = measured.filter((v) => v !== 'js');

  const cases: CaseResult[] = specs.map((spec) => {
    const results: Record<string, VariantCaseResult> = {};
    let bestMemNs = Infinity;
    for (const v of nativeMeasured) bestMemNs = Math.min(bestMemNs, reports[v].cases[spec.id]?.roofline?.memNs ?? Infinity);
    for (const v of measured) {
      const m = reports[v].cases[spec.id];
      if (m === undefined) continue;
      const js = reports.js?.cases[spec.id];
      const fwd = spec.forwardId ? reports[v].cases[spec.forwardId] : undefined;
      results[v] = {
        ...m,
        elementsPerSec: spec.elements / (m.medianNs * 1e-9),
        vsJs: js ? js.medianNs / m.medianNs : null,
        vsForward: fwd ? m.medianNs / fwd.medianNs : null,
        rooflineFraction: m.roofline ? m.roofline.ns / m.medianNs : null,
        machineRooflineFraction: m.roofline ? Math.max(bestMemNs, m.roofline.expNs) / m.medianNs : null,
      };
    }
    return { ...spec, results };
  });

  const probes: BenchResults['probes'] = {};
  for (const v of nativeMeasured) {
    const exp = reports[v].expPerSec!;
    // Bandwidth of the largest sum probe of each dtype (DRAM when it exceeds the caches).
    const bw = {} as Record<DType, number>;
    const bytes = {} as Record<DType, number>;
    for (const d of ['float32', 'float64'] as const) {
      let best: CaseResult | undefined;
      for (const c of cases) if (c.dtype === d && c.results[v]?.roofline && (!best || c.bytes > best.bytes)) best = c;
      bw[d] = best ? best.results[v].roofline!.probeGBs : 0;
      bytes[d] = best ? best.bytes : 0;
    }
    probes[v] = { expPerSec: exp, bandwidthGBs: bw, probeBytes: bytes };
  }
  const api: Record<string, Timing> = {};
  const asyncApi: Record<string, Timing> = {};
  for (const v of measured) {
    api[v] = reports[v].api;
    asyncApi[v] = reports[v].asyncApi;
  }

  const tv = threadsVariant !== null && reports[threadsVariant] ? threadsVariant : null;
  const threadCases: ThreadCaseResult[] = [];
  if (tv !== null) {
    for (const spec of threadSpecs) {
      const m = reports[tv].threads[spec.id];
      if (m === undefined) continue;
      const results: ThreadCaseResult['results'] = {};
      for (const [n, t] of Object.entries(m)) results[n] = { ...t, elementsPerSec: spec.elements / (t.medianNs * 1e-9) };
      const lo = m[String(threadCounts[0])];
      const hi = m[String(threadCounts[threadCounts.length - 1])];
      threadCases.push({
        ...spec,
        results,
        speedup: lo && hi && threadCounts.length > 1 ? lo.medianNs / hi.medianNs : null,
        syncMedianNs: reports[tv].cases[spec.syncId]?.medianNs ?? null,
      });
    }
  }
  const threads: BenchResults['threads'] = {
    variant: tv,
    counts: threadCounts,
    cases: threadCases,
    machineScaling: tv !== null ? reports[tv].machineScaling : null,
  };

  return {
    schema: 'kdloss-bench/2',
    date: new Date().toISOString(),
    machine: machineInfo(caps),
    policies,
    notes: [
      'Inputs, options objects and gradient outputs (gradOut) are preallocated: the timed loop allocates nothing besides the small result object (and, for the feature loss, its per-layer arrays of length 3).',
      'Synchronous calls with the default thread count of sync calls (1 thread), like the roofline probes.',
      `Async thread scaling (default variant only): forwardAsync(student, teacher, one-hot, { threads }) at ${threadCounts.join(' and ')} threads, each call awaited before the next, the thread counts measured interleaved; speedup = median at ${threadCounts[0]} / median at ${threadCounts[threadCounts.length - 1]}. Async latency: 64x10 float32 computeDistillationAsync (Int32Array targets, default threads) awaited one call at a time.`,
      'Each case: median time per call over samples of batched calls, after warm-up (see policies). The js backend may stop earlier on large cases.',
      'KD: T = 4, alpha = 0.7, CrossEntropyLoss from logits, reduction mean; elements = student elements. Feature: 3 layers of 256x4096 (and, larger than cache, of 2048x4096), p = 2. Attention: 256x4096 (and 4096x4096), beta = 2.',
      "Roofline per variant: max(memory time, exp time). Memory time = vecmath('sum') over as many bytes as the kernel reads (student + teacher + one-hot rows or class indices) plus the gradient it writes, counted once; exp time = 3 exps per student element (KD) at the measured vecmath('exp') rate; feature/attention need no exps. For cache-resident sizes the sum probe is dominated by the cost of one addon call.",
      'x js = js median / this median. grad/fwd = forward+grad median / forward-only median on the same variant.',
    ],
    variants: measured,
    defaultVariant: nativeMeasured[0] ?? null,
    errors,
    probes,
    api,
    asyncApi,
    cases,
    threads,
    checks: options.targets ? evaluateChecks(cases, api, asyncApi, threads, nativeMeasured) : [],
    elapsedMs: Date.now() - start,
  };
}
