#!/usr/bin/env node
'use strict';
// Writes a large safetensors file of language-model logits for benchmarking `kdloss eval`: tensors
// `student` and `teacher` of shape [batch, sequence, vocab] in BF16 (or F16, F32) and `labels` [batch,
// sequence] in I64, streamed to disk block by block (memory stays at a few MB whatever the size).
// The logits are seeded normals (teacher = student + noise); a pool of distinct rows is cycled with a
// per-row rotation, so the file is cheap to write and no two nearby rows are equal.
//
//   node tools/make-eval-bench.js OUT.safetensors [--dtype BF16|F16|F32] [--batch 8] [--seq 2048] [--vocab 32000]
//
// The defaults give 2 x 8 x 2048 x 32000 bfloat16 logits: a 2.1 GB file.
const fs = require('fs');

function parse(argv) {
  const opts = { out: null, dtype: 'BF16', batch: 8, seq: 2048, vocab: 32000, seed: 7 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--')) {
      const k = a.slice(2);
      const v = argv[++i];
      if (!(k in opts) || v === undefined) throw new Error(`unknown option or missing value: ${a}`);
      opts[k] = k === 'dtype' ? v : Number(v);
    } else {
      opts.out = a;
    }
  }
  if (!opts.out) throw new Error('usage: node tools/make-eval-bench.js OUT.safetensors [--dtype BF16|F16|F32] [--batch B] [--seq S] [--vocab V]');
  if (!['BF16', 'F16', 'F32'].includes(opts.dtype)) throw new Error(`--dtype: BF16, F16 or F32, not ${opts.dtype}`);
  return opts;
}

/** xorshift32 uniforms, Box-Muller normals: the same file for the same seed. */
function rng(seed) {
  let s = seed >>> 0 || 1;
  const uniform = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
  return { uniform, normal: () => Math.sqrt(-2 * Math.log(uniform() || 1e-12)) * Math.cos(2 * Math.PI * uniform()) };
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
/** float32 to bfloat16 bits, nearest even (the generated values are finite). */
function bf16(x) {
  f32[0] = x;
  const b = u32[0];
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}
/** float32 to float16 bits for |x| < 65504 and normal results (the generated values are), nearest even. */
function f16(x) {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const e = ((b >>> 23) & 0xff) - 127 + 15;
  if (e <= 0) return sign;
  const rest = b & 0x1fff;
  let h = (e << 10) | ((b >>> 13) & 0x3ff);
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h++;
  return sign | h;
}

function main() {
  const o = parse(process.argv.slice(2));
  const rows = o.batch * o.seq;
  const V = o.vocab;
  const itemsize = o.dtype === 'F32' ? 4 : 2;
  const tensorBytes = rows * V * itemsize;
  const labelBytes = rows * 8;
  const header = {
    __metadata__: { generator: 'tools/make-eval-bench.js', seed: String(o.seed) },
    student: { dtype: o.dtype, shape: [o.batch, o.seq, V], data_offsets: [0, tensorBytes] },
    teacher: { dtype: o.dtype, shape: [o.batch, o.seq, V], data_offsets: [tensorBytes, 2 * tensorBytes] },
    labels: { dtype: 'I64', shape: [o.batch, o.seq], data_offsets: [2 * tensorBytes, 2 * tensorBytes + labelBytes] },
  };
  let text = Buffer.from(JSON.stringify(header));
  text = Buffer.concat([text, Buffer.alloc((8 - (text.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(text.length));

  const r = rng(o.seed);
  const POOL = 64;
  const pool = { student: [], teacher: [] };
  for (let p = 0; p < POOL; p++) {
    const s = new Float32Array(V);
    const t = new Float32Array(V);
    for (let j = 0; j < V; j++) {
      s[j] = 2 * r.normal();
      t[j] = 1.5 * s[j] + r.normal();
    }
    pool.student.push(s);
    pool.teacher.push(t);
  }
  const encode = o.dtype === 'BF16' ? bf16 : o.dtype === 'F16' ? f16 : null;
  const fd = fs.openSync(o.out, 'w');
  try {
    fs.writeSync(fd, len);
    fs.writeSync(fd, text);
    const blockRows = Math.max(1, Math.floor((4 << 20) / (V * itemsize)));
    const block = Buffer.alloc(blockRows * V * itemsize);
    const bits = new Uint16Array(block.buffer, block.byteOffset, block.length / 2);
    const floats = new Float32Array(block.buffer, block.byteOffset, block.length / 4);
    for (const which of ['student', 'teacher']) {
      for (let row = 0; row < rows; row += blockRows) {
        const n = Math.min(blockRows, rows - row);
        for (let i = 0; i < n; i++) {
          const src = pool[which][(row + i) % POOL];
          const rot = ((row + i) * 7919) % V;
          const o0 = i * V;
          for (let j = 0; j < V; j++) {
            const x = src[(j + rot) % V];
            if (encode) bits[o0 + j] = encode(x);
            else floats[o0 + j] = x;
          }
        }
        fs.writeSync(fd, block, 0, n * V * itemsize);
      }
    }
    const labels = new BigInt64Array(rows);
    for (let i = 0; i < rows; i++) labels[i] = r.uniform() < 0.05 ? -100n : BigInt(Math.floor(r.uniform() * V));
    fs.writeSync(fd, Buffer.from(labels.buffer));
  } finally {
    fs.closeSync(fd);
  }
  const size = 8 + text.length + 2 * tensorBytes + labelBytes;
  process.stdout.write(`${o.out}: ${o.dtype} student and teacher [${o.batch}, ${o.seq}, ${V}], I64 labels (5% -100), ${(size / 1e9).toFixed(2)} GB\n`);
}

try {
  main();
} catch (err) {
  process.stderr.write(`make-eval-bench: ${err.message}\n`);
  process.exitCode = 2;
}
