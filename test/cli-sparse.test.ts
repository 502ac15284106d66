// kdloss eval with a sparse (top-k) teacher: --teacher-topk FILE.safetensors or --teacher-indices and
// --teacher-values, with --teacher-kind and --tail / --no-tail. The numbers are the library's on the same
// rows, bit for bit (the per-row values, and their exact sums); the entries are read chunk by chunk with
// the student's rows; shards merge into the whole run; the report says what the teacher is and what it
// stores per token. The errors are in cli-sparse-errors.test.ts.
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { forEachBackend } from './helpers/backends';
import { ROOT, runCli, runJson, tempDir } from './helpers/cli';
import { ALPHA, type Dt, INDICES, IGNORED, K, type Kind, R, sparseReference, student, T, V, values, writeSparseData, Y } from './helpers/cli-sparse';
import { readNpy, toInt64, writeNpy } from './helpers/npy';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const chunks = require(path.join(ROOT, 'dist', 'cli', 'chunks.js')) as typeof import('../dist/cli/chunks');

/** A report without what differs between runs of the same rows (timing, chunking, how it was made). */
function comparable(out: Record<string, any>): Record<string, unknown> {
  const { seconds, rowsPerSecond, maxRssBytes, chunkRows, threads, shard, merged, state, files, ...rest } = out;
  void [seconds, rowsPerSecond, maxRssBytes, chunkRows, threads, shard, merged, state];
  return { ...rest, files: { ...files, perSample: null } };
}

/** The text report without its run lines (backend and chunks, merged from, timing). */
function comparableText(text: string): string {
  return text
    .split('\n')
    .filter((l) => !/^ {2}backend |^ {2}merged from |^[\d,]+ rows (in|from) /.test(l))
    .join('\n');
}

const MODES: { kind: Kind; tail: boolean; flags: string[] }[] = [
  { kind: 'logits', tail: false, flags: ['--teacher-kind', 'logits'] },
  { kind: 'logprobs', tail: true, flags: ['--teacher-kind', 'logprobs'] },
  { kind: 'logprobs', tail: false, flags: ['--teacher-kind', 'logprobs', '--no-tail'] },
];

describe('kdloss eval with a sparse teacher', () => {
  const tmp = tempDir('kdloss-cli-sparse-');
  const f = tmp.f;
  before(() => writeSparseData(tmp.path));
  const common = ['--labels', '', '--temperature', String(T), '--alpha', String(ALPHA)];
  const withLabels = (): string[] => common.map((a) => (a === '' ? f('y.npy') : a));
  const topkArgs = (dt: Dt, kind: Kind, extra: string[] = []): string[] => {
    const file = f(`topk-${dt}-${kind}.safetensors`);
    return ['eval', '--student', file, '--student-key', 'student', '--teacher-topk', file, ...withLabels(), ...extra];
  };
  const pairArgs = (dt: Dt, kind: Kind, extra: string[] = []): string[] => [
    'eval',
    '--student',
    f(`s${dt === 'float32' ? 32 : 64}.npy`),
    '--teacher-indices',
    f(dt === 'float32' ? 'i32.npy' : 'i64.npy'),
    '--teacher-values',
    f(`v-${dt}-${kind}.npy`),
    ...withLabels(),
    ...extra,
  ];

  forEachBackend('equals DistillationLoss.forward with the same sparse teacher', (backend) => {
    const env = { KDLOSS_BACKEND: backend };
    for (const dt of ['float32', 'float64'] as const) {
      for (const { kind, tail, flags } of MODES) {
        it(`${dt}, ${flags.slice(1).join(' ')}: one safetensors file (chunks of 7 rows) and two .npy files (one chunk), per-sample losses bit for bit`, async () => {
          const ref = sparseReference(dt, kind, tail);
          const ps = [f(`ps-${backend}-${dt}-${kind}-${tail}-a.npy`), f(`ps-${backend}-${dt}-${kind}-${tail}-b.npy`)];
          const outs = await Promise.all([
            runJson(topkArgs(dt, kind, [...flags, '--chunk-rows', '7', '--per-sample', ps[0]]), env),
            runJson(pairArgs(dt, kind, [...flags, '--per-sample', ps[1]]), env),
          ]);
          for (const [i, out] of outs.entries()) {
            expect(out.backend).to.equal(backend);
            expect([out.rows, out.cols, out.dtype]).to.deep.equal([R, V, dt]);
            expect(out.tokens).to.deep.equal({ rows: R, evaluated: R - IGNORED.length, ignored: IGNORED.length });
            expect([out.loss, out.soft, out.hard]).to.deep.equal([ref.loss, ref.soft, ref.hard]);
            expect([out.agreement, out.studentAccuracy, out.teacherAccuracy]).to.deep.equal([ref.agreement, ref.studentAccuracy, ref.teacherAccuracy]);
            expect(out.teacher).to.deep.include({ format: 'sparse', k: K, kind, tail });
            expect(out.settings.teacher).to.deep.equal({ format: 'sparse', k: K, kind, tail });
            expect(Array.from(readNpy(ps[i]).data as Float64Array)).to.deep.equal(Array.from(ref.perSample));
          }
        });
      }
    }

    it('logits and logprobs renormalised (--no-tail) give one distribution, the tail bucket another; --tail is the default', async () => {
      const runs = await Promise.all([...MODES.map((m) => runJson(pairArgs('float64', m.kind, m.flags), env)), runJson(pairArgs('float64', 'logprobs', ['--teacher-kind', 'logprobs', '--tail']), env)]);
      const softs = runs.map((o) => o.soft);
      // Renormalised log-probabilities at T are softmax(logits / T) over the entries: the logits' distribution.
      expect(Math.abs(softs[2] - softs[0])).to.be.at.most(1e-12 * softs[0]);
      // The tail bucket adds the mass outside the entries, compared with the student's there.
      expect(Math.abs(softs[1] - softs[0])).to.be.above(1e-3 * softs[0]);
      expect(softs[3]).to.equal(softs[1]);
      expect(runs.map((o) => [o.teacher.kind, o.teacher.tail])).to.deep.equal([
        ['logits', false],
        ['logprobs', true],
        ['logprobs', false],
        ['logprobs', true],
      ]);
    });
  });

  forEachBackend('shards merge into the whole run', (backend) => {
    const env = { KDLOSS_BACKEND: backend };
    it('for 1, 3 and 7 shards of a --teacher-topk run (logprobs with the tail), in JSON and text, bit for bit', async () => {
      const args = topkArgs('float32', 'logprobs', ['--teacher-kind', 'logprobs', '--chunk-rows', '4']);
      const whole = await runJson(args, env);
      const wholeText = (await runCli(args, env)).stdout;
      for (const n of [1, 3, 7]) {
        const files = [...Array(n).keys()].map((i) => f(`${backend}-part-${i + 1}-of-${n}.json`));
        const parts = await Promise.all(files.map((_file, i) => runJson([...args, '--shard', `${i + 1}/${n}`], env)));
        parts.forEach((p, i) => fs.writeFileSync(files[i], JSON.stringify(p)));
        const order = [...files].reverse();
        const json = await runJson(['merge', ...order], env);
        const text = await runCli(['merge', ...order], env);
        expect(text.code, text.stderr).to.equal(0);
        expect(comparable(json)).to.deep.equal(comparable(whole));
        expect(comparableText(text.stdout)).to.equal(comparableText(wholeText));
        expect(json.inputs.teacher).to.equal(null);
        expect(json.inputs.teacherIndices).to.include({ key: 'indices', dtype: 'int64' });
        expect(json.inputs.teacherValues).to.include({ key: 'values', dtype: 'float32' });
      }
    });
  });

  describe('kdloss merge refuses runs with other teacher settings (exit code 2, one line naming the file)', () => {
    const report = async (name: string, args: string[]): Promise<string> => {
      const j = await runJson(args);
      fs.writeFileSync(f(name), JSON.stringify(j));
      return f(name);
    };
    const shard = (args: string[], i: number): string[] => [...args, '--shard', `${i}/2`];
    const lp = (extra: string[] = []): string[] => pairArgs('float32', 'logprobs', ['--teacher-kind', 'logprobs', ...extra]);
    let first: string;
    before(async () => {
      first = await report('mix-1.json', shard(lp(), 1));
    });
    const cases: [string, () => Promise<string>, RegExp][] = [
      ['another kind', () => report('mix-kind.json', shard(pairArgs('float32', 'logprobs', ['--teacher-kind', 'logits']), 2)), /settings differ from .*mix-1\.json's \(a sparse teacher \(top-5 logits\) vs a sparse teacher \(top-5 logprobs with the tail bucket\)\)/],
      ['no tail', () => report('mix-tail.json', shard(lp(['--no-tail']), 2)), /\(a sparse teacher \(top-5 logprobs, no tail\) vs a sparse teacher \(top-5 logprobs with the tail bucket\)\)/],
      ['a dense teacher', () => report('mix-dense.json', shard(['eval', '--student', f('s32.npy'), '--teacher', f('s32.npy'), ...withLabels()], 2)), /\(a dense teacher vs a sparse teacher/],
      [
        'another indices file (the same indices as int64)',
        () => {
          writeNpy(f('i64-flat.npy'), toInt64(INDICES), [R, K]);
          return report('mix-i64.json', shard(['eval', '--student', f('s32.npy'), '--teacher-indices', f('i64-flat.npy'), '--teacher-values', f('v-float32-logprobs.npy'), ...withLabels(), '--teacher-kind', 'logprobs'], 2));
        },
        /its --teacher-indices input is not .*mix-1\.json's \(dtype "int64" vs "int32", bytes \d+ vs \d+, fingerprint/,
      ],
    ];
    for (const [what, make, pattern] of cases) {
      it(`refuses ${what}`, async () => {
        const second = await make();
        const r = await runCli(['merge', first, second]);
        expect(r.code, r.stderr).to.equal(2);
        const lines = r.stderr.split('\n').filter((l) => l !== '');
        expect(lines).to.have.length(1);
        expect(lines[0]).to.include(second);
        expect(lines[0]).to.match(pattern);
      });
    }

    it('refuses a report whose sparse teacher settings are malformed', async () => {
      const j = JSON.parse(fs.readFileSync(first, 'utf8'));
      j.settings.teacher.k = V + 1;
      fs.writeFileSync(f('mix-bad.json'), JSON.stringify(j));
      const r = await runCli(['merge', f('mix-bad.json')]);
      expect(r.code).to.equal(2);
      expect(r.stderr).to.match(/mix-bad\.json: settings\.teacher: expected \{ format: 'sparse', k, kind, tail \}/);
    });
  });

  it('reads the entries chunk by chunk with the student\'s rows: the same row ranges, int64 indices as int32, in any range', async () => {
    const spec = { student: f('s64.npy'), sparseTeacher: { indices: f('i64.npy'), values: f('v-float64-logits.npy'), kind: 'logits' as const, tail: false }, labels: f('y.npy') };
    const inputs = await chunks.openInputs(spec);
    try {
      expect([inputs.rows, inputs.cols, inputs.dtype, inputs.teacher, inputs.sparse!.settings.k]).to.deep.equal([R, V, 'float64', null, K]);
      const s = student('float64');
      const v = values('float64', 'logits');
      let seen = 0;
      for await (const c of new chunks.ChunkReader(inputs, 4, { start: 13, end: 38, ignoreIndex: -100 }).chunks()) {
        expect(c.teacher).to.equal(null);
        expect(c.sparse!.indices).to.be.instanceOf(Int32Array);
        expect(Array.from(c.student)).to.deep.equal(Array.from(s.subarray(c.row * V, (c.row + c.rows) * V)));
        expect(Array.from(c.sparse!.indices)).to.deep.equal(Array.from(INDICES.subarray(c.row * K, (c.row + c.rows) * K)));
        expect(Array.from(c.sparse!.values)).to.deep.equal(Array.from(v.subarray(c.row * K, (c.row + c.rows) * K)));
        expect(Array.from(c.labels!)).to.deep.equal(Array.from(Y.subarray(c.row, c.row + c.rows)));
        seen += c.rows;
      }
      expect(seen).to.equal(25);
    } finally {
      await chunks.closeInputs(inputs);
    }
  });

  it('reports the teacher as sparse (top-k, kind, tail) and its bytes per token against a dense float32 teacher', async () => {
    const one = await runCli(topkArgs('float32', 'logprobs', ['--teacher-kind', 'logprobs']));
    expect(one.code, one.stderr).to.equal(0);
    const file = f('topk-float32-logprobs.safetensors');
    // int64 indices and float32 values: 5 x 12 = 60 bytes per token; dense float32: 33 x 4 = 132.
    expect(one.stdout).to.include(`  teacher   ${file} [indices, values]: sparse, top-5 entries per row (int64 indices, float32 values)\n`);
    expect(one.stdout).to.include('            log-probabilities at T, with the tail bucket (the mass outside the entries)\n');
    expect(one.stdout).to.include('            60 bytes per token; a dense float32 teacher takes 132 (2.2x as many)\n');
    expect(one.stdout).to.match(/soft \(KL at T=2\)\s+\S+\s+KL\(p_teacher \|\| p_student\) over the teacher's top-k and the tail bucket, before the T\^2 factor/);
    const two = await runCli(pairArgs('float64', 'logits', ['--teacher-kind', 'logits']));
    expect(two.code, two.stderr).to.equal(0);
    expect(two.stdout).to.include(`  teacher   sparse, top-5 entries per row: ${f('i64.npy')} (int64 indices), ${f('v-float64-logits.npy')} (float64 values)\n`);
    expect(two.stdout).to.include('            logits, renormalised over the entries\n');
    expect(two.stdout).to.include('            80 bytes per token; a dense float32 teacher takes 132 (1.6x as many)\n');
    const nt = await runJson(pairArgs('float32', 'logprobs', ['--teacher-kind', 'logprobs', '--no-tail']));
    expect(nt.teacher).to.deep.equal({ format: 'sparse', k: K, kind: 'logprobs', tail: false, bytesPerToken: 40, denseFloat32BytesPerToken: 4 * V });
    expect(nt.files).to.deep.include({ teacher: null, teacherIndices: f('i32.npy'), teacherValues: f('v-float32-logprobs.npy') });
    const text = await runCli(pairArgs('float32', 'logprobs', ['--teacher-kind', 'logprobs', '--no-tail']));
    expect(text.stdout).to.include('            log-probabilities at T, renormalised over the entries (--no-tail)\n');
    // A dense teacher's report names it as before; its JSON says it is dense.
    const dense = await runJson(['eval', '--student', f('s32.npy'), '--teacher', f('s32.npy')]);
    expect(dense.teacher).to.deep.equal({ format: 'dense', bytesPerToken: 4 * V });
    expect(dense.settings).to.not.have.property('teacher');
  });
});
