// kdloss eval --ignore-index and --shard, and kdloss merge: ignored rows are left out of every figure;
// the shards of a split, merged in any order, give the report of one run over all the rows, bit for
// bit (exact sums, and every row at the same alignment in every chunking); merge refuses reports that
// are not the shards of one evaluation.
import { expect } from 'chai';
import * as fs from 'fs';
import { type CliResult, COLS, expectInputError, reference, ROWS, runCli, runJson, S32, T32, tempDir, writeSmallData, Y } from './helpers/cli';
import { forEachBackend } from './helpers/backends';
import { readNpy, toInt64, writeNpy } from './helpers/npy';
import { Rng } from './helpers/random';

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

describe('kdloss eval --ignore-index, --shard and kdloss merge', () => {
  const tmp = tempDir('kdloss-cli-shards-');
  const f = tmp.f;
  const IGNORED = [3, 10, 11, 40];
  const yIgnore = Int32Array.from(Y);
  for (const r of IGNORED) yIgnore[r] = -100;
  const base = (y = 'y-ignore.npy'): string[] => ['eval', '--student', f('s32.npy'), '--teacher', f('t32.npy'), '--labels', f(y), '--temperature', '3', '--alpha', '0.6'];
  before(() => {
    writeSmallData(tmp.path);
    writeNpy(f('y-ignore.npy'), toInt64(yIgnore), [ROWS]);
  });

  describe('--ignore-index', () => {
    it('leaves rows labelled -100 (the default) out of every figure, and counts them', async () => {
      const out = await runJson([...base(), '--per-sample', f('ps-ignore.npy')]);
      const kept = [...Array(ROWS).keys()].filter((r) => !IGNORED.includes(r));
      const pick = (m: typeof S32) => ({ data: Float32Array.from(kept.flatMap((r) => [...m.data.subarray(r * COLS, (r + 1) * COLS)])), rows: kept.length, cols: COLS });
      const ref = reference(pick(S32), pick(T32), Int32Array.from(kept, (r) => Y[r]), 3, 0.6);
      expect(out.tokens).to.deep.equal({ rows: ROWS, evaluated: ROWS - IGNORED.length, ignored: IGNORED.length });
      expect(out.ignoreIndex).to.equal(-100);
      for (const k of ['loss', 'soft', 'hard'] as const) expect(Math.abs(out[k] - ref[k]!)).to.be.at.most(1e-12 * ref[k]!);
      expect([out.agreement, out.studentAccuracy, out.teacherAccuracy]).to.deep.equal([ref.agreement, ref.studentAccuracy, ref.teacherAccuracy]);
      expect(out.perClass.map((c: any) => [c.class, c.support])).to.deep.equal(ref.perClass!.map((c) => [c.class, c.support]));
      expect(out.klHistogram.bins.reduce((a: number, b: any) => a + b.count, 0)).to.equal(kept.length);
      const ps = readNpy(f('ps-ignore.npy')).data as Float64Array;
      for (const r of IGNORED) expect(ps[r]).to.equal(0);
      kept.forEach((r, i) => expect(Math.abs(ps[r] - ref.perSample[i])).to.be.at.most(1e-12 * ref.perSample[i]));
      const text = await runCli(base());
      expect(text.stdout).to.match(/tokens: 46 evaluated, 4 ignored \(label -100\)/);
      expect(text.stdout).to.match(/teacher\/student agreement\s+\S+%\s+\(\d+ \/ 46\)/);
    });

    it('takes any index: a class index leaves that class out; without labels nothing is ignored', async () => {
      const out = await runJson([...base('y64.npy'), '--ignore-index', '2']);
      const n2 = Y.filter((c) => c === 2).length;
      expect(out.tokens).to.deep.equal({ rows: ROWS, evaluated: ROWS - n2, ignored: n2 });
      expect(out.perClass.map((c: any) => c.class)).to.not.include(2);
      const none = await runJson(['eval', '--student', f('s32.npy'), '--teacher', f('t32.npy'), '--ignore-index', '0']);
      expect(none.tokens).to.deep.equal({ rows: ROWS, evaluated: ROWS, ignored: 0 });
      expect(none.ignoreIndex).to.equal(null);
    });

    it('reports means as not defined when every row is ignored', async () => {
      writeNpy(f('y-all-ignored.npy'), new Int32Array(ROWS).fill(-7), [ROWS]);
      const out = await runJson([...base('y-all-ignored.npy'), '--ignore-index', '-7']);
      expect(out.tokens).to.deep.equal({ rows: ROWS, evaluated: 0, ignored: ROWS });
      expect([out.loss, out.soft, out.hard, out.agreement, out.studentAccuracy]).to.deep.equal([null, null, null, null, null]);
      const text = await runCli([...base('y-all-ignored.npy'), '--ignore-index', '-7']);
      expect(text.code).to.equal(0);
      expect(text.stdout).to.match(/no rows evaluated \(every label is the ignore index\): the means are not defined/);
      expect(text.stdout).to.match(/KD loss\s+n\/a/);
    });

    it('refuses an ignore index outside int32', async () => {
      const r = await runCli([...base(), '--ignore-index', '2147483648']);
      expect(r.code).to.equal(2);
      expect(r.stderr).to.match(/--ignore-index: expected an integer in \[-2147483648, 2147483647\], got '2147483648'/);
    });
  });

  /** Runs shards 1/n..n/n (--json files), merges them in a scrambled order; returns the merged JSON and text. */
  async function shardsMerged(args: string[], n: number, tag: string, env: Record<string, string> = {}): Promise<{ json: any; text: string; parts: any[] }> {
    const files = [...Array(n).keys()].map((i) => f(`${tag}-${i + 1}-of-${n}.json`));
    const parts = await Promise.all(files.map((file, i) => runJson([...args, '--shard', `${i + 1}/${n}`], env)));
    parts.forEach((p, i) => fs.writeFileSync(files[i], JSON.stringify(p)));
    const order = [...files].reverse();
    if (order.length > 2) order.push(order.splice(1, 1)[0]);
    const json = await runJson(['merge', ...order], env);
    const text = await runCli(['merge', ...order], env);
    expect(text.code, text.stderr).to.equal(0);
    return { json, text: text.stdout, parts };
  }

  forEachBackend('kdloss merge of the shards equals the whole run', (backend) => {
    const env = { KDLOSS_BACKEND: backend };
    it('for 1, 3 and 7 shards, with ignored rows, in JSON and text, bit for bit', async () => {
      const whole = await runJson(base(), env);
      const wholeText = (await runCli(base(), env)).stdout;
      for (const n of [1, 3, 7]) {
        const { json, text, parts } = await shardsMerged(base(), n, `${backend}-ignore`, env);
        expect(comparable(json)).to.deep.equal(comparable(whole));
        expect(comparableText(text)).to.equal(comparableText(wholeText));
        expect(parts.map((p) => p.rows).reduce((a, b) => a + b, 0)).to.equal(ROWS);
        // The first ROWS % n shards have one row more.
        const q = Math.floor(ROWS / n);
        expect(parts.map((p) => p.shard.rowStart)).to.deep.equal(parts.map((_p, i) => i * q + Math.min(i, ROWS % n)));
        expect(json.merged).to.have.length(n);
      }
    });
  });

  it('splits as evenly as possible; with fewer rows than shards some are empty, say so, and still merge', async () => {
    writeNpy(f('s3.npy'), S32.data.subarray(0, 3 * COLS), [3, COLS]);
    writeNpy(f('t3.npy'), T32.data.subarray(0, 3 * COLS), [3, COLS]);
    writeNpy(f('y3.npy'), Int32Array.from(Y.subarray(0, 3)), [3]);
    const args = ['eval', '--student', f('s3.npy'), '--teacher', f('t3.npy'), '--labels', f('y3.npy')];
    const { json, parts } = await shardsMerged(args, 5, 'tiny');
    expect(parts.map((p) => [p.shard.rowStart, p.shard.rowEnd])).to.deep.equal([[0, 1], [1, 2], [2, 3], [3, 3], [3, 3]]);
    expect(parts[4].loss).to.equal(null);
    expect(parts[4].tokens).to.deep.equal({ rows: 0, evaluated: 0, ignored: 0 });
    expect(comparable(json)).to.deep.equal(comparable(await runJson(args)));
    const text = await runCli([...args, '--shard', '5/5', '--per-sample', f('ps-empty.npy')]);
    expect(text.stdout).to.match(/shard 5\/5: rows \[3, 3\) of 3 \(empty: 3 rows split 5 ways leave none to this shard\)/);
    expect(readNpy(f('ps-empty.npy')).shape).to.deep.equal([0]);
    // Uneven splits: sizes differ by one at most, the larger first.
    const sizes = (await Promise.all([1, 2, 3].map((i) => runJson([...base(), '--shard', `${i}/3`])))).map((p) => p.rows);
    expect(sizes).to.deep.equal([17, 17, 16]);
  });

  it('gives the same bits for wide rows in every chunking and shard (rows whose bytes are not a multiple of the vector size)', async () => {
    // 1000 float32 classes: 4000-byte rows sit at alternating 64-byte alignments unless placed by row index.
    const rng = new Rng(91);
    const R = 61;
    const V = 1000;
    const s = Float32Array.from({ length: R * V }, () => rng.normal(3));
    writeNpy(f('ws.npy'), s, [R, V]);
    writeNpy(f('wt.npy'), s.map((v) => v + rng.normal(1)), [R, V]);
    writeNpy(f('wy.npy'), Int32Array.from({ length: R }, () => rng.int(V)), [R]);
    const args = ['eval', '--student', f('ws.npy'), '--teacher', f('wt.npy'), '--labels', f('wy.npy')];
    const [whole, c3, c1] = await Promise.all([[], ['--chunk-rows', '3'], ['--chunk-rows', '1', '--threads', '2']].map((x) => runJson([...args, ...x])));
    expect(comparable(c3)).to.deep.equal(comparable(whole));
    expect(comparable(c1)).to.deep.equal(comparable(whole));
    const { json } = await shardsMerged(args, 4, 'wide');
    expect(comparable(json)).to.deep.equal(comparable(whole));
  });

  describe('kdloss merge refuses what is not the shards of one evaluation (exit code 2, one line naming the file)', () => {
    const report = (name: string, extra: string[], args = base()): Promise<string> =>
      runJson([...args, ...extra]).then((j) => {
        fs.writeFileSync(f(name), JSON.stringify(j));
        return f(name);
      });
    const edit = (from: string, name: string, change: (j: any) => void): string => {
      const j = JSON.parse(fs.readFileSync(from, 'utf8'));
      change(j);
      fs.writeFileSync(f(name), JSON.stringify(j));
      return f(name);
    };
    const results = new Map<string, { r: CliResult; file: string; pattern: RegExp }>();
    const cases: [string, () => Promise<[string[], string, RegExp]>][] = [
      ['a missing shard', async () => [[f('m1.json'), f('m3.json')], 'missing shard 2/3', /missing shard 2\/3 \(2 of 3 reports given\)/]],
      ['a shard given twice', async () => [[f('m1.json'), f('m2.json'), f('m3.json'), f('m2b.json')], f('m2b.json'), /shard 2\/3 again \(.*m2\.json is shard 2\/3 too\)/]],
      ['shards of different splits', async () => [[f('m1.json'), f('m2.json'), f('h2.json')], f('h2.json'), /shard 2\/2, but .*m1\.json is shard 1\/3: reports of different splits/]],
      ['another temperature', async () => [[f('m1.json'), f('m2.json'), await report('m3-T.json', ['--shard', '3/3', '--temperature', '2'])], f('m3-T.json'), /settings differ from .*m1\.json's \(temperature 2 vs 3\)/]],
      ['another alpha', async () => [[f('m1.json'), f('m2.json'), await report('m3-a.json', ['--shard', '3/3', '--alpha', '0.5'])], f('m3-a.json'), /settings differ .*alpha 0\.5 vs 0\.6/]],
      ['another ignore index', async () => [[f('m1.json'), f('m2.json'), await report('m3-i.json', ['--shard', '3/3', '--ignore-index', '-1'], base('y64.npy'))], f('m3-i.json'), /settings differ .*ignoreIndex -1 vs -100/]],
      [
        'another dtype',
        async () => [[f('m1.json'), f('m2.json'), await report('m3-64.json', ['--shard', '3/3'], ['eval', '--student', f('s64.npy'), '--teacher', f('t64.npy'), '--labels', f('y-ignore.npy'), '--temperature', '3', '--alpha', '0.6'])], f('m3-64.json'), /settings differ .*dtype "float64" vs "float32"/],
      ],
      [
        'another teacher of the same shape (fingerprint)',
        async () => {
          const t = Float32Array.from(T32.data);
          t[7] += 1;
          writeNpy(f('t-other.npy'), t, [ROWS, COLS]);
          const other = await report('m3-t.json', ['--shard', '3/3'], ['eval', '--student', f('s32.npy'), '--teacher', f('t-other.npy'), '--labels', f('y-ignore.npy'), '--temperature', '3', '--alpha', '0.6']);
          return [[f('m1.json'), f('m2.json'), other], other, /its --teacher input is not .*m1\.json's \(fingerprint "sha256:[0-9a-f]+" vs "sha256:[0-9a-f]+"\)/];
        },
      ],
      ['labels in one, none in the other', async () => [[f('m1.json'), f('m2.json'), await report('m3-nl.json', ['--shard', '3/3'], ['eval', '--student', f('s32.npy'), '--teacher', f('t32.npy'), '--temperature', '3', '--alpha', '0.6'])], f('m3-nl.json'), /settings differ/]],
      ['text that is not JSON', async () => (fs.writeFileSync(f('bad.json'), '{"format": '), [[f('m1.json'), f('bad.json')], f('bad.json'), /not valid JSON/]) as [string[], string, RegExp]],
      ['JSON of another kind', async () => (fs.writeFileSync(f('other.json'), '[1, 2]'), [[f('other.json')], f('other.json'), /not a kdloss eval --json report \(not a JSON object\)/]) as [string[], string, RegExp]],
      ['a report of another format', async () => [[f('m1.json'), edit(f('m2.json'), 'fmt.json', (j) => (j.format = 'kdloss-eval/0'))], f('fmt.json'), /not a kdloss eval --json report of this version/]],
      ['a negative count in the state', async () => [[f('m1.json'), edit(f('m2.json'), 'neg.json', (j) => (j.state.agreement = -3))], f('neg.json'), /state: agreement: expected a count/]],
      ['a sum that is not numbers', async () => [[f('m1.json'), edit(f('m2.json'), 'sum.json', (j) => (j.state.soft = [1, { x: 1 }]))], f('sum.json'), /state: expected a finite number/]],
      ['a shard range that is not its shard', async () => [[f('m1.json'), edit(f('m2.json'), 'range.json', (j) => (j.shard.rowStart += 1))], f('range.json'), /shard 2\/3 of 50 rows covers rows \[17, 34\), not \[18, 34\)/]],
      ['rows that disagree with the state', async () => [[f('m1.json'), edit(f('m2.json'), 'rows.json', (j) => (j.state.ignored += 1))], f('rows.json'), /state: .* ignored rows, not the report's 17/]],
      ['a missing file', async () => [[f('m1.json'), f('nope.json')], f('nope.json'), /no such file/]],
      ['a directory', async () => [[f('m1.json'), tmp.path], tmp.path, /not a regular file/]],
    ];
    before(async function () {
      this.timeout(120000);
      await Promise.all([report('m1.json', ['--shard', '1/3']), report('m2.json', ['--shard', '2/3']), report('m3.json', ['--shard', '3/3']), report('h2.json', ['--shard', '2/2'])]);
      fs.copyFileSync(f('m2.json'), f('m2b.json'));
      for (const [what, make] of cases) {
        const [files, file, pattern] = await make();
        results.set(what, { r: await runCli(['merge', ...files]), file, pattern });
      }
    });
    for (const [what] of cases) {
      it(`refuses ${what}`, () => {
        const { r, file, pattern } = results.get(what)!;
        expectInputError(r, file, pattern);
      });
    }
  });
});
