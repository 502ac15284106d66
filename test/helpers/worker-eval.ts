// Runs inside a worker_thread for test/async.test.ts: loads kdloss in the worker and computes.
import { parentPort, workerData } from 'worker_threads';
import { DistillationLoss } from 'kdloss';
import { Rng, toF32 } from './random';

const { seed, mode } = workerData as { seed: number; mode: 'compute' | 'long' };
const kd = new DistillationLoss(3, 0.5);

async function main(): Promise<void> {
  if (mode === 'compute') {
    const r = new Rng(seed);
    const s = toF32(r.matrix(300, 77));
    const t = toF32(r.matrix(300, 77));
    const y = r.classes(300, 77);
    const sync = kd.computeDistillation(s, t, y);
    const async = await kd.computeDistillationAsync(s, t, y, { threads: 2 });
    parentPort!.postMessage([sync, async]);
  } else {
    // A long call in flight when the parent terminates this worker.
    const r = new Rng(seed);
    // Environment teardown waits for the call in flight (it cannot be interrupted mid-block), so keep
    // it long enough to be running when terminate() arrives but short enough for a quick test.
    const s = toF32(r.matrix(2048, 1000));
    const t = toF32(r.matrix(2048, 1000));
    const pending = kd.forwardAsync(s, t, r.classes(2048, 1000), { grad: true, threads: 2 });
    parentPort!.postMessage('started');
    await pending;
  }
}

void main();
