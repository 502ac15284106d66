// The seeded safetensors header fuzzer (test/helpers/safetensors-fuzz.ts): a few hundred corrupted
// files opened and read in process, and a few through the real binary (exit code 0 or 2, one line
// naming the file, within a time limit). Longer runs: see the helper's header.
import { expect } from 'chai';
import * as fs from 'fs';
import { runCli, tempDir } from './helpers/cli';
import { check, fuzz, mutate } from './helpers/safetensors-fuzz';
import { Rng } from './helpers/random';

describe('kdloss eval: safetensors header fuzzing', () => {
  const tmp = tempDir('kdloss-cli-fuzz-');

  it('refuses every corrupted header with a CliError (exit code 2) naming the file, in process (300 seeded cases)', async function () {
    this.timeout(60000);
    const messages: string[] = [];
    const { refused, accepted } = await fuzz(20261206, 300, tmp.path, (_i, _what, o) => {
      if (!o.ok) messages.push(o.message!);
    });
    expect(refused + accepted).to.equal(300);
    expect(refused).to.be.above(200);
    // The corruptions reach the checks they aim at.
    for (const problem of [
      'truncated',
      'runs past the end of the file',
      'is larger than the 100000000 bytes allowed',
      'not valid JSON',
      'duplicate key',
      'nested more than 32 levels deep',
      'not valid UTF-8',
      'overlap',
      'belong to no tensor',
      'expected a non-negative integer',
      '__metadata__',
    ]) {
      expect(messages.some((m) => m.includes(problem)), `a message with '${problem}'`).to.equal(true);
    }
  });

  it('gives exit code 0 or 2 with one line naming the file through the binary (8 cases)', async function () {
    this.timeout(120000);
    const rng = new Rng(4242);
    const files = Array.from({ length: 8 }, (_v, i) => {
      const file = tmp.f(`cli-${i}.safetensors`);
      fs.writeFileSync(file, mutate(rng).bytes);
      return file;
    });
    const queue = [...files];
    const worker = async (): Promise<void> => {
      for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
        const r = await runCli(['eval', '--student', file, '--student-key', 'student', '--teacher', file, '--teacher-key', 'teacher', '--labels', file, '--labels-key', 'labels'], {}, { timeoutMs: 30000 });
        expect(r.signal, `${file}: killed`).to.equal(null);
        expect([0, 2], `${file}: exit code ${r.code}: ${r.stderr}`).to.include(r.code);
        if (r.code === 2) {
          const lines = r.stderr.split('\n').filter((l) => l !== '');
          expect(lines, r.stderr).to.have.length(1);
          expect(lines[0].startsWith(`kdloss: ${file}: `), lines[0]).to.equal(true);
        }
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
  });

  it('reports a refused file with its one-line message', async () => {
    const o = await check(tmp.f('no-such.safetensors'), 'missing');
    expect(o).to.deep.equal({ ok: false, message: `${tmp.f('no-such.safetensors')}: no such file` });
  });
});
