// `kdloss eval` numbers and report: runs the real binary (node bin/kdloss.js) on .npy files generated in
// a temp dir and checks its numbers against the library API, its --per-sample file, its text report and
// the golden output on the embedded sample.
import { expect } from 'chai';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { getBackend, type Matrix, setBackend } from 'kdloss';
import { forEachBackend } from './helpers/backends';
import { COLS, expectMatches, expectRel, reference, ROOT, ROWS, runCli, runJson, S32, S64, T32, T64, tempDir, writeSmallData, Y } from './helpers/cli';
import { readNpy, writeMatrix } from './helpers/npy';

const SAMPLE = path.join(ROOT, 'examples', 'sample');
const GOLDEN = path.join(ROOT, 'test', 'fixtures', 'sample-golden.json');

describe('kdloss eval: numbers and report', () => {
  const tmp = tempDir('kdloss-cli-eval-');
  const f = tmp.f;
  before(() => writeSmallData(tmp.path));

  forEachBackend('kdloss eval matches DistillationLoss.forward', (backend) => {
    const env = { KDLOSS_BACKEND: backend };
    const T = 3;
    const alpha = 0.6;
    const args = (s: string, t: string, y?: string, extra: string[] = []) => [
      'eval',
      '--student',
      f(s),
      '--teacher',
      f(t),
      ...(y ? ['--labels', f(y)] : []),
      '--temperature',
      String(T),
      '--alpha',
      String(alpha),
      ...extra,
    ];

    it('float64 logits, int64 labels, uneven chunks (7 rows) and one chunk give the library values', async () => {
      const ref = reference(S64, T64, Y, T, alpha);
      const runs = [['--chunk-rows', '7'], []].map((extra) => runJson(args('s64.npy', 't64.npy', 'y64.npy', extra), env));
      for (const out of await Promise.all(runs)) {
        expect(out.rows).to.equal(ROWS);
        expect(out.cols).to.equal(COLS);
        expect(out.dtype).to.equal('float64');
        expect(out.backend).to.equal(backend);
        expect(out.alpha).to.equal(alpha);
        expect(out.temperature).to.equal(T);
        expect(out.seconds).to.be.a('number');
        expectMatches(out, ref, 1e-12);
      }
    });

    it('float32 logits with int32 (v2 header), uint8 and one-hot float64/float32 labels (v2/v3 logits headers)', async () => {
      const ref = reference(S32, T32, Y, T, alpha);
      const runs = [
        ['s32.npy', 't32.npy', 'y32.npy'],
        ['s32v2.npy', 't32v3.npy', 'yu8.npy'],
        ['s32.npy', 't32.npy', 'onehot64.npy'],
        ['s32v2.npy', 't32.npy', 'onehot32.npy'],
      ].map(([s, t, y]) => runJson(args(s, t, y, ['--chunk-rows', '16']), env));
      for (const out of await Promise.all(runs)) {
        expect(out.dtype).to.equal('float32');
        expectMatches(out, ref, 1e-12);
      }
    });

    it('without labels reports the soft term only: alpha taken as 1, hard and accuracies null', async () => {
      const ref = reference(S32, T32, null, T, alpha);
      const out = await runJson(args('s32.npy', 't32.npy', undefined, ['--chunk-rows', '9']), env);
      expectMatches(out, ref, 1e-12);
      expect(out.alpha).to.equal(1);
      expect(out.requestedAlpha).to.equal(alpha);
      expectRel(out.loss, T * T * out.soft, 1e-15, 'loss = T^2 soft');
      expect(out.note).to.match(/no labels/);
    });

    it('writes --per-sample as a float64 .npy equal to the library perSample (with and without labels)', async () => {
      const file = (y: string | undefined): string => f(`per-sample-${backend}-${y ?? 'none'}.npy`);
      const labels = ['y64.npy', undefined];
      const runs = await Promise.all(labels.map((y) => runJson(args('s32.npy', 't32.npy', y, ['--chunk-rows', '8', '--per-sample', file(y)]), env)));
      for (const [i, y] of labels.entries()) {
        const out = runs[i];
        expect(out.files.perSample).to.equal(file(y));
        const ref = reference(S32, T32, y ? Y : null, T, alpha);
        const written = readNpy(file(y));
        expect(written.descr).to.equal('<f8');
        expect(written.shape).to.deep.equal([ROWS]);
        expect(written.data).to.be.instanceOf(Float64Array);
        for (let i = 0; i < ROWS; i++) expectRel(written.data[i] as number, ref.perSample[i], 1e-15, `perSample[${i}]`);
      }
    });

    it('gives the same numbers for every thread count and chunk size', async () => {
      const [a, b, c] = await Promise.all(
        [
          ['--threads', '1', '--chunk-rows', '50'],
          ['--threads', '3', '--chunk-rows', '50'],
          ['--threads', '2', '--chunk-rows', '1'],
        ].map((extra) => runJson(args('s64.npy', 't64.npy', 'y64.npy', extra), env)),
      );
      // Exactly: per-row values do not depend on the chunking, and the sums are exact.
      for (const k of ['loss', 'soft', 'hard', 'agreement', 'studentAccuracy', 'teacherAccuracy']) {
        expect(b[k], k).to.equal(a[k]);
        expect(c[k], k).to.equal(a[k]);
      }
      expect(b.perClass).to.deep.equal(a.perClass);
      expect(c.perClass).to.deep.equal(a.perClass);
    });
  });

  describe('kdloss eval: text report', () => {
    it('prints the loss, its terms, top-1 figures, the per-class table, a histogram and the throughput', async () => {
      const cmd = ['eval', '--student', f('s32.npy'), '--teacher', f('t32.npy'), '--labels', f('y64.npy'), '--temperature', '2', '--alpha', '0.5'];
      const [r, j] = await Promise.all([runCli(cmd), runJson(cmd)]);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stderr).to.equal(''); // no progress bar when stderr is not a terminal
      const out = r.stdout;
      expect(out).to.match(new RegExp(`^kdloss eval: ${ROWS} rows x ${COLS} classes \\(float32\\)`));
      expect(out).to.match(/labels\s+.*y64\.npy \(int64 class indices\)/);
      expect(out).to.match(new RegExp(`KD loss\\s+${j.loss.toFixed(6)}\\s+= 0\\.5 \\* 2\\^2 \\* soft \\+ 0\\.5 \\* hard`));
      expect(out).to.match(new RegExp(`soft \\(KL at T=2\\)\\s+${j.soft.toFixed(6)}`));
      expect(out).to.match(new RegExp(`hard \\(CE\\)\\s+${j.hard.toFixed(6)}`));
      expect(out).to.match(new RegExp(`teacher/student agreement\\s+${(100 * j.agreement).toFixed(2)}%\\s+\\(${j.counts.agreement} / ${ROWS}\\)`));
      expect(out).to.match(new RegExp(`student accuracy\\s+${(100 * j.studentAccuracy).toFixed(2)}%`));
      expect(out).to.match(new RegExp(`teacher accuracy\\s+${(100 * j.teacherAccuracy).toFixed(2)}%`));
      // Per-class table: header and one line per class present (6 of 7).
      expect(out).to.match(/Per class \(6 of 7 classes present in the labels\)/);
      expect(out).to.match(/class\s+support\s+student acc\s+teacher acc\s+mean KL/);
      for (const c of j.perClass) {
        expect(out).to.match(new RegExp(`\\n\\s+${c.class}\\s+${c.support}\\s+${(100 * c.studentAccuracy).toFixed(2)}%\\s+${(100 * c.teacherAccuracy).toFixed(2)}%\\s+${c.meanKl.toFixed(6)}\\n`));
      }
      // Histogram: a line per bin with its range, count and a bar; the counts add up to the rows.
      expect(out).to.match(/Per-sample KL at T=2 \(log-spaced bins, min \S+, max \S+\)/);
      const bins = [...out.matchAll(/^ {2}\[(\S+), (\S+)\)\s+(\d+)\s*(#*)$/gm)];
      expect(bins.length).to.be.within(2, 20);
      expect(bins.reduce((a, m) => a + Number(m[3]), 0)).to.equal(ROWS);
      expect(bins.some((m) => m[4].length > 10)).to.equal(true);
      expect(out).to.match(new RegExp(`\\n${ROWS} rows in \\d+\\.\\d+ s \\([\\d,]+ rows/s\\)\\n$`));
    });

    it('says that alpha is taken as 1 and leaves out accuracies and the table without labels', async () => {
      const r = await runCli(['eval', '--student', f('s64.npy'), '--teacher', f('t64.npy')]);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout).to.match(/alpha = 1 \(requested 0\.7\)/);
      expect(r.stdout).to.match(/no labels: .*alpha is taken as 1/);
      expect(r.stdout).to.match(/KD loss\s+\S+\s+= 4\^2 \* soft/);
      expect(r.stdout).to.match(/hard \(CE\)\s+n\/a/);
      expect(r.stdout).to.match(/student accuracy\s+n\/a/);
      expect(r.stdout).to.not.match(/Per class/);
    });
  });

  forEachBackend('kdloss eval --json: NaN and infinities are strings, null is "not defined"', (backend) => {
    const env = { KDLOSS_BACKEND: backend };

    /** Every null in a JSON value, by path. */
    const nulls = (v: unknown, at = ''): string[] => {
      if (v === null) return [at];
      if (typeof v !== 'object') return [];
      return Object.entries(v as object).flatMap(([k, x]) => nulls(x, at === '' ? k : `${at}.${k}`));
    };

    before(() => {
      // Row 3: a NaN student logit (NaN KL and CE); row 5: a -Infinity student logit where the teacher
      // has mass (infinite KL).
      const s = Float32Array.from(S32.data);
      s[3 * COLS + 1] = NaN;
      s[5 * COLS + 2] = -Infinity;
      writeMatrix(f(`nonfinite-s-${backend}.npy`), { data: s, rows: ROWS, cols: COLS });
    });

    it('writes NaN and Infinity as strings, also in the per-class table and the histogram', async () => {
      const out = await runJson(['eval', '--student', f(`nonfinite-s-${backend}.npy`), '--teacher', f('t32.npy'), '--labels', f('y64.npy')], env);
      expect([out.loss, out.soft, out.hard]).to.deep.equal(['NaN', 'NaN', 'NaN']);
      expect(out.klHistogram.nan).to.equal(1);
      expect(out.klHistogram.max).to.equal('Infinity');
      expect(out.klHistogram.min).to.be.a('number');
      const byClass = new Map<number, any>(out.perClass.map((c: any) => [c.class, c]));
      expect(byClass.get(Y[3]).meanKl).to.equal('NaN');
      // The mean over a class with an infinite KL is infinite (a compensated sum made it NaN).
      expect(Y[5]).to.not.equal(Y[3]);
      expect(byClass.get(Y[5]).meanKl).to.equal('Infinity');
      // Every null left means "not defined": no per-sample file, default threads, no note with labels,
      // and the open ends of the histogram.
      const bins = out.klHistogram.bins.length;
      const allowed = [
        'note',
        'files.perSample',
        'threads',
        `klHistogram.bins.${bins - 1}.hi`,
        // .npy arrays have no tensor name; an unsharded run is no shard and merges nothing.
        'inputs.student.key',
        'inputs.teacher.key',
        'inputs.labels.key',
        'shard',
        'merged',
        // Only the 'jsd' divergence has a beta.
        'beta',
        'settings.beta',
        ...(backend === 'js' ? ['isa'] : []),
      ];
      expect(nulls(out).filter((p) => !allowed.includes(p)), 'nulls').to.deep.equal([]);
    });

    it('keeps null for the terms that are not defined without labels, next to an infinite soft term', async () => {
      const s = Float32Array.from(S32.data);
      s[5 * COLS + 2] = -Infinity;
      writeMatrix(f(`inf-s-${backend}.npy`), { data: s, rows: ROWS, cols: COLS });
      const out = await runJson(['eval', '--student', f(`inf-s-${backend}.npy`), '--teacher', f('t32.npy')], env);
      expect([out.loss, out.soft]).to.deep.equal(['Infinity', 'Infinity']);
      expect([out.hard, out.studentAccuracy, out.teacherAccuracy, out.perClass, out.labels]).to.deep.equal([null, null, null, null, null]);
    });
  });

  describe('kdloss eval: golden output on the embedded sample', () => {
    const files = ['student.npy', 'teacher.npy', 'labels.npy'].map((n) => path.join(SAMPLE, n));
    const present = files.every((p) => fs.existsSync(p));
    const sha256 = (p: string): string => crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');
    const args = ['eval', '--student', 'examples/sample/student.npy', '--teacher', 'examples/sample/teacher.npy', '--labels', 'examples/sample/labels.npy'];
    const NUMBERS = ['rows', 'cols', 'dtype', 'temperature', 'alpha', 'loss', 'soft', 'hard', 'agreement', 'studentAccuracy', 'teacherAccuracy', 'counts', 'perClass', 'klHistogram'];

    before(function () {
      if (!present) this.skip();
    });

    it('matches test/fixtures/sample-golden.json on every backend, and the golden file matches the library', async () => {
      const s = readNpy(files[0]);
      const t = readNpy(files[1]);
      const yRaw = readNpy(files[2]);
      const y = Int32Array.from(yRaw.data as ArrayLike<number | bigint>, Number);
      const [rows, cols] = s.shape;
      const previous = getBackend();
      if (process.env.KDLOSS_UPDATE_GOLDEN === '1') {
        // Regenerate: KDLOSS_UPDATE_GOLDEN=1 npx mocha dist-test/test/cli.test.js -g golden
        const out = await runJson(args, { KDLOSS_BACKEND: 'native' });
        const expected: Record<string, unknown> = {};
        for (const k of NUMBERS) expected[k] = out[k];
        const golden = {
          note: 'kdloss eval --json on examples/sample (defaults T=4, alpha=0.7), numbers only; regenerate with KDLOSS_UPDATE_GOLDEN=1',
          args,
          sha256: Object.fromEntries(files.map((p) => [path.basename(p), sha256(p)])),
          expected,
        };
        fs.writeFileSync(GOLDEN, JSON.stringify(golden, null, 2) + '\n');
      }
      const golden = JSON.parse(fs.readFileSync(GOLDEN, 'utf8'));
      for (const p of files) {
        expect(sha256(p), `${path.basename(p)} changed since the golden file was written: regenerate it (KDLOSS_UPDATE_GOLDEN=1)`).to.equal(
          golden.sha256[path.basename(p)],
        );
      }
      const g = golden.expected;
      expect(g.rows).to.equal(rows);
      expect(g.cols).to.equal(cols);
      try {
        for (const backend of ['native', 'js'] as const) {
          // The golden numbers are what the library computes...
          setBackend(backend);
          const m = (a: typeof s): Matrix => ({ data: a.data as Float32Array, rows, cols });
          expectMatches(g, reference(m(s), m(t), y, 4, 0.7), 1e-5);
          // ...and what the CLI prints, on every backend and chunking. float32 logits: kernel variants
          // agree to ~1e-7 relative; counts and the histogram exactly.
          const runs = [[], ['--chunk-rows', '64']].map((extra) => runJson([...args, ...extra], { KDLOSS_BACKEND: backend }));
          for (const out of await Promise.all(runs)) {
            expect(out.rows).to.equal(g.rows);
            expect(out.dtype).to.equal(g.dtype);
            for (const k of ['loss', 'soft', 'hard']) expectRel(out[k], g[k], 1e-6, k);
            for (const k of ['agreement', 'studentAccuracy', 'teacherAccuracy', 'counts']) expect(out[k], k).to.deep.equal(g[k]);
            expect(out.klHistogram.bins, 'histogram bins').to.deep.equal(g.klHistogram.bins);
            expectRel(out.klHistogram.min, g.klHistogram.min, 1e-5, 'histogram min');
            expectRel(out.klHistogram.max, g.klHistogram.max, 1e-5, 'histogram max');
            expect(out.perClass.length).to.equal(g.perClass.length);
            out.perClass.forEach((c: any, i: number) => {
              const gc = g.perClass[i];
              expect({ ...c, meanKl: 0 }).to.deep.equal({ ...gc, meanKl: 0 });
              expectRel(c.meanKl, gc.meanKl, 1e-6, `class ${c.class} meanKl`);
            });
          }
        }
      } finally {
        setBackend(previous);
      }
    });
  });
});
