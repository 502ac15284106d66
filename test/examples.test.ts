// The examples in examples/ run and print what README says they print.
import { expect } from 'chai';
import { execFileSync } from 'child_process';
import * as path from 'path';

const root = path.dirname(require.resolve('kdloss/package.json'));
const run = (file: string, ...args: string[]) =>
  execFileSync(process.execPath, [path.join(root, 'examples', file), ...args], { cwd: root, encoding: 'utf8', timeout: 60000 });

describe('examples', () => {
  it('quickstart.js prints the seed example losses', () => {
    expect(run('quickstart.js')).to.match(/KD loss 0\.23754\d/);
  });

  it('training-step.js drives the distillation loss down with a reused gradient buffer', () => {
    const losses = [...run('training-step.js').matchAll(/loss (\d+\.\d+)/g)].map((m) => Number(m[1]));
    expect(losses.length).to.be.greaterThan(2);
    expect(losses[losses.length - 1]).to.be.lessThan(losses[0] / 4);
  });

  it('server.js evaluates a posted batch and answers bad shapes with a 400', () => {
    const out = run('server.js', '--self-test');
    expect(out).to.match(/^200 \{/m);
    expect(out).to.match(/^400 \{/m);
    expect(out).to.include('ERR_KD_SHAPE');
  });
});
