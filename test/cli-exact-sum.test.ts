// The exact sum behind kdloss eval's totals and kdloss merge (lib/cli/exact-sum.ts): the exact sum
// of float64 values rounded once to nearest even, whatever the order and the split, checked against
// BigInt arithmetic.
import { expect } from 'chai';
import * as path from 'path';
import { ROOT } from './helpers/cli';
import { Rng } from './helpers/random';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { ExactSum } = require(path.join(ROOT, 'dist', 'cli', 'exact-sum.js')) as typeof import('../dist/cli/exact-sum');

/** Values m * 2^e with |e| <= 60 whose every bit is a multiple of 2^-112, so their exact sum is a BigInt of 2^-112 units. */
function values(rng: Rng, n: number, spread: number): number[] {
  return Array.from({ length: n }, () => {
    const m = Math.floor(rng.uniform() * 2 ** 52) + 2 ** 52;
    const e = Math.floor((rng.uniform() * 2 - 1) * spread) - 52;
    return (rng.uniform() < 0.3 ? -1 : 1) * m * 2 ** e;
  });
}

/** The exact sum rounded to nearest even: Number(BigInt) rounds so, and the scaling is a power of two. */
function reference(xs: number[]): number {
  let units = 0n;
  for (const x of xs) units += BigInt(x * 2 ** 112);
  return Number(units) * 2 ** -112;
}

function sumOf(xs: number[]): InstanceType<typeof ExactSum> {
  const s = new ExactSum();
  for (const x of xs) s.add(x);
  return s;
}

describe('kdloss exact sums', () => {
  it('equal the exactly rounded sum (BigInt reference) for values over 120 binades, with cancellation', () => {
    const rng = new Rng(77);
    for (let trial = 0; trial < 200; trial++) {
      const xs = values(rng, 1 + rng.int(300), trial % 2 ? 60 : 8);
      expect(sumOf(xs).value, `trial ${trial}`).to.equal(reference(xs));
    }
  });

  it('round ties to even (the case math.fsum corrects)', () => {
    // 1 + 2^-53 is halfway between 1 and its successor: ties to even gives 1; a further 2^-106 pushes it up.
    expect(sumOf([1, 2 ** -53]).value).to.equal(1);
    expect(sumOf([1, 2 ** -53, 2 ** -106]).value).to.equal(1 + 2 ** -52);
    expect(sumOf([1 + 2 ** -52, 2 ** -53]).value).to.equal(1 + 2 ** -51);
    expect(sumOf(Array(10).fill(0.1)).value).to.equal(1);
    expect(sumOf([1e100, 1, -1e100, 1]).value).to.equal(2);
  });

  it('give the same bits in every order and every split merged through the state', () => {
    const rng = new Rng(78);
    const xs = values(rng, 2000, 40);
    const whole = sumOf(xs).value;
    for (let trial = 0; trial < 20; trial++) {
      const shuffled = [...xs];
      for (let i = shuffled.length - 1; i > 0; i--) {
        const j = rng.int(i + 1);
        [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
      }
      const cut = rng.int(xs.length);
      const merged = ExactSum.fromState(JSON.parse(JSON.stringify(sumOf(shuffled.slice(cut)).toState())));
      merged.merge(sumOf(shuffled.slice(0, cut)));
      expect(merged.value).to.equal(whole);
    }
  });

  it('keep NaN and infinities apart, and read back any list of numbers as a state', () => {
    expect(sumOf([1, Infinity, -5]).value).to.equal(Infinity);
    expect(sumOf([Infinity, -Infinity]).value).to.be.NaN;
    expect(sumOf([NaN, 1]).value).to.be.NaN;
    expect(sumOf([1e308, 1e308]).value).to.equal(Infinity);
    expect(sumOf([-1e308, -1e308]).value).to.equal(-Infinity);
    expect(sumOf([]).value).to.equal(0);
    expect(sumOf([1, Infinity]).toState()).to.deep.equal([1, 'Infinity']);
    expect(ExactSum.fromState([3, 1, 1e-30, 'NaN']).value).to.be.NaN;
    expect(ExactSum.fromState([3, 1, 2 ** -60]).value).to.equal(4);
    for (const bad of [null, 'x', [null], [1, 'inf'], [{}]]) expect(() => ExactSum.fromState(bad), JSON.stringify(bad)).to.throw(TypeError);
  });
});
