// `kdloss eval` streaming a file much larger than its chunks (bounded memory) and stopping on signals.
import { expect } from 'chai';
import * as fs from 'fs';
import { getBackend, type Matrix, setBackend } from 'kdloss';
import { expectMatches, reference, runJson, spawnCli, tempDir, writeSmallData } from './helpers/cli';
import { toInt64, writeRepeated } from './helpers/npy';
import { Rng, toF32 } from './helpers/random';

describe('kdloss eval: streaming and signals', () => {
  const tmp = tempDir('kdloss-cli-signals-');
  const f = tmp.f;
  before(() => writeSmallData(tmp.path));

  describe('kdloss eval: streaming a file much larger than the chunk', function () {
    this.timeout(120000);
    // 200k rows x 100 classes float32: 80 MB per logits file, as 200 copies of a 1000-row block.
    const BLOCK = 1000;
    const REPEATS = 200;
    const C = 100;
    let s: Matrix;
    let t: Matrix;
    let y: Int32Array;

    before(() => {
      const rngBig = new Rng(99);
      s = toF32(rngBig.matrix(BLOCK, C, 2));
      t = { data: s.data.map((v) => v + rngBig.normal(0.7)), rows: BLOCK, cols: C };
      y = rngBig.classes(BLOCK, C);
      writeRepeated(f('big-s.npy'), s.data, [BLOCK * REPEATS, C], REPEATS);
      writeRepeated(f('big-t.npy'), t.data, [BLOCK * REPEATS, C], REPEATS);
      writeRepeated(f('big-y.npy'), toInt64(y), [BLOCK * REPEATS], REPEATS);
    });

    it('keeps peak RSS bounded by the chunk size, not the file size, and gives the block values', async () => {
      expect(fs.statSync(f('big-s.npy')).size).to.be.greaterThan(80e6);
      const small = await runJson(['eval', '--student', f('s32.npy'), '--teacher', f('t32.npy'), '--labels', f('y64.npy')]);
      const big = await runJson(['eval', '--student', f('big-s.npy'), '--teacher', f('big-t.npy'), '--labels', f('big-y.npy'), '--chunk-rows', '1000']);
      expect(big.rows).to.equal(BLOCK * REPEATS);
      expect(big.chunkRows).to.equal(1000);
      // Every block is the same, so the file's means are the block's.
      const previous = getBackend();
      setBackend('native');
      try {
        expectMatches({ ...big, perClass: null }, { ...reference(s, t, y, 4, 0.7), perClass: null }, 1e-12);
      } finally {
        setBackend(previous);
      }
      // 160 MB of logits went through; the process never held more than a few chunks of them.
      const MB = 1 << 20;
      expect(big.maxRssBytes, `peak RSS ${(big.maxRssBytes / MB).toFixed(1)} MB`).to.be.below(150 * MB);
      expect(big.maxRssBytes - small.maxRssBytes, `RSS growth over a 50-row run`).to.be.below(64 * MB);
    });

    it('reports a file truncated while it is read: exit code 2, one line, no --per-sample file', async () => {
      fs.copyFileSync(f('big-t.npy'), f('shrinking-t.npy'));
      const out = f('shrinking-out.npy');
      const run = spawnCli(
        ['eval', '--student', f('big-s.npy'), '--teacher', f('shrinking-t.npy'), '--chunk-rows', '1000', '--per-sample', out],
        { KDLOSS_CLI_TEST_DELAY_MS: '20' },
      );
      const temporary = (): string[] => fs.readdirSync(tmp.path).filter((n) => n.startsWith('.shrinking-out.npy.'));
      const t0 = Date.now();
      while (temporary().length === 0 && Date.now() - t0 < 20000) await new Promise((r) => setTimeout(r, 10));
      fs.truncateSync(f('shrinking-t.npy'), 20e6);
      const [code] = await run.exited;
      expect(code, run.out.stderr).to.equal(2);
      expect(run.out.stderr).to.match(/^kdloss: \S*shrinking-t\.npy: truncated data: the file ended at byte 20000000 while reading\n$/);
      expect(fs.existsSync(out)).to.equal(false);
      expect(temporary()).to.deep.equal([]);
    });

    it('stops cleanly on SIGINT: exit code 130, "interrupted after N rows", no partial --per-sample file', async () => {
      const out = f('interrupted.npy');
      const { child, exited, out: io } = spawnCli(
        ['eval', '--student', f('big-s.npy'), '--teacher', f('big-t.npy'), '--labels', f('big-y.npy'), '--chunk-rows', '1000', '--per-sample', out],
        { KDLOSS_CLI_TEST_DELAY_MS: '20' },
      );
      // The temporary output appears once the inputs are checked and the loop is about to start.
      const temporary = (): string[] => fs.readdirSync(tmp.path).filter((n) => n.startsWith('.interrupted.npy.'));
      const t0 = Date.now();
      while (temporary().length === 0 && Date.now() - t0 < 20000) await new Promise((r) => setTimeout(r, 10));
      expect(temporary(), 'temporary output').to.have.length(1);
      await new Promise((r) => setTimeout(r, 200));
      child.kill('SIGINT');
      const [code, sig] = await exited;
      const { stdout, stderr } = io;
      expect(sig, stderr).to.equal(null);
      expect(code, stderr).to.equal(130);
      expect(stdout).to.equal('');
      const m = /^kdloss: interrupted after (\d+) rows\n$/.exec(stderr);
      expect(m, stderr).to.not.equal(null);
      const n = Number(m![1]);
      expect(n % 1000).to.equal(0);
      expect(n).to.be.below(BLOCK * REPEATS);
      expect(fs.existsSync(out)).to.equal(false);
      expect(temporary()).to.deep.equal([]);
    });
  });
});
