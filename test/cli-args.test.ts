// `kdloss` argument parsing: help, version, and every bad command line (exit code 2, one line).
import { expect } from 'chai';
import { type CliResult, runCli } from './helpers/cli';

describe('kdloss CLI: usage', () => {
  it('prints help for kdloss --help and kdloss eval --help (exit 0)', async () => {
    const top = await runCli(['--help']);
    expect(top.code).to.equal(0);
    expect(top.stdout).to.match(/^Usage: kdloss <command>/);
    expect(top.stdout).to.include('eval');
    const ev = await runCli(['eval', '--help']);
    expect(ev.code).to.equal(0);
    for (const flag of ['--student', '--teacher', '--labels', '--student-key', '--teacher-key', '--labels-key', '--ignore-index', '--shard', '--temperature', '--alpha', '--per-sample', '--json', '--threads', '--chunk-rows']) {
      expect(ev.stdout).to.include(flag);
    }
    for (const args of [['merge', '--help'], ['help', 'merge']]) {
      const m = await runCli(args);
      expect(m.code).to.equal(0);
      expect(m.stdout).to.match(/^Usage: kdloss merge \[--json\] REPORT\.json\.\.\./);
    }
    const v = await runCli(['--version']);
    expect(v.stdout).to.match(/^kdloss \d+\.\d+\.\d+/);
  });

  it('prints the usage on stderr with exit code 2 without a command', async () => {
    const r = await runCli([]);
    expect(r.code).to.equal(2);
    expect(r.stdout).to.equal('');
    expect(r.stderr).to.match(/^Usage: kdloss/);
  });

  const usageCases: [string, string[], RegExp][] = [
    ['an unknown command', ['frobnicate'], /unknown command 'frobnicate'/],
    ['an unknown option', ['eval', '--studnt', 'x.npy'], /Unknown option '--studnt'/],
    ['a missing --teacher', ['eval', '--student', 'x.npy'], /--teacher FILE is required/],
    ['a positional argument', ['eval', 'x.npy'], /positional/i],
    ['--temperature 0', ['eval', '--student', 'a', '--teacher', 'b', '--temperature', '0'], /--temperature: expected a finite number > 0, got '0'/],
    ['--temperature abc', ['eval', '--student', 'a', '--teacher', 'b', '--temperature', 'abc'], /--temperature: .* got 'abc'/],
    ['--alpha 1.5', ['eval', '--student', 'a', '--teacher', 'b', '--alpha', '1.5'], /--alpha: expected a number in \[0, 1\], got '1.5'/],
    ['--threads 0', ['eval', '--student', 'a', '--teacher', 'b', '--threads', '0'], /--threads: expected an integer/],
    ['--chunk-rows 2.5', ['eval', '--student', 'a', '--teacher', 'b', '--chunk-rows', '2.5'], /--chunk-rows: expected an integer/],
    ['a missing option value', ['eval', '--student'], /--student/],
    ['--shard 0/4', ['eval', '--student', 'a', '--teacher', 'b', '--shard', '0/4'], /--shard: expected i\/n with 1 <= i <= n <= 1048576 \(e\.g\. 1\/4, then 2\/4, 3\/4, 4\/4\), got '0\/4'/],
    ['--shard 5/4', ['eval', '--student', 'a', '--teacher', 'b', '--shard', '5/4'], /--shard: .* got '5\/4'/],
    ['--shard 1-4', ['eval', '--student', 'a', '--teacher', 'b', '--shard', '1-4'], /--shard: .* got '1-4'/],
    ['--ignore-index 1.5', ['eval', '--student', 'a', '--teacher', 'b', '--ignore-index', '1.5'], /--ignore-index: expected an integer/],
    ['--labels-key without --labels', ['eval', '--student', 'a', '--teacher', 'b', '--labels-key', 'y'], /--labels-key: needs --labels FILE/],
    ['merge without reports', ['merge'], /merge: give the --json reports of the shards/],
    ['merge with an unknown option', ['merge', '--text', 'a.json'], /merge: Unknown option '--text'/],
  ];
  const usageResults = new Map<string, Promise<CliResult>>();
  before(() => {
    // Independent runs: start them together, check each in its own test.
    for (const [what, args] of usageCases) usageResults.set(what, runCli(args));
  });
  for (const [what, , pattern] of usageCases) {
    it(`rejects ${what} with one line and exit code 2`, async () => {
      const r = await usageResults.get(what)!;
      expect(r.code, r.stderr).to.equal(2);
      const lines = r.stderr.split('\n').filter((l) => l !== '');
      expect(lines, r.stderr).to.have.length(1);
      expect(lines[0]).to.match(/^kdloss: /);
      expect(lines[0]).to.match(pattern);
    });
  }
});
