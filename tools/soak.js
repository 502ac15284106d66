#!/usr/bin/env node
// Soak test of the native backend: many small sync calls, many async calls through the thread pool
// (some aborted), a few very large gradient calls, and worker threads terminated in the middle of
// their calls. Prints RSS and external memory (process.memoryUsage()) during and after each phase,
// and fails (exit 1) when memory after a phase, with its arrays dropped and garbage collected, exceeds
// the baseline measured after warm-up by more than the bound.
//
//   node tools/soak.js [--sync N] [--async N] [--large N] [--large-cols C] [--workers N]
//                      [--rss-bound MB] [--external-bound MB] [--quick] [--only PHASE]
//
// Defaults: 10^6 sync calls, 10^5 async calls, 3 large calls (4 x 2^25 float32, grad, threads 2),
// 200 workers; bounds: RSS +64 MB, external +16 MB over the baseline. --quick divides the counts by
// 100 (workers by 10) and the large calls' width by 16. The workers phase runs in a child process of
// its own (with its own warm-up and baseline), so that a crash there is reported, not fatal to the
// soak. Needs the compiled library (npm run build:ts) and the addon.
'use strict';
const path = require('path');
const { spawnSync } = require('child_process');

if (typeof global.gc !== 'function') {
  // Re-run with --expose-gc: the memory checks are taken after full collections.
  const r = spawnSync(process.execPath, ['--expose-gc', __filename, ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(r.status === null ? 1 : r.status);
}

const { Worker } = require('worker_threads');
const ROOT = path.join(__dirname, '..');
const kd = require(ROOT);

const MB = 1 << 20;

function parseArgs(argv) {
  const o = { sync: 1e6, async: 1e5, large: 3, largeCols: 2 ** 25, workers: 200, rssBound: 64, externalBound: 16, only: null };
  let quick = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = () => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v < 0) {
        console.error(`soak: ${a}: expected a non-negative number, got ${argv[i]}`);
        process.exit(2);
      }
      return v;
    };
    if (a === '--sync') o.sync = num();
    else if (a === '--async') o.async = num();
    else if (a === '--large') o.large = num();
    else if (a === '--large-cols') o.largeCols = num();
    else if (a === '--workers') o.workers = num();
    else if (a === '--rss-bound') o.rssBound = num();
    else if (a === '--external-bound') o.externalBound = num();
    else if (a === '--quick') quick = true;
    else if (a === '--only') o.only = argv[++i];
    else {
      console.error(`soak: unknown argument ${a} (see the header of tools/soak.js)`);
      process.exit(2);
    }
  }
  if (quick) {
    o.sync = Math.round(o.sync / 100);
    o.async = Math.round(o.async / 100);
    o.largeCols = Math.round(o.largeCols / 16);
    o.workers = Math.max(10, Math.round(o.workers / 10));
  }
  return o;
}

const t0 = Date.now();
function mem() {
  const m = process.memoryUsage();
  return { rss: m.rss / MB, heap: m.heapUsed / MB, external: m.external / MB, arrayBuffers: m.arrayBuffers / MB };
}
function line(phase, what, m = mem()) {
  const s = ((Date.now() - t0) / 1000).toFixed(1).padStart(7);
  console.log(
    `${s} s  ${phase.padEnd(8)} ${what.padEnd(26)} rss ${m.rss.toFixed(1).padStart(8)} MB  heap ${m.heap.toFixed(1).padStart(6)} MB  ` +
      `external ${m.external.toFixed(1).padStart(8)} MB  arrayBuffers ${m.arrayBuffers.toFixed(1).padStart(8)} MB`,
  );
  return m;
}
/** Memory after full collections (twice: finalizers of the first free what the second collects). */
async function settled() {
  for (let i = 0; i < 3; i++) {
    global.gc();
    await new Promise((r) => setImmediate(r));
  }
  return mem();
}

function randomF32(n, seed) {
  const a = new Float32Array(n);
  let s = seed >>> 0 || 1;
  const block = Math.min(n, 1 << 16);
  for (let i = 0; i < block; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    a[i] = ((s >>> 0) / 4294967296 - 0.5) * 8;
  }
  for (let i = block; i < n; i += block) a.copyWithin(i, 0, Math.min(block, n - i));
  return a;
}
const matrix = (rows, cols, seed) => ({ data: randomF32(rows * cols, seed), rows, cols });

// ---- phases ----------------------------------------------------------------------------------

function smallCalls(n, phase) {
  const kdLoss = new kd.DistillationLoss(4, 0.7);
  const feature = new kd.FeatureDistillationLoss([1, 0.5], 2);
  const attention = new kd.AttentionTransferLoss(2);
  const s = matrix(8, 16, 1);
  const t = matrix(8, 16, 2);
  const labels = Int32Array.from({ length: 8 }, (_, i) => i % 16);
  const f2 = [matrix(8, 24, 3), matrix(8, 24, 4)];
  const report = Math.max(1, Math.round(n / 10));
  let sink = 0;
  for (let i = 0; i < n; i++) {
    // Each call allocates its results (and every 2nd a gradient), which GC must reclaim.
    switch (i % 4) {
      case 0:
      case 1:
        sink += kdLoss.forward(s, t, labels, { grad: i % 2 === 0, reduction: i % 8 === 0 ? 'none' : 'mean' }).loss;
        break;
      case 2:
        sink += feature.forward([s, f2[0]], [t, f2[1]], { grad: true }).loss;
        break;
      default:
        sink += attention.forward(s, t, { grad: true }).loss;
    }
    if ((i + 1) % report === 0) line(phase, `${i + 1} sync calls`);
  }
  if (!Number.isFinite(sink)) throw new Error('soak: a small call gave a non-finite loss');
}

async function asyncCalls(n) {
  // 8 x 2560 = 20480 elements: above the inline threshold, so every call goes to the thread pool.
  const kdLoss = new kd.DistillationLoss(2, 0.5);
  const attention = new kd.AttentionTransferLoss(1.5);
  const s = matrix(8, 2560, 5);
  const t = matrix(8, 2560, 6);
  const labels = Int32Array.from({ length: 8 }, (_, i) => i);
  const report = Math.max(1, Math.round(n / 10));
  const inFlight = 4;
  let done = 0;
  let aborted = 0;
  const one = async (i) => {
    const controller = i % 50 === 49 ? new AbortController() : null;
    const options = { threads: 1 + (i % 2), grad: i % 3 === 0, signal: controller?.signal };
    const p = i % 5 === 4 ? attention.forwardAsync(s, t, options) : kdLoss.forwardAsync(s, t, labels, options);
    if (controller) setImmediate(() => controller.abort());
    try {
      await p;
    } catch (err) {
      if (err?.name !== 'AbortError') throw err;
      aborted++;
    }
    done++;
    if (done % report === 0) line('async', `${done} async calls`);
  };
  let next = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < n) await one(next++);
    }),
  );
  return aborted;
}

function largeCalls(n, cols) {
  const loss = new kd.DistillationLoss(2, 0.5);
  for (let i = 0; i < n; i++) {
    let s = matrix(4, cols, 7 + i);
    let t = matrix(4, cols, 9 + i);
    let labels = Int32Array.from([0, 1, 2, 3]);
    line('large', `call ${i + 1}: inputs allocated`);
    let r = loss.forward(s, t, labels, { grad: true, threads: 2 });
    line('large', `call ${i + 1}: done, grad held`);
    if (!Number.isFinite(r.loss)) throw new Error('soak: a large call gave a non-finite loss');
    s = t = labels = r = null;
  }
}

const WORKER = `
const { parentPort, workerData } = require('worker_threads');
const kd = require(workerData.root);
const rows = 16, cols = 8192;
const f = (seed) => { const a = new Float32Array(rows * cols); for (let i = 0; i < a.length; i++) a[i] = Math.sin(i * seed); return { data: a, rows, cols }; };
const s = f(1.3), t = f(0.7);
const labels = Int32Array.from({ length: rows }, (_, i) => i);
const loss = new kd.DistillationLoss(2, 0.5);
parentPort.postMessage('ready');
(async () => {
  for (;;) {
    await loss.forwardAsync(s, t, labels, { grad: true, threads: 2 });
    loss.forward(s, t, labels, { grad: true });
  }
})();
`;

async function workers(n) {
  const report = Math.max(1, Math.round(n / 10));
  for (let i = 0; i < n; i++) {
    const w = new Worker(WORKER, { eval: true, workerData: { root: ROOT } });
    await new Promise((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
    // Let it get into its calls (sync and async alternate), then terminate it mid-call.
    await new Promise((r) => setTimeout(r, 1 + (i % 20)));
    await w.terminate();
    if ((i + 1) % report === 0) line('workers', `${i + 1} workers terminated`);
  }
}

// ---- main -------------------------------------------------------------------------------------

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (kd.getBackend() !== 'native') {
    console.error(`soak: the native backend is not loaded (${kd.nativeLoadError()?.message}); build it first`);
    process.exit(2);
  }
  console.log(
    `soak: kernel variant ${kd.isa()}; ${o.sync} sync calls, ${o.async} async calls, ${o.large} large calls of 4 x ${o.largeCols} ` +
      `float32, ${o.workers} workers; bounds: rss +${o.rssBound} MB, external +${o.externalBound} MB after warm-up`,
  );
  line('start', 'before warm-up');
  smallCalls(Math.min(o.sync, 20000), 'warm-up');
  await asyncCalls(Math.min(o.async, 2000));
  const base = line('warm-up', 'baseline (after GC)', await settled());

  const failures = [];
  const check = async (phase) => {
    const m = line(phase, 'after the phase and GC', await settled());
    const drss = m.rss - base.rss;
    const dext = m.external - base.external;
    if (drss > o.rssBound || dext > o.externalBound) {
      failures.push(`${phase}: rss ${drss >= 0 ? '+' : ''}${drss.toFixed(1)} MB, external ${dext >= 0 ? '+' : ''}${dext.toFixed(1)} MB over the baseline`);
    }
    return { drss, dext };
  };
  const summary = [];
  const phase = async (name, run) => {
    const t = Date.now();
    const extra = await run();
    const d = await check(name);
    summary.push(
      `${name.padEnd(8)} ${((Date.now() - t) / 1000).toFixed(1).padStart(7)} s   rss ${d.drss >= 0 ? '+' : ''}${d.drss.toFixed(1)} MB   ` +
        `external ${d.dext >= 0 ? '+' : ''}${d.dext.toFixed(1)} MB${extra ? `   (${extra})` : ''}`,
    );
  };
  if (o.only === null || o.only === 'sync') await phase('sync', () => smallCalls(o.sync, 'sync'));
  if (o.only === null || o.only === 'async') await phase('async', async () => `${await asyncCalls(o.async)} aborted`);
  if (o.only === null || o.only === 'large') await phase('large', () => largeCalls(o.large, o.largeCols));
  if (o.only === 'workers') await phase('workers', () => workers(o.workers));
  if (o.only === null) {
    // In a process of its own: terminating workers mid-call must not take the soak down with it.
    const t = Date.now();
    const args = ['--expose-gc', __filename, '--only', 'workers', '--workers', String(o.workers)];
    args.push('--rss-bound', String(o.rssBound), '--external-bound', String(o.externalBound));
    console.log(`\n--- workers phase in a child process: ${args.slice(1).join(' ')}`);
    const r = spawnSync(process.execPath, args, { stdio: 'inherit' });
    const how = r.status === 0 ? 'passed' : r.signal !== null ? `CRASHED (signal ${r.signal})` : `failed (exit code ${r.status})`;
    console.log(`--- workers phase ${how}\n`);
    summary.push(`${'workers'.padEnd(8)} ${((Date.now() - t) / 1000).toFixed(1).padStart(7)} s   in a child process: ${how}`);
    if (r.status !== 0) failures.push(`workers: the child process ${how}`);
  }
  const end = line('end', 'final (after GC)', await settled());

  console.log(`\nsoak summary (kernel variant ${kd.isa()}; growth over the baseline rss ${base.rss.toFixed(1)} MB, external ${base.external.toFixed(1)} MB):`);
  for (const s of summary) console.log(`  ${s}`);
  console.log(`  final    rss ${end.rss.toFixed(1)} MB, external ${end.external.toFixed(1)} MB, ${((Date.now() - t0) / 1000).toFixed(1)} s in all`);
  if (failures.length > 0) {
    console.log(`\nsoak: FAILED (bounds: rss +${o.rssBound} MB, external +${o.externalBound} MB over the baseline):`);
    for (const f of failures) console.log(`  ${f}`);
    process.exit(1);
  }
  console.log('soak: passed');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
