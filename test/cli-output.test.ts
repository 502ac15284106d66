// `kdloss eval --per-sample FILE`: the output never overwrites an input (whatever path names it: a
// symlink, a hard link, `..` through a symlinked directory), it appears only once the run succeeds
// (written to a temporary file renamed into place), and a failed or interrupted run leaves an
// existing file as it was and no temporary file behind.
import { expect } from 'chai';
import { execFile, execFileSync, spawn } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { BIN, type CliResult, evalArgs, expectInputError, ROWS, runCli, spawnCli, tempDir, writeSmallData, Y } from './helpers/cli';
import { readNpy, toInt64, writeNpy, writeRepeated } from './helpers/npy';
import { Rng, toF32 } from './helpers/random';

const sha = (p: string): string => crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');

describe('kdloss eval --per-sample: never an input, never half-written', () => {
  const tmp = tempDir('kdloss-cli-output-');
  const f = tmp.f;
  before(() => writeSmallData(tmp.path));

  /** Files of `dir` that are not the data set or what the test made: left-over temporaries. */
  const leftovers = (dir: string, keep: string[]): string[] => fs.readdirSync(dir).filter((n) => !keep.includes(n) && n.includes('.tmp'));

  describe('refuses an output that is one of the inputs', () => {
    interface Alias {
      what: string;
      make: () => string;
      input: 'student' | 'teacher' | 'labels';
      original: string;
    }
    const aliases: Alias[] = [
      {
        what: 'a symlink to the --student file',
        make: () => {
          fs.symlinkSync(f('s32.npy'), f('link-to-student.npy'));
          return f('link-to-student.npy');
        },
        input: 'student',
        original: 's32.npy',
      },
      {
        what: 'a hard link to the --teacher file',
        make: () => {
          fs.linkSync(f('t32.npy'), f('hard-teacher.npy'));
          return f('hard-teacher.npy');
        },
        input: 'teacher',
        original: 't32.npy',
      },
      {
        what: "the --labels file through '..' in a symlinked directory",
        make: () => {
          // sub/link -> other/deeper, so sub/link/../y64.npy is other/y64.npy for the system while
          // path.resolve reads it as sub/y64.npy.
          fs.mkdirSync(f('other/deeper'), { recursive: true });
          fs.mkdirSync(f('sub'));
          fs.copyFileSync(f('y64.npy'), f('other/y64.npy'));
          fs.symlinkSync(f('other/deeper'), f('sub/link'));
          // Joined by hand: path.join would resolve the '..' lexically.
          return `${tmp.path}/sub/link/../y64.npy`;
        },
        input: 'labels',
        original: 'other/y64.npy',
      },
    ];
    for (const a of aliases) {
      it(`refuses ${a.what} with exit code 2, the input untouched`, async () => {
        const out = a.make();
        const original = f(a.original);
        const before = sha(original);
        const args = evalArgs(tmp.path, a.input === 'labels' ? { labels: original } : {}, ['--per-sample', out]);
        const r = await runCli(args);
        expectInputError(r, out, new RegExp(`is the same file as the --${a.input} input`));
        expect(sha(original), `${a.original} changed`).to.equal(before);
      });
    }
  });

  it('writes a new file only on success, through a temporary file in the same directory', async () => {
    const out = f('fresh.npy');
    const r = await runCli(evalArgs(tmp.path, {}, ['--per-sample', out, '--json']));
    expect(r.code, r.stderr).to.equal(0);
    expect(readNpy(out).shape).to.deep.equal([ROWS]);
    expect(leftovers(tmp.path, [])).to.deep.equal([]);
  });

  it('keeps an existing output file as it was when the run fails in a later chunk', async () => {
    const out = f('previous.npy');
    writeNpy(out, new Float64Array([1, 2, 3]), [3]);
    const before = sha(out);
    const y = toInt64(Y);
    y[40] = -1n;
    writeNpy(f('y-bad-late.npy'), y, [ROWS]);
    const r = await runCli(evalArgs(tmp.path, { labels: f('y-bad-late.npy') }, ['--chunk-rows', '8', '--per-sample', out]));
    expectInputError(r, f('y-bad-late.npy'), /row 40: class index -1 out of range/);
    expect(sha(out), 'the previous output').to.equal(before);
    expect(leftovers(tmp.path, [])).to.deep.equal([]);
  });

  it("keeps a replaced file's permissions, and writes names as long as the file system allows", async () => {
    const out = f('private.npy');
    writeNpy(out, new Float64Array([1]), [1]);
    fs.chmodSync(out, 0o600);
    const long = f(`${'x'.repeat(251)}.npy`);
    for (const file of [out, long]) {
      const r = await runCli(evalArgs(tmp.path, {}, ['--per-sample', file]));
      expect(r.code, r.stderr).to.equal(0);
      expect(readNpy(file).shape).to.deep.equal([ROWS]);
    }
    expect(fs.statSync(out).mode & 0o777).to.equal(0o600);
    expect(leftovers(tmp.path, [])).to.deep.equal([]);
  });

  it('replaces the file an existing symlink points to, keeping the symlink', async () => {
    fs.mkdirSync(f('targets'));
    const target = f('targets/real.npy');
    writeNpy(target, new Float64Array([7]), [1]);
    fs.symlinkSync(target, f('out-link.npy'));
    const r = await runCli(evalArgs(tmp.path, {}, ['--per-sample', f('out-link.npy')]));
    expect(r.code, r.stderr).to.equal(0);
    expect(fs.lstatSync(f('out-link.npy')).isSymbolicLink()).to.equal(true);
    expect(readNpy(target).shape).to.deep.equal([ROWS]);
    expect(leftovers(f('targets'), [])).to.deep.equal([]);
  });

  for (const [what, make, pattern] of [
    ['a directory', (p: string) => fs.mkdirSync(p), /not a regular file \(a directory\)/],
    ['a FIFO', (p: string) => execFileSync('mkfifo', [p]), /not a regular file \(a FIFO\)/],
  ] as [string, (p: string) => void, RegExp][]) {
    it(`refuses ${what} as the output with exit code 2 (no hang)`, async () => {
      const out = f(`out-${what.replace(/\W/g, '')}`);
      make(out);
      const r = await runCli(evalArgs(tmp.path, {}, ['--per-sample', out]), {}, { timeoutMs: 15000 });
      expectInputError(r, out, pattern);
    });
  }

  it('reports a failed write (a full disk; here the file size limit) with exit code 2 and removes the partial output', async () => {
    // 20000 rows: a per-sample file of 160 kB, beyond a file size limit of 64 blocks (ulimit -f: 32 or 64 kB).
    const r = new Rng(5);
    const block = toF32(r.matrix(1000, 10));
    writeRepeated(f('w-s.npy'), block.data, [20000, 10], 20);
    writeRepeated(f('w-t.npy'), toF32(r.matrix(1000, 10)).data, [20000, 10], 20);
    const dir = f('limited');
    fs.mkdirSync(dir);
    const out = path.join(dir, 'out.npy');
    writeNpy(out, new Float64Array([1, 2, 3]), [3]);
    const before = sha(out);
    const res = await new Promise<CliResult>((resolve) => {
      const cmd = `ulimit -f 64; exec "$0" "$@"`;
      const args = [BIN, ...evalArgs(tmp.path, { student: f('w-s.npy'), teacher: f('w-t.npy'), labels: '' }, ['--chunk-rows', '1000', '--per-sample', out])];
      execFile('/bin/sh', ['-c', cmd, process.execPath, ...args], { env: { ...process.env, KDLOSS_BACKEND: 'native' } }, (err, stdout, stderr) => {
        const e = err as (Error & { code?: number }) | null;
        resolve({ code: e === null ? 0 : typeof e.code === 'number' ? e.code : null, signal: null, stdout: String(stdout), stderr: String(stderr) });
      });
    });
    expectInputError(res, out, /write failed: file too large/);
    expect(sha(out), 'the previous output').to.equal(before);
    expect(leftovers(dir, [])).to.deep.equal([]);
  });

  it('reports a report that cannot be written (stdout on a full device) on one line with exit code 2', async () => {
    for (const extra of [[], ['--json']]) {
      const full = fs.openSync('/dev/full', 'w');
      const child = spawn(process.execPath, [BIN, ...evalArgs(tmp.path, {}, extra)], { stdio: ['ignore', full, 'pipe'] });
      fs.closeSync(full);
      let stderr = '';
      child.stderr!.on('data', (d) => (stderr += d));
      const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      expect(code, stderr).to.equal(2);
      expect(stderr).to.equal('kdloss: cannot write to standard output: no space left on device\n');
    }
  });

  it('leaves no temporary file and the previous output on SIGINT, SIGTERM and a second Ctrl-C', async function () {
    this.timeout(60000);
    for (const [signals, code] of [
      [['SIGINT'], 130],
      [['SIGTERM'], 143],
      [['SIGINT', 'SIGINT'], 130],
    ] as [NodeJS.Signals[], number][]) {
      const dir = f(`signals-${signals.join('-')}`);
      fs.mkdirSync(dir);
      const out = path.join(dir, 'out.npy');
      writeNpy(out, new Float64Array([1, 2]), [2]);
      const before = sha(out);
      const run = spawnCli(evalArgs(tmp.path, {}, ['--chunk-rows', '1', '--per-sample', out]), { KDLOSS_CLI_TEST_DELAY_MS: '100' });
      // Started: the temporary output exists.
      const t0 = Date.now();
      while (leftovers(dir, []).length === 0 && Date.now() - t0 < 20000) await new Promise((r) => setTimeout(r, 10));
      expect(leftovers(dir, []), `temporary output of ${signals.join(' ')}`).to.have.length(1);
      for (const s of signals) run.child.kill(s);
      const [exit, sig] = await run.exited;
      expect([exit, sig], `${signals.join(' ')}: ${run.out.stderr}`).to.deep.equal([code, null]);
      // A second Ctrl-C leaves at once, possibly before the first one's message.
      expect(run.out.stderr).to.match(signals.length > 1 ? /^(kdloss: interrupted after \d+ rows\n)?$/ : /^kdloss: (interrupted|terminated by SIGTERM) after \d+ rows\n$/);
      expect(sha(out), `previous output after ${signals.join(' ')}`).to.equal(before);
      expect(leftovers(dir, []), `left after ${signals.join(' ')}`).to.deep.equal([]);
    }
  });
});
