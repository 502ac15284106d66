// The seed's own tests (shared/seed/distillation.rs), ported: same inputs, same assertions, plus the
// exact values they imply.
import { expect } from 'chai';
import {
  AttentionTransferLoss,
  ConfigError,
  CrossEntropyLoss,
  DistillationLoss,
  FeatureDistillationLoss,
  ShapeError,
} from 'kdloss';
import { forEachBackend } from './helpers/backends';

forEachBackend('seed tests', () => {
  it('creates a distillation loss and keeps temperature and alpha', () => {
    const loss = new DistillationLoss(3.0, 0.7, new CrossEntropyLoss());
    expect(loss.temperature).to.equal(3.0);
    expect(loss.alpha).to.equal(0.7);
  });

  it('rejects a temperature of 0 or below', () => {
    expect(() => new DistillationLoss(0.0, 0.5, new CrossEntropyLoss())).to.throw(ConfigError);
    expect(() => new DistillationLoss(-1.0, 0.5, new CrossEntropyLoss())).to.throw(ConfigError);
  });

  it('rejects an alpha outside [0, 1]', () => {
    expect(() => new DistillationLoss(3.0, -0.1, new CrossEntropyLoss())).to.throw(ConfigError);
    expect(() => new DistillationLoss(3.0, 1.1, new CrossEntropyLoss())).to.throw(ConfigError);
  });

  it('computes a positive finite distillation loss on the seed example', () => {
    const loss = new DistillationLoss(2.0, 0.5, new CrossEntropyLoss());
    const student = [
      [1.0, 2.0, 0.5],
      [0.5, 1.0, 2.0],
    ];
    const teacher = [
      [1.2, 1.8, 0.6],
      [0.6, 1.1, 1.9],
    ];
    const hardTargets = [
      [0.0, 1.0, 0.0],
      [0.0, 0.0, 1.0],
    ];
    const value = loss.computeDistillation(student, teacher, hardTargets);
    expect(value).to.be.greaterThan(0);
    expect(Number.isFinite(value)).to.equal(true);
    // Exact value (see test/fixtures/generate.py for the PyTorch derivation of the same case).
    const r = loss.forward(student, teacher, hardTargets);
    expect(r.loss).to.be.closeTo(0.5 * 4 * r.soft + 0.5 * r.hard, 1e-15);
    expect(r.hard).to.be.closeTo(0.4643687841079449, 1e-12);
    expect(r.soft).to.be.closeTo(0.002677902791795049, 1e-14);
  });

  it('computes a small positive feature loss for similar features', () => {
    const loss = new FeatureDistillationLoss([0.5, 0.3, 0.2], 2);
    const student = [
      [
        [1.0, 2.0],
        [3.0, 4.0],
      ],
      [
        [0.5, 1.5],
        [2.5, 3.5],
      ],
      [
        [0.1, 0.2],
        [0.3, 0.4],
      ],
    ];
    const teacher = [
      [
        [1.1, 2.1],
        [3.1, 4.1],
      ],
      [
        [0.6, 1.6],
        [2.6, 3.6],
      ],
      [
        [0.2, 0.3],
        [0.4, 0.5],
      ],
    ];
    const value = loss.computeFeatureLoss(student, teacher);
    expect(value).to.be.greaterThan(0);
    expect(value).to.be.lessThan(1);
    // Every difference is 0.1, so each layer's mean squared distance is 0.01 and the weights sum to 1.
    expect(value).to.be.closeTo(0.01, 1e-12);
  });

  it('computes a non-negative finite attention transfer loss', () => {
    const loss = new AttentionTransferLoss(2.0);
    const student = [
      [0.3, 0.5, 0.2],
      [0.4, 0.4, 0.2],
    ];
    const teacher = [
      [0.35, 0.45, 0.2],
      [0.35, 0.45, 0.2],
    ];
    const value = loss.computeAttentionLoss(student, teacher);
    expect(value).to.be.at.least(0);
    expect(Number.isFinite(value)).to.equal(true);
    // Hand-computed: rows normalised by the sums of squares.
    const norm = (r: number[]) => {
      const s = r.reduce((a, x) => a + x * x, 0);
      return r.map((x) => (x * x) / s);
    };
    let expected = 0;
    for (let i = 0; i < 2; i++) {
      const a = norm(student[i]);
      const b = norm(teacher[i]);
      for (let j = 0; j < 3; j++) expected += (a[j] - b[j]) ** 2;
    }
    expect(value).to.be.closeTo(expected / 6, 1e-15);
  });

  it('rejects feature layers whose student and teacher shapes differ', () => {
    const loss = new FeatureDistillationLoss([1.0], 2);
    expect(() => loss.computeFeatureLoss([[[1.0, 2.0]]], [[[1.0, 2.0, 3.0]]])).to.throw(ShapeError);
  });
});
