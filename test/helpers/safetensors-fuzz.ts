// A seeded fuzzer of safetensors headers for kdloss eval: corrupted variants of a valid file (random
// truncations, bit flips, huge or lying lengths, values of the wrong type, overlapping and
// out-of-range offsets, deep or huge JSON, bytes that are not UTF-8, duplicate keys, garbage), each
// opened and read in full as kdloss eval does. Every case must end in success (the corruption left a
// valid file) or a CliError with exit code 2 whose message starts with the file's name: never another
// exception (exit code 1), a hang, or a large allocation.
//
// The test (test/cli-safetensors-fuzz.test.ts) runs a few hundred cases; longer runs:
//   npm run pretest && node dist-test/test/helpers/safetensors-fuzz.js --cases 200000 --seed 7
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Rng } from './random';
import { headerBytes, layout, type StTensor } from './safetensors';

const ROOT = path.resolve(__dirname, '..', '..', '..');
/* eslint-disable @typescript-eslint/no-require-imports */
const chunks = require(path.join(ROOT, 'dist', 'cli', 'chunks.js')) as typeof import('../../dist/cli/chunks');
const errors = require(path.join(ROOT, 'dist', 'cli', 'errors.js')) as typeof import('../../dist/cli/errors');
const text = require(path.join(ROOT, 'dist', 'util', 'text.js')) as typeof import('../../dist/util/text');
/* eslint-enable @typescript-eslint/no-require-imports */

const R = 6;
const V = 5;

/** The valid file every case corrupts: student, teacher (BF16) and labels (I64), with metadata. */
function baseTensors(rng: Rng): Record<string, StTensor> {
  return {
    student: { dtype: 'F32', shape: [2, 3, V], data: Float32Array.from({ length: R * V }, () => rng.normal()) },
    teacher: { dtype: 'F32', shape: [R, V], data: Float32Array.from({ length: R * V }, () => rng.normal()) },
    labels: { dtype: 'I64', shape: [2, 3], data: BigInt64Array.from({ length: R }, () => BigInt(rng.int(V))) },
  };
}

/** A random JSON value of any type, small. */
function randomValue(rng: Rng): unknown {
  const pick = rng.int(9);
  return [null, true, 'F32', -1, 2.5, 1e300, [], {}, 'x'.repeat(rng.int(50))][pick];
}

function setLength(b: Buffer, n: bigint): Buffer {
  const out = Buffer.from(b);
  out.writeBigUInt64LE(BigInt.asUintN(64, n), 0);
  return out;
}

/** One corrupted variant of a valid file: what was done, and the bytes. */
export function mutate(rng: Rng): { what: string; bytes: Buffer } {
  const tensors = baseTensors(rng);
  const { json, data } = layout(tensors, { format: 'pt' });
  const valid = Buffer.concat([headerBytes(json), data]);
  const headerLen = valid.length - data.length;
  const header = JSON.parse(json) as Record<string, any>;
  const names = ['student', 'teacher', 'labels'];
  const withHeader = (h: unknown, extraData = data): Buffer => Buffer.concat([headerBytes(typeof h === 'string' ? h : JSON.stringify(h)), extraData]);
  switch (rng.int(13)) {
    case 0: {
      const at = rng.int(valid.length);
      return { what: `truncated at ${at}`, bytes: valid.subarray(0, at) };
    }
    case 1: {
      const out = Buffer.from(valid);
      const flips = 1 + rng.int(8);
      const inHeader = rng.uniform() < 0.8;
      for (let i = 0; i < flips; i++) {
        const at = inHeader ? rng.int(headerLen) : rng.int(out.length);
        out[at] ^= 1 << rng.int(8);
      }
      return { what: `${flips} bit flips${inHeader ? ' in the header' : ''}`, bytes: out };
    }
    case 2: {
      const n = [1n << 63n, (1n << 64n) - 1n, BigInt(headerLen - 8 + 1 + rng.int(64)), BigInt(headerLen - 8 - 1 - rng.int(8)), 100000001n, 0n, 1n][rng.int(7)];
      return { what: `header length ${n}`, bytes: setLength(valid, n) };
    }
    case 3: {
      const name = names[rng.int(3)];
      const field = ['dtype', 'shape', 'data_offsets'][rng.int(3)];
      const h = structuredClone(header);
      h[name][field] = randomValue(rng);
      return { what: `${name}.${field} of another type`, bytes: withHeader(h) };
    }
    case 4: {
      const name = names[rng.int(3)];
      const h = structuredClone(header);
      const [b, e] = h[name].data_offsets as number[];
      const shift = rng.int(2) ? rng.int(64) - 32 : [2 ** 53, 2 ** 60, -1, data.length * 3][rng.int(4)];
      h[name].data_offsets = rng.int(2) ? [b + shift, e + shift] : [b, e + shift];
      return { what: `${name} offsets moved by ${shift}`, bytes: withHeader(h) };
    }
    case 5: {
      const depth = [33, 100, 10000, 200000][rng.int(4)];
      return { what: `nesting ${depth} deep`, bytes: withHeader(`{"student": ${'['.repeat(depth)}${']'.repeat(depth)}}`) };
    }
    case 6: {
      const keys = 100 + rng.int(3000);
      const h: Record<string, unknown> = { ...header };
      for (let i = 0; i < keys; i++) h[`pad${i}`] = { dtype: 'U8', shape: [0], data_offsets: [0, 0] };
      return { what: `${keys} extra empty tensors`, bytes: withHeader(h) };
    }
    case 7: {
      const hb = Buffer.from(json, 'utf8');
      const at = 1 + rng.int(hb.length - 1);
      const bad = [0xff, 0xc0, 0xed, 0x80, 0xf8][rng.int(5)];
      const body = Buffer.concat([hb.subarray(0, at), Buffer.from([bad]), hb.subarray(at)]);
      const n = Buffer.alloc(8);
      n.writeBigUInt64LE(BigInt(body.length));
      return { what: `byte 0x${bad.toString(16)} at ${at}`, bytes: Buffer.concat([n, body, data]) };
    }
    case 8: {
      const name = names[rng.int(3)];
      const dup = json.replace(/}$/, `,${JSON.stringify(name)}:${JSON.stringify(header[name])}}`);
      return { what: `duplicate key ${name}`, bytes: withHeader(dup) };
    }
    case 9: {
      const h = structuredClone(header);
      const name = names[rng.int(3)];
      h[name].shape = [rng.int(4) === 0 ? 2 ** 40 : rng.int(20), rng.int(20)];
      return { what: `${name} shape ${JSON.stringify(h[name].shape)}`, bytes: withHeader(h) };
    }
    case 10: {
      const h = structuredClone(header);
      h.__metadata__ = rng.int(2) ? { k: randomValue(rng) } : randomValue(rng);
      return { what: 'metadata of another type', bytes: withHeader(h) };
    }
    case 12: {
      // A large header: a metadata string of up to 2 MB, valid or cut short.
      const h = structuredClone(header);
      h.__metadata__ = { big: 'x'.repeat(rng.int(2 << 20)) };
      const bytes = withHeader(h);
      return rng.int(2) ? { what: 'large metadata', bytes } : { what: 'large metadata, truncated', bytes: bytes.subarray(0, rng.int(bytes.length)) };
    }
    default: {
      const garbage = Buffer.from(Array.from({ length: 8 + rng.int(200) }, () => rng.int(256)));
      if (rng.int(2)) garbage[8] = 0x7b; // '{': taken for a safetensors header
      return { what: 'garbage', bytes: garbage };
    }
  }
}

/** The outcome of one case. */
export interface Outcome {
  ok: boolean;
  /** The one-line message of a refused file. */
  message?: string;
}

/**
 * Opens `file` as kdloss eval does (student, teacher and labels by key) and reads every row.
 * @throws Error when the outcome breaks the contract (see the module comment)
 */
export async function check(file: string, what: string): Promise<Outcome> {
  const before = process.memoryUsage().arrayBuffers;
  const t0 = performance.now();
  const fail = (why: string): never => {
    throw new Error(`${what}: ${why}`);
  };
  let outcome: Outcome;
  try {
    const inputs = await chunks.openInputs({ student: file, teacher: file, labels: file, studentKey: 'student', teacherKey: 'teacher', labelsKey: 'labels' });
    try {
      for await (const c of new chunks.ChunkReader(inputs, 4, { ignoreIndex: -100 }).chunks()) void c;
    } finally {
      await chunks.closeInputs(inputs);
    }
    outcome = { ok: true };
  } catch (err) {
    if (!(err instanceof errors.CliError)) fail(`${(err as Error)?.name}: ${(err as Error)?.message} (would exit with 1)`);
    const e = err as InstanceType<typeof errors.CliError>;
    if (e.exitCode !== 2) fail(`exit code ${e.exitCode}`);
    const line = text.escapeText(e.message);
    if (!line.startsWith(`${file}: `)) fail(`the message does not name the file: ${line.slice(0, 200)}`);
    outcome = { ok: false, message: line };
  }
  const ms = performance.now() - t0;
  if (ms > 5000) fail(`took ${ms.toFixed(0)} ms`);
  const grown = process.memoryUsage().arrayBuffers - before;
  if (grown > 64 << 20) fail(`${grown} bytes of buffers allocated`);
  return outcome;
}

/** Runs `cases` seeded cases in `dir`; returns how many were refused and accepted, by kind. */
export async function fuzz(seed: number, cases: number, dir: string, onCase?: (i: number, what: string, o: Outcome) => void): Promise<{ refused: number; accepted: number }> {
  const rng = new Rng(seed);
  const file = path.join(dir, `fuzz-${seed}.safetensors`);
  let refused = 0;
  let accepted = 0;
  for (let i = 0; i < cases; i++) {
    const { what, bytes } = mutate(rng);
    fs.writeFileSync(file, bytes);
    const o = await check(file, `seed ${seed} case ${i} (${what})`);
    if (o.ok) accepted++;
    else refused++;
    onCase?.(i, what, o);
  }
  return { refused, accepted };
}

if (require.main === module) {
  const arg = (name: string, fallback: number): number => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? Number(process.argv[i + 1]) : fallback;
  };
  const cases = arg('cases', 100000);
  const seed = arg('seed', 1);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kdloss-fuzz-'));
  const t0 = performance.now();
  fuzz(seed, cases, dir, (i) => {
    if ((i + 1) % 10000 === 0) process.stderr.write(`${i + 1} cases, ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
  })
    .then(({ refused, accepted }) => {
      console.log(`seed ${seed}: ${cases} cases, ${refused} refused with exit code 2, ${accepted} valid after corruption, in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    })
    .catch((err) => {
      console.error(String(err?.message ?? err));
      process.exitCode = 1;
    })
    .finally(() => fs.rmSync(dir, { recursive: true, force: true }));
}
