/**
 * The machine's own thread scaling, the ceiling for the library's: `vecmath('exp')` over a small
 * cache-resident block, run for the same time window on 1 and on n worker threads at once (one addon
 * instance each, no shared data, nothing to synchronise). Throughput on n threads / throughput on 1
 * is what n cores of this machine give pure vector compute (turbo clocks drop as cores wake up, and a
 * VM's vCPUs may share physical resources); a kernel split over n threads cannot scale beyond it.
 * This file is also the workers' script.
 * @module
 */
import { isMainThread, parentPort, Worker } from 'worker_threads';
import { nativeAddon } from '../backend';

/** A start message: run from `startAt` to `endAt` (Date.now() milliseconds, shared by all threads). */
interface Window {
  startAt: number;
  endAt: number;
}

/** Elements per vecmath('exp') call: 8192 floats in and out (64 KB, L2-resident). */
const BLOCK = 8192;

function workerMain(): void {
  const addon = nativeAddon();
  if (addon === null) throw new Error('native addon not loaded');
  const input = new Float32Array(BLOCK);
  const output = new Float32Array(BLOCK);
  for (let i = 0; i < BLOCK; i++) input[i] = -20 * ((i * 0.618034) % 1);
  parentPort!.on('message', (w: Window | null) => {
    if (w === null) {
      parentPort!.close();
      return;
    }
    while (Date.now() < w.startAt) addon.vecmath('exp', input, output);
    let calls = 0;
    while (Date.now() < w.endAt) {
      addon.vecmath('exp', input, output);
      calls++;
    }
    parentPort!.postMessage(calls);
  });
  parentPort!.postMessage('ready');
}

/** The worker's next message (rejects if it fails first). */
function once(w: Worker): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: unknown): void => {
      w.off('error', onError);
      resolve(m);
    };
    const onError = (e: Error): void => {
      w.off('message', onMessage);
      reject(e);
    };
    w.once('message', onMessage);
    w.once('error', onError);
  });
}

/**
 * The median of all / one over the rounds where both counts are positive: a round in which a worker
 * got no time at all (a loaded machine) measures nothing and would make the ratio NaN or infinite.
 * Null without such a round.
 */
export function medianRatio(rounds: readonly { one: number; all: number }[]): number | null {
  const ratios = rounds.filter((r) => r.one > 0 && r.all > 0).map((r) => r.all / r.one);
  if (ratios.length === 0) return null;
  ratios.sort((a, b) => a - b);
  return ratios[ratios.length >> 1];
}

/**
 * Median over `rounds` of (exps/s on `threads` workers at once) / (exps/s on one worker), the two
 * measured alternately in windows of `windowMs`; needs the native addon (KDLOSS_ISA as set). Rounds in
 * which a worker got no time are measured again, up to three times as many in all; null when none
 * measured anything.
 */
export async function machineScaling(threads: number, rounds = 9, windowMs = 120): Promise<number | null> {
  const workers = Array.from({ length: threads }, () => new Worker(__filename));
  try {
    await Promise.all(workers.map(once));
    const run = async (n: number): Promise<number> => {
      const startAt = Date.now() + 30;
      const w: Window = { startAt, endAt: startAt + windowMs };
      const counts = await Promise.all(
        workers.slice(0, n).map((wk) => {
          const p = once(wk);
          wk.postMessage(w);
          return p as Promise<number>;
        }),
      );
      return counts.reduce((a, b) => a + b, 0);
    };
    await run(threads); // warm-up: code compiled, every worker's block in its cache
    const measured: { one: number; all: number }[] = [];
    for (let r = 0, valid = 0; valid < rounds && r < 3 * rounds; r++) {
      const one = await run(1);
      const all = await run(threads);
      measured.push({ one, all });
      if (one > 0 && all > 0) valid++;
    }
    return medianRatio(measured);
  } finally {
    for (const w of workers) w.postMessage(null);
    await Promise.all(workers.map((w) => new Promise((resolve) => w.once('exit', resolve))));
  }
}

if (!isMainThread) workerMain();
