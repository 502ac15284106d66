// Hostile scenarios against async calls, each run in a child process by safety.test.ts (a crash then
// fails one test instead of ending the suite): `node --expose-gc hostile.js <scenario>` prints "ok"
// and exits 0, or prints what went wrong and exits 1.
import { Worker } from 'worker_threads';
import { AbortError, AttentionTransferLoss, DistillationLoss, FeatureDistillationLoss, InputError, setBackend } from 'kdloss';

const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** rows x cols float32 logits: a deterministic block of 4096 values, tiled (fast to make). */
function logits(rows: number, cols: number, seed: number): Float32Array {
  const block = new Float32Array(4096);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < block.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    block[i] = ((x >>> 0) / 4294967296) * 8 - 4;
  }
  const a = new Float32Array(rows * cols);
  for (let i = 0; i < a.length; i += block.length) a.set(block.subarray(0, Math.min(block.length, a.length - i)), i);
  return a;
}

/** Takes `buffer` away from this thread the way `how` does, if the runtime lets it; drops the copy. */
async function takeAway(buffer: ArrayBuffer, how: 'clone' | 'worker'): Promise<void> {
  if (how === 'clone') {
    try {
      structuredClone(buffer, { transfer: [buffer] });
    } catch (err) {
      if ((err as Error).name !== 'DataCloneError') throw err;
    }
    gc();
    return;
  }
  // The worker inherits --expose-gc (V8 flags are per process).
  const w = new Worker("require('worker_threads').parentPort.once('message', () => { globalThis.gc && gc(); require('worker_threads').parentPort.postMessage('dropped'); });", {
    eval: true,
  });
  const dropped = new Promise((resolve) => w.once('message', resolve));
  try {
    w.postMessage(buffer, [buffer]);
  } catch (err) {
    if ((err as Error).name !== 'DataCloneError') throw err;
    w.postMessage(null);
  }
  await dropped;
  await w.terminate();
  gc();
}

type Role = 'student' | 'teacher' | 'gradOut';

/** Transfers one of an async call's buffers away while the call runs; the result must be the sync one. */
async function transfer(loss: 'kd' | 'feature' | 'attention', role: Role, how: 'clone' | 'worker'): Promise<void> {
  const rows = 2048;
  const cols = 8192; // 64 MB per float32 input
  const s = logits(rows, cols, 1);
  const t = logits(rows, cols, 2);
  const y = new Int32Array(rows).map((_, r) => r % cols);
  const g = new Float32Array(rows * cols);
  const S = { data: s, rows, cols };
  const Tm = { data: t, rows, cols };
  let expected: number;
  let run: () => Promise<number>;
  if (loss === 'kd') {
    const kd = new DistillationLoss(2, 0.5);
    expected = kd.forward(S, Tm, y).loss;
    run = async () => (await kd.forwardAsync(S, Tm, y, { gradOut: g, threads: 1 })).loss;
  } else if (loss === 'feature') {
    const f = new FeatureDistillationLoss([1], 2);
    expected = f.forward([S], [Tm]).loss;
    run = async () => (await f.forwardAsync([S], [Tm], { gradOut: [g], threads: 1 })).loss;
  } else {
    const at = new AttentionTransferLoss(2);
    expected = at.forward(S, Tm).loss;
    run = async () => (await at.forwardAsync(S, Tm, { gradOut: g, threads: 1 })).loss;
  }
  const pending = run();
  const victim = role === 'student' ? s : role === 'teacher' ? t : g;
  await takeAway(victim.buffer as ArrayBuffer, how);
  const got = await pending;
  if (got !== expected) throw new Error(`${loss} ${role} ${how}: got ${got}, expected ${expected}`);
  if (victim.length !== rows * cols) throw new Error(`${loss} ${role} ${how}: the caller's buffer was detached`);
}

/** Aborts an async call over rows of 8 M floats: once it rejects, nothing writes gradOut any more. */
async function abortThenQuiet(): Promise<void> {
  const rows = 3;
  const cols = 1 << 22;
  const s = logits(rows, cols, 3);
  const t = logits(rows, cols, 4);
  const g = new Float32Array(rows * cols).fill(NaN);
  const kd = new DistillationLoss(2, 0.5);
  const controller = new AbortController();
  const pending = kd.forwardAsync({ data: s, rows, cols }, { data: t, rows, cols }, new Int32Array(rows), {
    gradOut: g,
    threads: 1,
    signal: controller.signal,
  });
  controller.abort();
  const err = await pending.then(
    () => null,
    (e: unknown) => e,
  );
  if (!(err instanceof AbortError)) throw new Error(`expected an AbortError, got ${String(err)}`);
  const settled = new Uint32Array(g.buffer.slice(0));
  await sleep(150);
  const now = new Uint32Array(g.buffer);
  for (let i = 0; i < now.length; i++) {
    if (now[i] !== settled[i]) throw new Error(`gradOut[${i}] was written after the call settled`);
  }
  await takeAway(g.buffer as ArrayBuffer, 'clone');
  await sleep(50);
}

/** Shrinks a resizable ArrayBuffer under an async call: refused up front, never read after a shrink. */
async function resizeInFlight(): Promise<void> {
  const n = 1 << 22;
  const AB = ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ArrayBuffer & { resize(n: number): void };
  let rab: ArrayBuffer & { resize(n: number): void };
  try {
    rab = new AB(4 * n, { maxByteLength: 4 * n });
  } catch {
    return; // no resizable ArrayBuffers in this runtime
  }
  const s = new Float32Array(rab, 0, n);
  s.set(logits(1, n, 5));
  const t = logits(1, n, 6);
  const kd = new DistillationLoss(2, 1);
  const M = (data: Float32Array) => ({ data, rows: 1024, cols: n / 1024 });
  const pending = kd.forwardAsync(M(s), M(t), new Int32Array(1024), { threads: 1 }).then(
    () => null,
    (e: unknown) => e,
  );
  rab.resize(0);
  gc();
  const err = await pending;
  if (!(err instanceof InputError) || !/resizable ArrayBuffer/.test(err.message)) throw new Error(`expected an InputError, got ${String(err)}`);
}

/** The js backend's async call over a buffer detached before it ran: an InputError, no computation. */
async function jsDetached(): Promise<void> {
  setBackend('js');
  const kd = new DistillationLoss(2, 1);
  const n = 1 << 15;
  const s = logits(1, n, 7);
  const pending = kd.forwardAsync({ data: s, rows: 32, cols: n / 32 }, { data: logits(1, n, 8), rows: 32, cols: n / 32 }, new Int32Array(32)).then(
    () => null,
    (e: unknown) => e,
  );
  structuredClone(s.buffer, { transfer: [s.buffer as ArrayBuffer] });
  const err = await pending;
  if (!(err instanceof InputError) || !/detached or resized/.test(err.message)) throw new Error(`expected an InputError, got ${String(err)}`);
}

/** Grows (so detaches the buffer of) a WebAssembly.Memory under an async call and drops it. */
async function wasmGrow(): Promise<void> {
  type Memory = { buffer: ArrayBuffer; grow(pages: number): number };
  const Wasm = (globalThis as unknown as { WebAssembly: { Memory: new (d: { initial: number; maximum: number }) => Memory } }).WebAssembly;
  let memory: Memory | null = new Wasm.Memory({ initial: 1024, maximum: 2048 });
  const n = (64 << 20) / 4;
  const s = new Float32Array(memory.buffer, 0, n);
  s.set(logits(1, n, 9));
  const t = logits(1, n, 10);
  const kd = new DistillationLoss(2, 1);
  const M = (data: Float32Array) => ({ data, rows: 2048, cols: n / 2048 });
  const expected = kd.forward(M(s), M(t), new Int32Array(2048)).loss;
  const pending = kd.forwardAsync(M(s), M(t), new Int32Array(2048), { threads: 1 });
  memory.grow(1);
  memory = null;
  gc();
  const got = (await pending).loss;
  if (got !== expected) throw new Error(`got ${got}, expected ${expected}`);
}

/**
 * Starts workers that run async calls back to back and terminates each at a varying moment: whatever a
 * call is doing when its environment goes away (converting its arguments, computing, settling), the
 * process carries on.
 */
async function workersTerminated(): Promise<void> {
  const code = `const kd = require(${JSON.stringify(require.resolve('kdloss'))});
    const m = (v) => ({ data: new Float32Array(16 * 8192).fill(v), rows: 16, cols: 8192 });
    const s = m(1), t = m(2), y = new Int32Array(16), loss = new kd.DistillationLoss(2, 0.5);
    require('worker_threads').parentPort.postMessage(0);
    (async () => { for (;;) await loss.forwardAsync(s, t, y, { threads: 2 }); })();`;
  for (let i = 0; i < 120; i++) {
    const w = new Worker(code, { eval: true });
    await new Promise((resolve) => w.once('message', resolve));
    await sleep(i % 20);
    await w.terminate();
  }
}

const scenarios: Record<string, () => Promise<void>> = {
  'wasm-grow': wasmGrow,
  'workers-terminated': workersTerminated,
  abort: abortThenQuiet,
  resize: resizeInFlight,
  'js-detached': jsDetached,
};
for (const loss of ['kd', 'feature', 'attention'] as const) {
  for (const role of ['student', 'teacher', 'gradOut'] as const) {
    for (const how of ['clone', 'worker'] as const) scenarios[`transfer-${loss}-${role}-${how}`] = () => transfer(loss, role, how);
  }
}

const name = process.argv[2];
if (name === '--list') {
  console.log(Object.keys(scenarios).join('\n'));
} else if (scenarios[name] === undefined) {
  console.error(`unknown scenario ${name}`);
  process.exit(2);
} else {
  scenarios[name]().then(
    () => console.log('ok'),
    (err: unknown) => {
      console.error(String((err as Error)?.stack ?? err));
      process.exit(1);
    },
  );
}
