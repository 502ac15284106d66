// The two halves of `kdloss eval` below the command line: the chunk reader (chunks.ts) over .npy
// inputs and the accumulator (accumulator.ts) whose state merges across row ranges into what one
// pass over all rows gives, bit for bit (exact sums, exact-sum.ts).
import { expect } from 'chai';
import * as path from 'path';
import { COLS, ROOT, ROWS, S32, T32, tempDir, writeSmallData, Y } from './helpers/cli';
import { Rng } from './helpers/random';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const accumulator = require(path.join(ROOT, 'dist', 'cli', 'accumulator.js')) as typeof import('../dist/cli/accumulator');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const chunks = require(path.join(ROOT, 'dist', 'cli', 'chunks.js')) as typeof import('../dist/cli/chunks');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const json = require(path.join(ROOT, 'dist', 'util', 'json.js')) as typeof import('../dist/util/json');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const exact = require(path.join(ROOT, 'dist', 'cli', 'exact-sum.js')) as typeof import('../dist/cli/exact-sum');
const { EvalAccumulator } = accumulator;
const { ExactSum } = exact;
type ChunkResult = import('../dist/cli/accumulator').ChunkResult;

/** Random per-row results over `rows` rows and `cols` classes: KL spread over many decades, some argmax ties. */
function randomRows(rows: number, cols: number, seed: number, labels = true): ChunkResult {
  const r = new Rng(seed);
  const soft = Float64Array.from({ length: rows }, () => 10 ** (r.uniform() * 16 - 11));
  const hard = Float64Array.from({ length: rows }, () => r.uniform() * 5);
  const sArg = Int32Array.from({ length: rows }, () => r.int(cols));
  const tArg = Int32Array.from(sArg, (s) => (r.uniform() < 0.7 ? s : r.int(cols)));
  const y = Int32Array.from(tArg, (t) => (r.uniform() < 0.8 ? t : r.int(cols)));
  return { rows, perSampleSoft: soft, perSampleHard: labels ? hard : null, studentArgmax: sArg, teacherArgmax: tArg, labels: labels ? y : null };
}

/** Rows [a, b) of a result. */
function slice(c: ChunkResult, a: number, b: number): ChunkResult {
  return {
    rows: b - a,
    perSampleSoft: c.perSampleSoft.subarray(a, b),
    perSampleHard: c.perSampleHard?.subarray(a, b) ?? null,
    studentArgmax: c.studentArgmax.subarray(a, b),
    teacherArgmax: c.teacherArgmax.subarray(a, b),
    labels: c.labels?.subarray(a, b) ?? null,
  };
}

/** Totals of an accumulator fed `c` in chunks of `step` rows. */
function accumulate(c: ChunkResult, cols: number, step: number, from = 0, to = c.rows): InstanceType<typeof EvalAccumulator> {
  const acc = new EvalAccumulator(cols, c.labels !== null);
  for (let i = from; i < to; i += step) acc.add(slice(c, i, Math.min(to, i + step)));
  return acc;
}

/** Totals equal bit for bit (NaN equal to NaN). */
function expectSameTotals(a: ReturnType<InstanceType<typeof EvalAccumulator>['totals']>, b: typeof a): void {
  expect(a).to.deep.equal(b);
}

describe('kdloss eval accumulator', () => {
  const ROWS_A = 5000;
  const COLS_A = 37;
  const all = randomRows(ROWS_A, COLS_A, 11);

  it('gives the direct sums and counts of its rows', () => {
    const t = accumulate(all, COLS_A, 333).totals();
    let soft = 0;
    let hard = 0;
    let agree = 0;
    for (let i = 0; i < ROWS_A; i++) {
      soft += all.perSampleSoft[i];
      hard += all.perSampleHard![i];
      if (all.studentArgmax[i] === all.teacherArgmax[i]) agree++;
    }
    expect(t.rows).to.equal(ROWS_A);
    expect(Math.abs(t.soft! - soft / ROWS_A)).to.be.below(1e-12 * t.soft!);
    expect(Math.abs(t.hard! - hard / ROWS_A)).to.be.below(1e-12 * t.hard!);
    expect(t.agreementCount).to.equal(agree);
    expect(t.perClass!.reduce((a, c) => a + c.support, 0)).to.equal(ROWS_A);
    expect(t.klHistogram.bins.reduce((a, b) => a + b.count, 0)).to.equal(ROWS_A);
  });

  it('merges accumulators of disjoint row ranges (through their JSON state) into the one-pass totals, bit for bit', () => {
    const one = accumulate(all, COLS_A, 512).totals();
    for (const cuts of [[2500], [1, 4999], [700, 1400, 3333, 4000]]) {
      const bounds = [0, ...cuts, ROWS_A];
      const parts = bounds.slice(1).map((b, i) => accumulate(all, COLS_A, 97, bounds[i], b));
      // Shards are merged in any order, each after a round trip through JSON.
      const merged = new EvalAccumulator(COLS_A, true);
      for (const p of [...parts].reverse()) merged.merge(EvalAccumulator.fromState(JSON.parse(JSON.stringify(p.toState()))));
      expectSameTotals(merged.totals(), one);
    }
  });

  it('round-trips its state exactly and merges without labels', () => {
    const noLabels = randomRows(900, 5, 12, false);
    const acc = accumulate(noLabels, 5, 64);
    const state = acc.toState();
    expect(state.classes).to.deep.equal([]);
    // The partial sums may be regrouped when read back; the sums they make are the same.
    const back = EvalAccumulator.fromState(JSON.parse(JSON.stringify(state)));
    expectSameTotals(back.totals(), acc.totals());
    expect({ ...back.toState(), soft: [], hard: [] }).to.deep.equal({ ...state, soft: [], hard: [] });
    const merged = accumulate(noLabels, 5, 64, 0, 450);
    merged.merge(accumulate(noLabels, 5, 64, 450, 900));
    expectSameTotals(merged.totals(), acc.totals());
    expect(merged.totals().perClass).to.equal(null);
  });

  it('refuses to merge different classes or labels, and states of another format or binning', () => {
    expect(() => new EvalAccumulator(5, true).merge(new EvalAccumulator(6, true))).to.throw(/cannot merge 6 classes/);
    expect(() => new EvalAccumulator(5, true).merge(new EvalAccumulator(5, false))).to.throw(/cannot merge/);
    const state = accumulate(all, COLS_A, 1000).toState();
    expect(() => EvalAccumulator.fromState({ ...state, format: 'x' as 'kdloss-eval-accumulator/2' })).to.throw(/unknown accumulator format/);
    expect(() => EvalAccumulator.fromState({ ...state, rows: state.rows + 1 })).to.throw(/support adds up to/);
    expect(() => EvalAccumulator.fromState({ ...state, agreement: -1 })).to.throw(/agreement: expected a count/);
    expect(() => EvalAccumulator.fromState({ ...state, soft: [1, 'x'] as never })).to.throw(/in a sum/);
    expect(() => EvalAccumulator.fromState({ ...state, classes: [state.classes[0], state.classes[0]] })).to.throw(/listed twice/);
    const noLabels = accumulate(randomRows(10, 3, 9, false), 3, 4).toState();
    expect(() => EvalAccumulator.fromState({ ...noLabels, rows: 11 })).to.throw(/histogram counts 10 rows, not 11/);
    expect(() => EvalAccumulator.fromState({ ...state, classes: [{ ...state.classes[0], class: COLS_A }] })).to.throw(/out of range/);
    expect(() => EvalAccumulator.fromState({ ...state, histogram: { ...state.histogram, perDecade: 10 } })).to.throw(/binning/);
  });

  it('sums infinities as exact arithmetic does (Infinity, not NaN; Infinity - Infinity is NaN)', () => {
    const sum = (xs: number[]): number => {
      const s = new ExactSum();
      for (const x of xs) s.add(x);
      return s.value;
    };
    expect(sum([1, Infinity, 2])).to.equal(Infinity);
    expect(sum([-Infinity, 1e300])).to.equal(-Infinity);
    expect(sum([Infinity, -Infinity])).to.be.NaN;
    expect(sum([1e308, 1e308])).to.equal(Infinity);
    expect(sum([1, 1e100, 1, -1e100])).to.equal(2);
    const c = randomRows(10, 3, 14);
    c.perSampleSoft[4] = Infinity;
    const t = accumulate(c, 3, 3).totals();
    expect(t.soft).to.equal(Infinity);
    expect(t.perClass!.find((k) => k.class === c.labels![4])!.meanKl).to.equal(Infinity);
  });

  it('writes non-finite sums as strings in JSON and reads them back', () => {
    const c = randomRows(30, 4, 15);
    c.perSampleSoft[1] = Infinity;
    c.perSampleSoft[2] = NaN;
    const acc = accumulate(c, 4, 7);
    const text = json.toJsonText(acc.toState());
    expect(text).to.include('"Infinity"');
    expect(text).to.include('"NaN"');
    // null only for "no ignore index", never for a number.
    expect(text.replace('"ignoreIndex": null', '')).to.not.include('null');
    const back = EvalAccumulator.fromState(JSON.parse(text));
    expectSameTotals(back.totals(), acc.totals());
    expect(json.toJsonText(back.toState())).to.include('"NaN"');
    expect(back.totals().klHistogram).to.deep.equal(acc.totals().klHistogram);
    expect(json.fromJsonNumber('-Infinity')).to.equal(-Infinity);
    expect(() => json.fromJsonNumber(null)).to.throw(TypeError);
  });

  it('keeps NaN and infinite KL apart from the counts (NaN rows outside the bins)', () => {
    const c = randomRows(10, 3, 13);
    c.perSampleSoft[2] = NaN;
    c.perSampleSoft[5] = Infinity;
    const t = accumulate(c, 3, 4).totals();
    expect(t.soft).to.be.NaN;
    expect(t.klHistogram.nan).to.equal(1);
    expect(t.klHistogram.max).to.equal(Infinity);
    expect(t.klHistogram.bins.reduce((a, b) => a + b.count, 0)).to.equal(9);
  });
});

describe('kdloss eval chunk reader', () => {
  const tmp = tempDir('kdloss-cli-chunks-');
  before(() => writeSmallData(tmp.path));

  it('reads every row in order in chunks, labels as class indices', async () => {
    const inputs = await chunks.openInputs({ student: tmp.f('s32.npy'), teacher: tmp.f('t32.npy'), labels: tmp.f('y64.npy') });
    try {
      expect([inputs.rows, inputs.cols, inputs.dtype, inputs.labelsKind]).to.deep.equal([ROWS, COLS, 'float32', 'indices']);
      const reader = new chunks.ChunkReader(inputs, 7);
      const seen: number[] = [];
      for await (const c of reader.chunks()) {
        seen.push(c.row);
        expect(c.rows).to.equal(Math.min(7, ROWS - c.row));
        expect(c.student).to.deep.equal(S32.data.subarray(c.row * COLS, (c.row + c.rows) * COLS));
        expect(c.teacher).to.deep.equal(T32.data.subarray(c.row * COLS, (c.row + c.rows) * COLS));
        expect(c.labels).to.deep.equal(Y.subarray(c.row, c.row + c.rows));
      }
      expect(seen).to.deep.equal([0, 7, 14, 21, 28, 35, 42, 49]);
    } finally {
      await chunks.closeInputs(inputs);
    }
  });

  it('stops early without an unhandled read (one-hot labels, no labels)', async () => {
    for (const labels of [tmp.f('onehot32.npy'), undefined]) {
      const inputs = await chunks.openInputs({ student: tmp.f('s32.npy'), teacher: tmp.f('t32.npy'), labels });
      try {
        for await (const c of new chunks.ChunkReader(inputs, 16).chunks()) {
          expect(c.labels).to.deep.equal(labels ? Y.subarray(0, 16) : null);
          break;
        }
      } finally {
        await chunks.closeInputs(inputs);
      }
    }
  });
});
