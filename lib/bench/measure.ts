/**
 * Timing: warm-up, then samples of batched calls until a time box closes; the median per call.
 * @module
 */
import type { Timing, TimingPolicy } from './types';

/** Keeps results observable so no call can be optimised away. */
let sink = 0;

/** Consumes a call's result. */
export function consume(v: unknown): void {
  if (typeof v === 'number') sink += v;
  else if (v !== null && typeof v === 'object' && typeof (v as { loss?: unknown }).loss === 'number') sink += (v as { loss: number }).loss;
  else sink += 1;
}

/** The sink's value (printed nowhere; read so the engine must keep the calls). */
export function sinkValue(): number {
  return sink;
}

const now = (): number => Number(process.hrtime.bigint());

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Times `fn` under `policy`: median and minimum nanoseconds per call. */
export function measure(fn: () => unknown, policy: TimingPolicy): Timing {
  // Warm-up: at least one call and warmupMs.
  const w0 = now();
  do consume(fn());
  while (now() - w0 < policy.warmupMs * 1e6);
  // Batch size: doubled until one batch takes sampleUs (warm code, so JIT time does not skew it).
  const target = policy.sampleUs * 1e3;
  let batch = 1;
  for (;;) {
    const b0 = now();
    for (let i = 0; i < batch; i++) consume(fn());
    const dt = now() - b0;
    if (dt >= target || batch >= 1 << 20) {
      batch = Math.max(1, Math.min(batch, Math.round((batch * target) / Math.max(dt, 1))));
      break;
    }
    batch = dt > 0 ? Math.min(batch * 8, Math.max(batch * 2, Math.ceil((batch * target) / dt))) : batch * 8;
  }

  const samples: number[] = [];
  const t0 = now();
  for (;;) {
    const s0 = now();
    for (let i = 0; i < batch; i++) consume(fn());
    const s1 = now();
    samples.push((s1 - s0) / batch);
    const total = s1 - t0;
    if (samples.length >= policy.minSamples && total >= policy.minTimeMs * 1e6) break;
    if (samples.length >= policy.floorSamples && total >= policy.maxTimeMs * 1e6) break;
  }
  return { medianNs: median(samples), minNs: Math.min(...samples), samples: samples.length, batch };
}

/** Calls of `fn` awaited one after the other; the time of the whole batch. */
async function timeBatch(fn: () => Promise<unknown>, batch: number): Promise<number> {
  const b0 = now();
  for (let i = 0; i < batch; i++) consume(await fn());
  return now() - b0;
}

/**
 * Times async calls, each awaited before the next starts (so the latency of one call, not the
 * throughput of overlapping ones). Several functions are measured interleaved, one sample of each per
 * round, so that a change in the machine's load affects them alike (their ratio is what matters):
 * warm-up, a batch size per function as in {@link measure}, then rounds until the time box closes.
 */
export async function measureAsync(fns: (() => Promise<unknown>)[], policy: TimingPolicy): Promise<Timing[]> {
  const target = policy.sampleUs * 1e3;
  const batches: number[] = [];
  for (const fn of fns) {
    const w0 = now();
    do consume(await fn());
    while (now() - w0 < policy.warmupMs * 1e6);
    let batch = 1;
    for (;;) {
      const dt = await timeBatch(fn, batch);
      if (dt >= target || batch >= 1 << 20) {
        batch = Math.max(1, Math.min(batch, Math.round((batch * target) / Math.max(dt, 1))));
        break;
      }
      batch = dt > 0 ? Math.min(batch * 8, Math.max(batch * 2, Math.ceil((batch * target) / dt))) : batch * 8;
    }
    batches.push(batch);
  }

  const samples: number[][] = fns.map(() => []);
  // CPU time of the process (all threads) per wall time, per function: how many cores its calls got.
  const cpuUs = fns.map(() => 0);
  const wallNs = fns.map(() => 0);
  const t0 = now();
  for (;;) {
    for (const [i, fn] of fns.entries()) {
      const c0 = process.cpuUsage();
      const dt = await timeBatch(fn, batches[i]);
      const c = process.cpuUsage(c0);
      cpuUs[i] += c.user + c.system;
      wallNs[i] += dt;
      samples[i].push(dt / batches[i]);
    }
    const total = now() - t0;
    const n = samples[0].length;
    if (n >= policy.minSamples && total >= policy.minTimeMs * 1e6 * fns.length) break;
    if (n >= policy.floorSamples && total >= policy.maxTimeMs * 1e6 * fns.length) break;
  }
  return samples.map((s, i) => ({
    medianNs: median(s),
    minNs: Math.min(...s),
    samples: s.length,
    batch: batches[i],
    cpuPerWall: (cpuUs[i] * 1e3) / Math.max(wallNs[i], 1),
  }));
}
