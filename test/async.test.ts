// Async and multi-threaded evaluation: off the main thread, bitwise identical for every thread count,
// abortable, safe against GC of dropped inputs, and safe in worker_threads.
import { expect } from 'chai';
import * as path from 'path';
import { Worker } from 'worker_threads';
import {
  AbortError,
  AttentionTransferLoss,
  ConfigError,
  DistillationLoss,
  FeatureDistillationLoss,
  InputError,
  setBackend,
} from 'kdloss';
import { forEachBackend } from './helpers/backends';
import { Rng, toF32 } from './helpers/random';

const gc = (globalThis as { gc?: () => void }).gc;

function bitsEqual(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}

forEachBackend('async API', (backend) => {
  const rng = new Rng(21);

  it('resolves to the same values as the sync methods', async () => {
    const s = rng.matrix(64, 33);
    const t = rng.matrix(64, 33);
    const y = rng.classes(64, 33);
    const kd = new DistillationLoss(3, 0.6);
    expect(await kd.computeDistillationAsync(s, t, y)).to.equal(kd.computeDistillation(s, t, y));
    const r = await kd.forwardAsync(s, t, y, { reduction: 'none', grad: true });
    const sync = kd.forward(s, t, y, { reduction: 'none', grad: true });
    expect(r.loss).to.equal(sync.loss);
    expect(bitsEqual(r.perSample!, sync.perSample!)).to.equal(true);
    expect(bitsEqual(r.grad!, sync.grad!)).to.equal(true);
    const f = new FeatureDistillationLoss([1, 0.5], 1);
    expect(await f.computeFeatureLossAsync([s, t], [t, s])).to.equal(f.computeFeatureLoss([s, t], [t, s]));
    const a = new AttentionTransferLoss(2);
    expect(await a.computeAttentionLossAsync(s, t)).to.equal(a.computeAttentionLoss(s, t));
  });

  it('rejects at once when the signal is already aborted', async () => {
    const kd = new DistillationLoss(2, 0.5);
    const controller = new AbortController();
    controller.abort();
    const err = await kd.computeDistillationAsync([[1, 2]], [[2, 1]], [0], { signal: controller.signal }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(AbortError);
    expect((err as Error).name).to.equal('AbortError');
  });

  it('validates synchronously-detectable errors as rejections', async () => {
    const kd = new DistillationLoss(2, 0.5);
    const bad = await kd.computeDistillationAsync([[1, 2]], [[2, 1, 3]], [0]).catch((e: unknown) => e);
    expect((bad as { code: string }).code).to.equal('ERR_KD_SHAPE');
    const threads = await kd.computeDistillationAsync([[1, 2]], [[2, 1]], [0], { threads: 0 }).catch((e: unknown) => e);
    expect(threads).to.be.instanceOf(ConfigError);
    const signal = await kd.computeDistillationAsync([[1, 2]], [[2, 1]], [0], { signal: {} as AbortSignal }).catch((e: unknown) => e);
    expect(signal).to.be.instanceOf(InputError);
  });

  if (backend === 'native') {
    it('keeps the event loop running during a large call', async () => {
      // Long enough (tens of ms) that the completion cannot beat the next loop turn even on a loaded machine.
      const rows = 8192;
      const cols = 1000;
      const s = toF32(rng.matrix(rows, cols, 3));
      const t = toF32(rng.matrix(rows, cols, 3));
      const y = rng.classes(rows, cols);
      const kd = new DistillationLoss(4, 0.7);
      let settled = false;
      const promise = kd.computeDistillationAsync(s, t, y, { threads: 1 }).then((v) => {
        settled = true;
        return v;
      });
      const immediateRanFirst = await new Promise<boolean>((resolve) => setImmediate(() => resolve(!settled)));
      expect(immediateRanFirst).to.equal(true);
      expect(await promise).to.equal(kd.computeDistillation(s, t, y));
    });

    it('aborts a running call with an AbortError', async () => {
      const s = toF32(rng.matrix(4096, 1000, 3));
      const t = toF32(rng.matrix(4096, 1000, 3));
      const kd = new DistillationLoss(4, 0.7);
      const controller = new AbortController();
      const promise = kd.forwardAsync(s, t, rng.classes(4096, 1000), { signal: controller.signal, grad: true, threads: 1 });
      controller.abort(new Error('client went away'));
      const err = await promise.then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).to.be.instanceOf(AbortError);
      expect((err as Error & { cause?: Error }).cause?.message).to.equal('client went away');
    });

    it('keeps inputs alive when the caller drops them and GC runs mid-flight', async function () {
      if (gc === undefined) this.skip();
      const kd = new DistillationLoss(2, 0.5);
      const reference = (() => {
        const r = new Rng(99);
        return kd.computeDistillation(toF32(r.matrix(2048, 500)), toF32(r.matrix(2048, 500)), r.classes(2048, 500));
      })();
      const start = () => {
        const r = new Rng(99);
        return kd.computeDistillationAsync(toF32(r.matrix(2048, 500)), toF32(r.matrix(2048, 500)), r.classes(2048, 500), { threads: 1 });
      };
      const promise = start();
      for (let i = 0; i < 5; i++) {
        gc!();
        // Churn the heap so freed buffers would be reused.
        new Float32Array(1 << 20).fill(Math.random());
      }
      // The reference reads other buffers of the same values, which may sit at another alignment and
      // so differ in the last bits (README, Accuracy); memory freed and reused by the churn would move
      // the value by far more than this.
      expect(await promise).to.be.closeTo(reference, 1e-6 * Math.abs(reference));
    });
  }
});

describe('threads', () => {
  const rng = new Rng(33);
  // Large enough for many row blocks, with widths that are no multiple of any vector width.
  const s = rng.matrix(1500, 97, 4);
  const t = rng.matrix(1500, 97, 4);
  const y = rng.classes(1500, 97);
  const s32 = toF32(s);
  const t32 = toF32(t);
  const counts = [1, 2, 3, 8];

  for (const [name, student, teacher] of [
    ['float64', s, t],
    ['float32', s32, t32],
  ] as const) {
    it(`gives bitwise identical ${name} results for 1, 2, 3 and 8 threads, sync and async, every run`, async () => {
      const kd = new DistillationLoss(3, 0.4);
      const f = new FeatureDistillationLoss([1, 2], 2);
      const a = new AttentionTransferLoss(1.5);
      const results: number[][] = [];
      for (const threads of counts) {
        for (let run = 0; run < 2; run++) {
          const k = kd.forward(student, teacher, y, { threads, grad: true, reduction: 'none' });
          const ka = await kd.forwardAsync(student, teacher, y, { threads, grad: true, reduction: 'none' });
          expect(bitsEqual(k.grad!, ka.grad!)).to.equal(true);
          expect(bitsEqual(k.perSample!, ka.perSample!)).to.equal(true);
          const fs = f.forward([student, teacher], [teacher, student], { threads });
          const fa = await f.forwardAsync([student, teacher], [teacher, student], { threads });
          const as = a.forward(student, teacher, { threads, grad: true });
          const aa = await a.forwardAsync(student, teacher, { threads, grad: true });
          expect(bitsEqual(as.grad!, aa.grad!)).to.equal(true);
          results.push([k.loss, ka.loss, k.soft, k.hard, fs.loss, fa.loss, ...fs.perLayer, as.loss, aa.loss]);
        }
      }
      for (const r of results) expect(r).to.deep.equal(results[0]);
    });
  }
});

describe('concurrency', () => {
  before(() => setBackend('native'));

  it('settles 10,000 concurrent small async calls correctly and returns memory afterwards', async function () {
    this.timeout(120000);
    const kd = new DistillationLoss(2, 0.5);
    const rng = new Rng(5);
    const inputs = Array.from({ length: 16 }, () => ({ s: rng.matrix(4, 10), t: rng.matrix(4, 10), y: rng.classes(4, 10) }));
    const expected = inputs.map(({ s, t, y }) => kd.computeDistillation(s, t, y));
    const round = async () => {
      const all = Array.from({ length: 10000 }, (_, i) => {
        const { s, t, y } = inputs[i % 16];
        return kd.computeDistillationAsync(s, t, y);
      });
      const values = await Promise.all(all);
      values.forEach((v, i) => expect(v).to.equal(expected[i % 16]));
    };
    await round();
    gc?.();
    const baseline = process.memoryUsage().rss;
    for (let i = 0; i < 3; i++) await round();
    gc?.();
    const grown = process.memoryUsage().rss - baseline;
    expect(grown, `RSS grew by ${grown} bytes`).to.be.below(64 * 1024 * 1024);
  });

  it('runs in 4 worker_threads at once, each matching the main thread', async function () {
    this.timeout(60000);
    const script = path.join(__dirname, 'helpers', 'worker-eval.js');
    const kd = new DistillationLoss(3, 0.5);
    const seeds = [1, 2, 3, 4];
    const expected = seeds.map((seed) => {
      const r = new Rng(seed);
      return kd.computeDistillation(toF32(r.matrix(300, 77)), toF32(r.matrix(300, 77)), r.classes(300, 77));
    });
    const got = await Promise.all(
      seeds.map(
        (seed) =>
          new Promise<number[]>((resolve, reject) => {
            const w = new Worker(script, { workerData: { seed, mode: 'compute' } });
            w.once('message', resolve);
            w.once('error', reject);
          }),
      ),
    );
    got.forEach(([sync, async], i) => {
      expect(sync).to.equal(expected[i]);
      expect(async).to.equal(expected[i]);
    });
  });

  it('survives terminating a worker while its async call runs', async function () {
    this.timeout(60000);
    const script = path.join(__dirname, 'helpers', 'worker-eval.js');
    for (let i = 0; i < 3; i++) {
      const w = new Worker(script, { workerData: { seed: i, mode: 'long' } });
      await new Promise<void>((resolve, reject) => {
        w.once('message', () => resolve());
        w.once('error', reject);
      });
      await w.terminate();
    }
    // The process is still healthy and computing.
    expect(new DistillationLoss(2, 0.5).computeDistillation([[1, 2]], [[2, 1]], [0])).to.be.greaterThan(0);
  });
});
