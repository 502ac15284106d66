#!/usr/bin/python3
"""Generates the PyTorch reference fixtures the test suite checks kdloss against.

Run it from the repository root with Debian's Python, which has PyTorch (package python3-torch):

    /usr/bin/python3 tools/gen_fixtures.py            # writes test/fixtures/*.json
    /usr/bin/python3 tools/gen_fixtures.py --check    # regenerates in memory, fails if a file differs

It is deterministic (every case draws from its own seeded generator, PyTorch runs single-threaded on
the CPU in float64), so rerunning it reproduces the committed files byte for byte.

What the files hold
-------------------
One JSON file per family (kd, hard, feature, attention), each {"format", "generator", "cases": [...]}.
A case names the public API call to make (constructor arguments, inputs, forward options) and the
PyTorch reference of every result, plus an error floor for every reference value. Arrays are stored
as {"dtype", "shape", "b64"}: base64 of the little-endian bytes of float64 / float32 / int32 / uint32
/ uint8 elements. float32 cases store the float32 inputs the library is called with; their references
are computed in float64 from exactly those (rounded) values. References are always float64.

Reference semantics (float64 PyTorch, autograd for every gradient)
------------------------------------------------------------------
* kd: soft = sum over kept rows of kl_div(log_softmax(s/T), log_softmax(t/T), log_target=True),
  hard = F.cross_entropy (class indices with ignore_index and label_smoothing, or probability rows),
  -sum(y' ln clamp(s, eps, 1 - eps)) with y' = (1 - ls) y + ls / C (fromLogits false), or
  sum((s - y)^2) / C (MSE; class indices read as one-hot). Rows with mask 0 or class == ignoreIndex are
  left out of both terms. 'mean' and 'none' divide by the rows kept (0 kept -> 0), 'sum' does not;
  loss = alpha T^2 soft + (1 - alpha) hard; perSample (reduction 'none') = alpha T^2 KL_r +
  (1 - alpha) hard_r (0 for left-out rows); grad = d loss / d student ('none': of the mean loss).
* hard: CrossEntropyLoss / MseLoss compute() = mean over kept rows, gradient() = its autograd.
* feature: loss = sum_l w_l * reduce_r(mean_j |s - t|^p); perLayer[l] = reduce_r(row mean);
  perSample[r] = sum_l w_l * row mean; 'mean'/'none' average rows, 'sum' sums them.
* attention: a = |x|^beta, rows divided by their sum where it is > 1e-8; rows reduce mean_j (a_s -
  a_t)^2; 'mean'/'none' average rows (= mean over all elements), 'sum' sums them. The gradient at an
  element x == 0 is defined as 0 for every beta (PyTorch gives nan for beta < 1 there; replaced by 0).
* float32 cases use the same float64 computation on the rounded inputs; parameters (T, alpha, eps,
  label smoothing, weights, beta) stay float64, so the probability clamp is [eps, 1 - 1e-10] in float64
  also for float32 inputs (as the js backend computes it). Most probability inputs keep clear of the
  bounds; the seed's example, the 1x1 cases and the 'clamp bounds' case pin them (see make_probs).

Error floors
------------
The tests accept |got - ref| <= tol * max(|ref|, floor). The floor is the scale below which a result
computed in the input dtype cannot be resolved, derived per quantity (see floors in each function):
* KL_r: the larger of the two terms that cancel in KL = H(p_t, p_s) - H(p_t), bounded above by
  sum_j p_t,j (|a_j| + |b_j|) + max(log Zs, 1) + max(log Zt, 1), where a, b are the max-shifted
  scaled logits and Z their sums of exps. Each log Z enters with at least 1: Z contains exp(0) = 1, so
  a log-sum-exp carries an absolute rounding error of order eps whatever its value (log Z ~ 0 when the
  row is peaked).
* cross-entropy from logits: sum_j y'_j (|s_j - max s| + max(log Z, 1)), the same log-sum-exp argument
  (a confident, correct prediction has a loss ~1e-10 that log(1 + 1e-10) resolves only to eps).
* cross-entropy from probabilities, MSE, feature distances: sums of non-negative terms of exact
  inputs; the floor is the value itself (plain relative error).
* attention rows: mean_j max(a_s,j^2, a_t,j^2), the larger of the terms that cancel in (a_s - a_t)^2,
  because a_s and a_t are computed (powers and normalisation), not inputs.
* losses, soft/hard terms and perSample use the same reduction of the row floors as the value.
* gradients: one floor per row, the max over the row of the sum of magnitudes of the terms that make
  up each element (e.g. KD: alpha T / n (p_s + p_t) + (1 - alpha) / n |hard terms|), which is at least
  the max-abs of the reference gradient row; for feature gradients (no cancellation) it is that
  max-abs.
"""

import argparse
import base64
import json
import math
import os
import sys
import zlib

import numpy as np
import torch
import torch.nn.functional as F

FORMAT = 1
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, 'test', 'fixtures')

torch.set_num_threads(1)
torch.set_default_dtype(torch.float64)

# ----------------------------------------------------------------------------------------------------
# Encoding


def enc(arr, dtype):
    """A numpy array as {"dtype", "shape", "b64"} of little-endian bytes."""
    np_dtype = {'float64': '<f8', 'float32': '<f4', 'int32': '<i4', 'uint32': '<u4', 'uint8': 'u1'}[dtype]
    a = np.ascontiguousarray(np.asarray(arr), dtype=np_dtype)
    return {'dtype': dtype, 'shape': list(a.shape), 'b64': base64.b64encode(a.tobytes()).decode('ascii')}


def num(x):
    """A Python float for JSON (repr round-trips float64 exactly through JSON.parse)."""
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f'non-finite reference value {x}')
    return x


def rounded(x, dtype):
    """The values the library sees: float32 cases round to float32 first. Returns float64."""
    x = np.asarray(x, dtype=np.float64)
    return x.astype(np.float32).astype(np.float64) if dtype == 'float32' else x


def matrix(x, dtype):
    x = np.asarray(x, dtype=np.float64)
    return {'rows': int(x.shape[0]), 'cols': int(x.shape[1]), 'data': enc(x.reshape(-1), dtype)}


def rng_for(case_id):
    return np.random.default_rng(zlib.crc32(case_id.encode()))


def fmt(x):
    return f'{x:g}'


# ----------------------------------------------------------------------------------------------------
# Knowledge distillation and hard losses


def smoothed_targets(y, ls, C):
    return (1.0 - ls) * y + ls / C


def hard_rows(s, spec, y, idx, C):
    """Per-row hard loss of student tensor s (autograd-able) and its floor / gradient-term helpers.

    y: dense float64 target rows (one-hot for class indices, zero rows for ignored ones).
    idx: int64 class indices (or None for matrix targets).
    """
    kind = spec['kind']
    if kind == 'ce' and spec['fromLogits']:
        ls = spec['labelSmoothing']
        if idx is not None:
            rows = F.cross_entropy(s, torch.tensor(idx, dtype=torch.int64), reduction='none',
                                   label_smoothing=ls, ignore_index=spec['ignoreIndex'])
        else:
            rows = F.cross_entropy(s, torch.tensor(y), reduction='none', label_smoothing=ls)
        # Cross-check PyTorch against the formula the library documents: -sum(y' log_softmax(s)).
        yp = smoothed_targets(torch.tensor(y), ls, C)
        if idx is not None:
            yp = yp * torch.tensor((idx != spec['ignoreIndex']).astype(np.float64))[:, None]
        manual = -(yp * F.log_softmax(s, 1)).sum(1)
        assert torch.allclose(rows, manual, rtol=1e-13, atol=1e-300), (rows, manual)
        return rows
    if kind == 'ce':
        ls, eps = spec['labelSmoothing'], spec['epsilon']
        yp = smoothed_targets(torch.tensor(y), ls, C)
        if idx is not None:
            yp = yp * torch.tensor((idx != spec['ignoreIndex']).astype(np.float64))[:, None]
        return -(yp * torch.log(torch.clamp(s, eps, 1.0 - eps))).sum(1)
    assert kind == 'mse'
    return ((s - torch.tensor(y)) ** 2).sum(1) / C


def dense_targets(targets, R, C, spec):
    """(y dense float64, idx int64 or None) from a targets description."""
    if targets['form'] == 'matrix':
        return targets['values'], None
    idx = np.asarray(targets['values'], dtype=np.int64)
    y = np.zeros((R, C))
    for r in range(R):
        if 0 <= idx[r] < C:
            y[r, idx[r]] = 1.0
    return y, idx


def kept_rows(R, mask, idx, spec):
    keep = np.ones(R, dtype=bool)
    if mask is not None:
        keep &= np.asarray(mask) != 0
    if idx is not None and spec['kind'] == 'ce':
        keep &= idx != spec['ignoreIndex']
    return keep


def hard_floor_rows(s, spec, y, idx, keep, C):
    """Row floors of the hard loss (see the module docstring) and the per-element magnitude of the
    hard gradient's terms, for rows r (unscaled)."""
    kind = spec['kind']
    R = s.shape[0]
    yp = smoothed_targets(y, spec.get('labelSmoothing', 0.0), C) if kind == 'ce' else y
    if idx is not None and kind == 'ce':
        yp = yp * (idx != spec['ignoreIndex'])[:, None]
    if kind == 'ce' and spec['fromLogits']:
        d = s - s.max(1, keepdims=True)
        lz = np.log(np.exp(d).sum(1))
        floor = (yp * (np.abs(d) + np.maximum(lz, 1.0)[:, None])).sum(1)
        p1 = np.exp(d - lz[:, None])
        gterm = yp.sum(1, keepdims=True) * p1 + yp
    elif kind == 'ce':
        eps = spec['epsilon']
        c = np.clip(s, eps, 1.0 - eps)
        floor = (yp * np.abs(np.log(c))).sum(1)
        inside = (s >= eps) & (s <= 1.0 - eps)
        gterm = np.where(inside, yp / np.where(inside, s, 1.0), 0.0)
    else:
        floor = ((s - y) ** 2).sum(1) / C
        gterm = 2.0 * np.abs(s - y) / C
    return floor * keep, gterm * keep[:, None]


def kd_reference(s, t, T, alpha, spec, targets, mask, reduction):
    R, C = s.shape
    y, idx = dense_targets(targets, R, C, spec)
    keep = kept_rows(R, mask, idx, spec)
    kept = int(keep.sum())
    scale = 1.0 if reduction == 'sum' else (1.0 / kept if kept > 0 else 0.0)
    keep_t = torch.tensor(keep.astype(np.float64))

    st = torch.tensor(s, requires_grad=True)
    tt = torch.tensor(t)
    log_ps = F.log_softmax(st / T, 1)
    log_pt = F.log_softmax(tt / T, 1)
    kl = F.kl_div(log_ps, log_pt, log_target=True, reduction='none').sum(1)
    manual_kl = (log_pt.exp() * (log_pt - log_ps)).sum(1)
    assert torch.allclose(kl, manual_kl, rtol=1e-12, atol=1e-14 * float(C)), (kl, manual_kl)
    hr = hard_rows(st, spec, y, idx, C)  # reported unweighted even when alpha == 1
    soft_sum = (kl * keep_t).sum()
    hard_sum = (hr * keep_t).sum()
    soft = scale * soft_sum
    hard = scale * hard_sum
    loss = alpha * T * T * soft + (1.0 - alpha) * hard
    if kept > 0:
        loss.backward()
    grad = st.grad.numpy().copy() if st.grad is not None else np.zeros_like(s)
    per_sample = (alpha * T * T * kl + (1.0 - alpha) * hr).detach().numpy() * keep

    # Floors.
    a = (t - t.max(1, keepdims=True)) / T
    b = (s - s.max(1, keepdims=True)) / T
    lzs = np.log(np.exp(b).sum(1))
    lzt = np.log(np.exp(a).sum(1))
    pt = np.exp(a - lzt[:, None])
    ps = np.exp(b - lzs[:, None])
    soft_floor_rows = ((pt * (np.abs(a) + np.abs(b))).sum(1) + np.maximum(lzs, 1.0) + np.maximum(lzt, 1.0)) * keep
    hard_floor, hard_gterm = hard_floor_rows(s, spec, y, idx, keep, C)
    loss_floor_rows = alpha * T * T * soft_floor_rows + (1.0 - alpha) * hard_floor
    gterms = alpha * T * scale * (ps + pt) * keep[:, None] + (1.0 - alpha) * scale * hard_gterm
    grad_floor = np.maximum(gterms.max(1), np.abs(grad).max(1))

    expected = {
        'loss': num(loss.item()),
        'soft': num(soft.item()),
        'hard': num(hard.item()),
        'grad': enc(grad.reshape(-1), 'float64'),
    }
    floors = {
        'loss': num(scale * loss_floor_rows.sum()),
        'soft': num(scale * soft_floor_rows.sum()),
        'hard': num(scale * hard_floor.sum()),
        'gradRows': enc(grad_floor, 'float64'),
    }
    if reduction == 'none':
        expected['perSample'] = enc(per_sample, 'float64')
        floors['perSample'] = enc(loss_floor_rows, 'float64')
    return expected, floors


def hard_reference(s, spec, targets):
    """CrossEntropyLoss / MseLoss compute() and gradient(): the mean over kept rows."""
    R, C = s.shape
    y, idx = dense_targets(targets, R, C, spec)
    keep = kept_rows(R, None, idx, spec)
    kept = int(keep.sum())
    scale = 1.0 / kept if kept > 0 else 0.0
    st = torch.tensor(s, requires_grad=True)
    hr = hard_rows(st, spec, y, idx, C)
    loss = scale * (hr * torch.tensor(keep.astype(np.float64))).sum()
    if kept > 0:
        loss.backward()
    grad = st.grad.numpy().copy() if st.grad is not None else np.zeros_like(s)
    floor, gterm = hard_floor_rows(s, spec, y, idx, keep, C)
    grad_floor = np.maximum(scale * gterm.max(1), np.abs(grad).max(1))
    expected = {'loss': num(loss.item()), 'grad': enc(grad.reshape(-1), 'float64')}
    floors = {'loss': num(scale * floor.sum()), 'gradRows': enc(grad_floor, 'float64')}
    return expected, floors


# ----------------------------------------------------------------------------------------------------
# Feature and attention


def feature_reference(ss, ts, weights, p, reduction):
    R = ss[0].shape[0]
    row_scale = 1.0 if reduction == 'sum' else 1.0 / R
    s_t = [torch.tensor(s, requires_grad=True) for s in ss]
    row_means = []
    for s, t in zip(s_t, ts):
        d = (s - torch.tensor(t)).abs()
        row_means.append((d if p == 1 else d ** 2).mean(1))
    per_layer = [row_scale * m.sum() for m in row_means]
    loss = sum(w * pl for w, pl in zip(weights, per_layer))
    loss.backward()
    per_sample = sum(w * m for w, m in zip(weights, row_means)).detach().numpy()
    grads = [s.grad.numpy().copy() for s in s_t]
    expected = {
        'loss': num(loss.item()),
        'perLayer': [num(pl.item()) for pl in per_layer],
        'grads': [enc(g.reshape(-1), 'float64') for g in grads],
    }
    # Sums of non-negative terms of exact differences: the floor is the value itself; gradients have
    # no cancellation either (their floor is the row's max-abs).
    floors = {
        'loss': expected['loss'],
        'perLayer': expected['perLayer'],
        'gradRows': [enc(np.abs(g).max(1), 'float64') for g in grads],
    }
    if reduction == 'none':
        expected['perSample'] = enc(per_sample, 'float64')
        floors['perSample'] = enc(per_sample, 'float64')
    return expected, floors


def attention_maps(x, beta):
    pw = x.abs().pow(beta)
    sm = pw.sum(1, keepdim=True)
    return pw / torch.where(sm > 1e-8, sm, torch.ones_like(sm)), sm.squeeze(1)


def attention_reference(s, t, beta, reduction):
    R, C = s.shape
    st = torch.tensor(s, requires_grad=True)
    a_s, sum_s = attention_maps(st, beta)
    a_t, _ = attention_maps(torch.tensor(t), beta)
    row = ((a_s - a_t) ** 2).mean(1)
    loss = row.sum() if reduction == 'sum' else row.mean()
    loss.backward()
    grad = st.grad.numpy().copy()
    # The library defines the gradient at x == 0 as 0 for every beta (PyTorch: nan for beta < 1).
    grad = np.where(s == 0, 0.0, grad)
    assert np.all(np.isfinite(grad)), 'attention reference gradient not finite'

    As, At = a_s.detach().numpy(), a_t.detach().numpy()
    row_floor = np.maximum(As ** 2, At ** 2).mean(1)
    red = (lambda v: v.sum()) if reduction == 'sum' else (lambda v: v.mean())
    gscale = 1.0 / C if reduction == 'sum' else 1.0 / (R * C)
    norm = sum_s.detach().numpy() > 1e-8
    ns = np.where(norm, 1.0 / np.where(norm, sum_s.detach().numpy(), 1.0), 1.0)
    ax = np.abs(s)
    with np.errstate(divide='ignore', invalid='ignore'):
        dpow = np.where(ax > 0, beta * np.power(np.where(ax > 0, ax, 1.0), beta - 1.0), 0.0)
    sub = np.where(norm, 2.0 * (np.abs(As - At) * As).sum(1), 0.0)
    gterm = gscale * dpow * ns[:, None] * (2.0 * As + 2.0 * At + sub[:, None])
    grad_floor = np.maximum(gterm.max(1), np.abs(grad).max(1))
    expected = {'loss': num(loss.item()), 'grad': enc(grad.reshape(-1), 'float64')}
    floors = {'loss': num(red(row_floor)), 'gradRows': enc(grad_floor, 'float64')}
    if reduction == 'none':
        expected['perSample'] = enc(row.detach().numpy(), 'float64')
        floors['perSample'] = enc(row_floor, 'float64')
    return expected, floors


# ----------------------------------------------------------------------------------------------------
# Case definitions

DTYPES = ('float64', 'float32')
SEED_S = [[1.0, 2.0, 0.5], [0.5, 1.0, 2.0]]
SEED_T = [[1.2, 1.8, 0.6], [0.6, 1.1, 1.9]]
SEED_Y = [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]


def ce(from_logits=True, ls=0.0, ignore_index=-100, eps=1e-10):
    spec = {'kind': 'ce', 'fromLogits': from_logits, 'labelSmoothing': ls, 'ignoreIndex': ignore_index,
            'epsilon': eps}
    return spec


def mse():
    return {'kind': 'mse'}


def hard_name(spec):
    if spec['kind'] == 'mse':
        return 'MSE'
    name = 'CE from logits' if spec['fromLogits'] else 'CE from probabilities'
    if spec['labelSmoothing']:
        name += f", label smoothing {fmt(spec['labelSmoothing'])}"
    return name


def hard_config(spec):
    """The constructor arguments the test passes to CrossEntropyLoss / MseLoss."""
    if spec['kind'] == 'mse':
        return {'type': 'MseLoss'}
    opts = {}
    if not spec['fromLogits']:
        opts['fromLogits'] = False
    if spec['labelSmoothing']:
        opts['labelSmoothing'] = spec['labelSmoothing']
    if spec['ignoreIndex'] != -100:
        opts['ignoreIndex'] = spec['ignoreIndex']
    if spec['epsilon'] != 1e-10:
        opts['epsilon'] = spec['epsilon']
    return {'type': 'CrossEntropyLoss', 'options': opts}


def softmax_np(x):
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def make_probs(rng, R, C, targets=None):
    """Student probabilities for CE from probabilities, with one value per row in a clamp region
    (0, negative, > 1, below epsilon) when C >= 4, never at a row's class-index / one-hot target
    column, and no value exactly 1.0 unless C == 1. The upper clamp bound is pinned by dedicated cases
    (the seed's example, 1x1, 'clamp bounds'): in float32, 1 - 1e-10 rounds to 1.0, so s >= 1 at a
    one-hot target leaves a row loss of only -ln(1 - 1e-10) = 1e-10, and s == 1.0 is the one float32
    value whose side of the bound depends on the precision the bound is compared in."""
    p = softmax_np(rng.normal(0.0, 1.5, (R, C)))
    cls = target_classes(targets, R)
    if C >= 4:
        for r in range(R):
            j = rng.integers(C)
            if j == cls[r]:
                j = (j + 1) % C
            p[r, j] = [0.0, -0.25, 1.5, 2e-11][r % 4]
    return p


def target_classes(targets, R):
    """Each row's class (index or one-hot column), or -1."""
    if targets is None:
        return [-1] * R
    v = np.asarray(targets['values'])
    if targets['form'] != 'matrix':
        return [int(c) for c in v]
    return [int(np.argmax(row)) if np.all((row == 0) | (row == 1)) and row.sum() == 1 else -1 for row in v]


def make_targets(rng, form, R, C, spec, ignore_rows=()):
    """Targets description: form is 'onehot', 'probs', 'int32', 'uint32' or 'array'."""
    if form in ('onehot', 'probs'):
        if form == 'onehot':
            y = np.zeros((R, C))
            y[np.arange(R), rng.integers(0, C, R)] = 1.0
        else:
            y = softmax_np(rng.normal(0.0, 2.0, (R, C)))
        return {'form': 'matrix', 'values': y}
    idx = rng.integers(0, C, R).astype(np.int64)
    for r in ignore_rows:
        idx[r] = spec['ignoreIndex']
    return {'form': form, 'values': idx}


def targets_json(targets, dtype):
    form = targets['form']
    if form == 'matrix':
        return {'form': 'matrix', 'data': matrix(targets['values'], dtype)}
    if form == 'array':
        return {'form': 'array', 'values': [int(v) for v in targets['values']]}
    return {'form': form, 'data': enc(targets['values'], form)}


def targets_name(targets, ignore_rows, spec):
    form = targets['form']
    if form == 'matrix':
        y = targets['values']
        onehot = np.all((y == 0) | (y == 1)) and np.all(y.sum(1) == 1)
        name = 'one-hot matrix targets' if onehot else 'probability matrix targets'
    else:
        name = {'int32': 'Int32Array', 'uint32': 'Uint32Array', 'array': 'number[]'}[form] + ' class indices'
    if ignore_rows:
        name += f" with ignoreIndex {spec['ignoreIndex']} rows"
    return name


def round_targets(targets, dtype):
    if targets['form'] == 'matrix':
        return {'form': 'matrix', 'values': rounded(targets['values'], dtype)}
    return targets


def kd_case(cid, dtype, s, t, T, alpha, spec, targets, *, reduction='mean', grad=True, mask=None,
            ignore_rows=(), form='typed', grad_out=False, note=''):
    s = rounded(s, dtype)
    t = rounded(t, dtype)
    targets = round_targets(targets, dtype)
    R, C = s.shape
    red_opt = reduction if reduction != 'default' else None
    red = reduction if reduction != 'default' else 'mean'
    expected, floors = kd_reference(s, t, T, alpha, spec, targets, mask, red)
    title = f'{dtype} KD with {hard_name(spec)}, {targets_name(targets, ignore_rows, spec)}, {R}x{C}, T={fmt(T)}, alpha={fmt(alpha)}'
    if mask is not None:
        title += ', mask [' + ','.join(str(int(m)) for m in mask) + ']'
    title += f", reduction '{red}'" if red_opt else ', default reduction'
    if grad_out:
        title += ', gradOut'
    elif grad:
        title += ', grad'
    if form == 'nested':
        title += ', number[][] inputs'
    if note:
        title += f' ({note})'
    options = {}
    if red_opt:
        options['reduction'] = red_opt
    if grad and not grad_out:
        options['grad'] = True
    case = {
        'id': f'{cid}-{dtype}',
        'title': title,
        'dtype': dtype,
        'form': form,
        'temperature': T,
        'alpha': alpha,
        'hardLoss': hard_config(spec),
        'student': matrix(s, dtype),
        'teacher': matrix(t, dtype),
        'targets': targets_json(targets, dtype),
        'options': options,
        'gradOut': grad_out,
        'expected': expected,
        'floors': floors,
    }
    if mask is not None:
        case['mask'] = enc(np.asarray(mask, dtype=np.uint8), 'uint8')
    if not (grad or grad_out):
        del expected['grad'], floors['gradRows']
    return case


def kd_cases():
    cases = []

    def add(cid, build):
        for dtype in DTYPES:
            rng = rng_for(cid)
            out = build(rng, dtype)
            if out is not None:
                cases.append(out)

    # The seed's own example (shared/seed/distillation.rs test_distillation_compute), every hard loss.
    s, t, y = np.array(SEED_S), np.array(SEED_T), np.array(SEED_Y)
    onehot = {'form': 'matrix', 'values': y}
    add('seed-default', lambda rng, d: kd_case('seed-default', d, s, t, 2.0, 0.5, ce(), onehot,
                                                reduction='default', grad=False, note="the seed's example"))
    add('seed-nested', lambda rng, d: kd_case('seed-nested', d, s, t, 2.0, 0.5, ce(), onehot, grad=True,
                                               form='nested', note="the seed's example")
        if d == 'float64' else None)
    for red in ('mean', 'sum', 'none'):
        add(f'seed-logits-{red}', lambda rng, d, red=red: kd_case(
            f'seed-logits-{red}', d, s, t, 2.0, 0.5, ce(), onehot, reduction=red, note="the seed's example"))
    add('seed-probs', lambda rng, d: kd_case('seed-probs', d, s, t, 2.0, 0.5, ce(from_logits=False), onehot,
                                              note="the seed's example, its probability-clamp cross-entropy"))
    add('seed-mse', lambda rng, d: kd_case('seed-mse', d, s, t, 2.0, 0.5, mse(), onehot, reduction='sum',
                                            note="the seed's example"))
    add('seed-idx', lambda rng, d: kd_case('seed-idx', d, s, t, 2.0, 0.5, ce(),
                                            {'form': 'int32', 'values': np.array([1, 2])},
                                            note="the seed's example as class indices"))

    # Awkward widths: no multiple of any vector width, and thousands of columns.
    shapes = [(1, 1), (1, 3), (2, 7), (3, 15), (4, 17), (2, 31), (3, 33), (2, 63), (2, 65), (5, 8),
              (2, 5000), (3, 4099)]
    variants = [
        (ce(), 'int32', 'mean', 4.0, 0.7),
        (ce(ls=0.1), 'probs', 'none', 2.0, 0.5),
        (mse(), 'onehot', 'sum', 3.0, 0.25),
        (ce(from_logits=False), 'int32', 'mean', 1.0, 0.6),
    ]
    for R, C in shapes:
        big = C > 1000
        for vi, (spec, form, red, T, alpha) in enumerate(variants):
            if big and vi in (2, 3):
                continue  # keep the fixture files small: two variants at thousands of columns
            cid = f'shape-{R}x{C}-v{vi}'

            def build(rng, d, R=R, C=C, spec=spec, form=form, red=red, T=T, alpha=alpha, cid=cid):
                s = rng.normal(0.0, 2.0, (R, C))
                t = s + rng.normal(0.0, 1.0, (R, C))
                targets = make_targets(rng, form, R, C, spec)
                if spec['kind'] == 'ce' and not spec['fromLogits']:
                    s = make_probs(rng, R, C, targets)
                return kd_case(cid, d, s, t, T, alpha, spec, targets, reduction=red)
            add(cid, build)

    # Large logits and extreme temperatures.
    for sigma, T in [(1e4, 0.05), (1e4, 1.0), (1e4, 100.0), (100.0, 0.05), (1.0, 0.05), (1.0, 100.0),
                     (30.0, 100.0), (3.0, 0.05)]:
        for vi, (spec, form, red) in enumerate([(ce(), 'int32', 'mean'), (ce(ls=0.2), 'probs', 'none')]):
            cid = f'extreme-{sigma:g}-{T:g}-v{vi}'

            def build(rng, d, sigma=sigma, T=T, spec=spec, form=form, red=red, cid=cid):
                R, C = 4, 33
                s = rng.normal(0.0, sigma, (R, C))
                t = rng.normal(0.0, sigma, (R, C))
                t[0] = s[0] + rng.normal(0.0, sigma * 1e-3, C)  # one row with a teacher close to the student
                targets = make_targets(rng, form, R, C, spec)
                return kd_case(cid, d, s, t, T, 0.8, spec, targets, reduction=red,
                               note=f'logits sigma {sigma:g}')
            add(cid, build)
    # Thousands of columns at the extreme temperatures.
    for T in (0.05, 100.0):
        cid = f'extreme-wide-{T:g}'

        def build(rng, d, T=T, cid=cid):
            R, C = 2, 2053
            s = rng.normal(0.0, 5.0, (R, C))
            t = rng.normal(0.0, 5.0, (R, C))
            return kd_case(cid, d, s, t, T, 0.9, ce(), make_targets(rng, 'int32', R, C, ce()), reduction='sum',
                           note='logits sigma 5')
        add(cid, build)

    # Every hard loss and target form, with and without label smoothing, every reduction.
    specs = [ce(), ce(ls=0.1), ce(from_logits=False), ce(from_logits=False, ls=0.3), mse()]
    forms = ['onehot', 'probs', 'int32', 'uint32', 'array']
    reds = ['mean', 'sum', 'none']
    k = 0
    for si, spec in enumerate(specs):
        for form in forms:
            red = reds[k % 3]
            k += 1
            ignore = form in ('int32', 'uint32') and spec['kind'] == 'ce'
            sp = dict(spec)
            if form == 'uint32' and sp['kind'] == 'ce':
                sp['ignoreIndex'] = 255
            cid = f'targets-{si}-{form}'

            def build(rng, d, sp=sp, form=form, red=red, ignore=ignore, cid=cid):
                R, C = 6, 11
                s = rng.normal(0.0, 2.0, (R, C))
                t = rng.normal(0.0, 2.0, (R, C))
                ignore_rows = (1, 4) if ignore else ()
                targets = make_targets(rng, form, R, C, sp, ignore_rows)
                if sp['kind'] == 'ce' and not sp['fromLogits']:
                    s = make_probs(rng, R, C, targets)
                return kd_case(cid, d, s, t, 3.0, 0.4, sp, targets, reduction=red, ignore_rows=ignore_rows)
            add(cid, build)

    # Masks: some rows, combined with ignoreIndex rows, every row; every reduction.
    for red in reds:
        for mi, (mask, ignore_rows, form) in enumerate([
            ([1, 0, 1, 1, 0], (), 'onehot'),
            ([1, 2, 0, 255, 1], (0,), 'int32'),
            ([0, 0, 0, 0, 0], (), 'probs'),
            ([1, 1, 0, 1, 1], (0, 1, 3, 4), 'int32'),  # every row left out by mask or ignoreIndex
            ([1, 1, 1, 1, 1], (), 'int32'),
        ]):
            for spec in (ce(ls=0.1), mse()) if mi < 2 else (ce(),):
                if spec['kind'] == 'mse' and ignore_rows:
                    continue
                cid = f'mask-{red}-{mi}-{spec["kind"]}'

                def build(rng, d, mask=mask, ignore_rows=ignore_rows, form=form, spec=spec, red=red, cid=cid):
                    R, C = 5, 9
                    s = rng.normal(0.0, 2.0, (R, C))
                    t = rng.normal(0.0, 2.0, (R, C))
                    targets = make_targets(rng, form, R, C, spec, ignore_rows)
                    return kd_case(cid, d, s, t, 2.5, 0.6, spec, targets, reduction=red, mask=mask,
                                   ignore_rows=ignore_rows)
                add(cid, build)

    # alpha at its ends, gradOut, and no gradient requested.
    for alpha in (0.0, 1.0):
        for spec in (ce(), mse()):
            cid = f'alpha-{alpha:g}-{spec["kind"]}'

            def build(rng, d, alpha=alpha, spec=spec, cid=cid):
                R, C = 3, 10
                s = rng.normal(0.0, 2.0, (R, C))
                t = rng.normal(0.0, 2.0, (R, C))
                return kd_case(cid, d, s, t, 2.0, alpha, spec, make_targets(rng, 'int32', R, C, spec))
            add(cid, build)
    cid = 'gradout'
    add(cid, lambda rng, d: kd_case(cid, d, rng.normal(0, 2, (3, 19)), rng.normal(0, 2, (3, 19)), 2.0, 0.5,
                                    ce(ls=0.05), make_targets(rng, 'probs', 3, 19, ce()), reduction='sum',
                                    grad_out=True))
    cid = 'nograd'
    add(cid, lambda rng, d: kd_case(cid, d, rng.normal(0, 2, (3, 19)), rng.normal(0, 2, (3, 19)), 2.0, 0.5,
                                    ce(), make_targets(rng, 'int32', 3, 19, ce()), reduction='none', grad=False))

    # Near-zero losses: a confident, correct student (CE ~ 1e-9 must still be resolved to its floor)
    # and near-one-hot probabilities under MSE with class indices.
    cid = 'confident'

    def build_confident(rng, d):
        R, C = 3, 12
        idx = rng.integers(0, C, R)
        s = rng.normal(0.0, 1.0, (R, C))
        s[np.arange(R), idx] = 25.0
        t = s + rng.normal(0.0, 0.01, (R, C))
        return kd_case(cid, d, s, t, 1.0, 0.5, ce(), {'form': 'int32', 'values': idx}, reduction='none',
                       note='confident correct student')
    add(cid, build_confident)
    cid = 'mse-near-onehot'

    def build_near(rng, d):
        R, C = 4, 10
        idx = rng.integers(0, C, R)
        s = np.abs(rng.normal(0.0, 1e-4, (R, C)))
        s[np.arange(R), idx] = 1.0 - np.abs(rng.normal(0.0, 1e-3, R))
        t = rng.normal(0.0, 1.0, (R, C))
        return kd_case(cid, d, s, t, 2.0, 0.5, mse(), {'form': 'int32', 'values': idx},
                       note='student probabilities close to the one-hot targets')
    add(cid, build_near)
    return cases


def hard_cases():
    cases = []
    for si, spec in enumerate([ce(), ce(ls=0.2), ce(from_logits=False), ce(from_logits=False, ls=0.1),
                               ce(from_logits=False, eps=1e-3), mse()]):
        for form, (R, C) in [('int32', (5, 7)), ('probs', (3, 17)), ('onehot', (2, 33)), ('uint32', (4, 65)),
                             ('int32', (1, 1))]:
            for dtype in DTYPES:
                cid = f'hard-{si}-{form}-{R}x{C}'
                rng = rng_for(cid)
                sp = dict(spec)
                if form == 'uint32' and sp['kind'] == 'ce':
                    sp['ignoreIndex'] = 255
                ignore_rows = (0, 2) if form in ('int32', 'uint32') and sp['kind'] == 'ce' and R > 1 else ()
                s = rng.normal(0.0, 2.0, (R, C))
                targets = round_targets(make_targets(rng, form, R, C, sp, ignore_rows), dtype)
                if sp['kind'] == 'ce' and not sp['fromLogits']:
                    s = make_probs(rng, R, C, targets)
                    if sp['epsilon'] != 1e-10 and C > 1:
                        s[-1, 0] = 5e-4  # inside the wider clamp's lower region
                s = rounded(s, dtype)
                expected, floors = hard_reference(s, sp, targets)
                title = f'{dtype} {hard_config(sp)["type"]} ({hard_name(sp)}'
                if sp['kind'] == 'ce' and sp['epsilon'] != 1e-10:
                    title += f", epsilon {fmt(sp['epsilon'])}"
                title += f') compute and gradient, {targets_name(targets, ignore_rows, sp)}, {R}x{C}'
                cases.append({
                    'id': f'{cid}-{dtype}',
                    'title': title,
                    'dtype': dtype,
                    'hardLoss': hard_config(sp),
                    'predictions': matrix(s, dtype),
                    'targets': targets_json(targets, dtype),
                    'expected': expected,
                    'floors': floors,
                })
    # Probabilities at and beyond the clamp bounds: exactly 0, eps, 1 and 1.5, with one-hot targets and
    # no smoothing, so rows whose loss is only the clamp's -ln(1 - eps) = 1e-10 are resolved.
    for dtype in DTYPES:
        cid = 'hard-clamp-bounds'
        s = np.array([[1.0, 0.0, 0.0, 0.0], [0.5, 1.0, 0.25, 1e-10], [1.5, 0.0, -1.0, 0.0], [0.3, 0.2, 0.5, 1e-10]])
        s = rounded(s, dtype)
        targets = {'form': 'int32', 'values': np.array([0, 1, 0, 3])}
        expected, floors = hard_reference(s, ce(from_logits=False), targets)
        cases.append({
            'id': f'{cid}-{dtype}',
            'title': f'{dtype} CrossEntropyLoss (CE from probabilities) compute and gradient at the clamp bounds '
                     '(probabilities 0, 1e-10, 1 and 1.5 at the targets), 4x4',
            'dtype': dtype, 'hardLoss': hard_config(ce(from_logits=False)), 'predictions': matrix(s, dtype),
            'targets': targets_json(targets, dtype), 'expected': expected, 'floors': floors,
        })
    # Every row ignored: compute() is 0 and the gradient zeros.
    for dtype in DTYPES:
        cid = 'hard-all-ignored'
        rng = rng_for(cid)
        s = rounded(rng.normal(0.0, 1.0, (3, 5)), dtype)
        targets = {'form': 'int32', 'values': np.array([-100, -100, -100])}
        expected, floors = hard_reference(s, ce(), targets)
        cases.append({
            'id': f'{cid}-{dtype}', 'title': f'{dtype} CrossEntropyLoss compute and gradient with every row ignored, 3x5',
            'dtype': dtype, 'hardLoss': hard_config(ce()), 'predictions': matrix(s, dtype),
            'targets': targets_json(targets, dtype), 'expected': expected, 'floors': floors,
        })
    return cases


def feature_case(cid, dtype, ss, ts, weights, p, reduction, note=''):
    ss = [rounded(s, dtype) for s in ss]
    ts = [rounded(t, dtype) for t in ts]
    expected, floors = feature_reference(ss, ts, weights, p, reduction)
    widths = ', '.join(f'{s.shape[0]}x{s.shape[1]}' for s in ss)
    title = (f'{dtype} feature distillation, {len(ss)} layer{"s" if len(ss) > 1 else ""} ({widths}), p={p}, '
             f"weights [{', '.join(fmt(w) for w in weights)}], reduction '{reduction}', grads")
    if note:
        title += f' ({note})'
    return {
        'id': f'{cid}-{dtype}', 'title': title, 'dtype': dtype, 'layerWeights': weights, 'pNorm': p,
        'students': [matrix(s, dtype) for s in ss], 'teachers': [matrix(t, dtype) for t in ts],
        'options': {'reduction': reduction, 'grad': True}, 'expected': expected, 'floors': floors,
    }


def feature_cases():
    cases = []
    seed_s = [np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[0.5, 1.5], [2.5, 3.5]]), np.array([[0.1, 0.2], [0.3, 0.4]])]
    seed_t = [np.array([[1.1, 2.1], [3.1, 4.1]]), np.array([[0.6, 1.6], [2.6, 3.6]]), np.array([[0.2, 0.3], [0.4, 0.5]])]
    specs = [
        ('seed-p2', None, [0.5, 0.3, 0.2], 2, 'mean', "the seed's example"),
        ('seed-p1', None, [0.5, 0.3, 0.2], 1, 'none', "the seed's example"),
        ('one-1x1-p1', [(1, 1)], [1.0], 1, 'mean', ''),
        ('one-1x1-p2', [(1, 1)], [2.5], 2, 'sum', ''),
        ('one-3x7', [(3, 7)], [0.7], 2, 'none', ''),
        ('two-p1', [(4, 3), (4, 33)], [1.0, 0.25], 1, 'mean', 'some elements equal'),
        ('two-p2', [(4, 15), (4, 63)], [0.3, 1.7], 2, 'sum', ''),
        ('three-p2', [(3, 1), (3, 17), (3, 65)], [0.5, 0.0, 2.0], 2, 'none', ''),
        ('three-p1', [(5, 31), (5, 8), (5, 3)], [1.0, 1.0, 1.0], 1, 'sum', ''),
        ('wide-p1', [(2, 5000)], [1.0], 1, 'mean', ''),
        ('wide-p2', [(3, 4099), (3, 7)], [0.5, 0.5], 2, 'none', ''),
        ('large-p2', [(2, 65)], [1e-3], 2, 'mean', 'features sigma 1e4'),
    ]
    for cid, shapes, weights, p, red, note in specs:
        for dtype in DTYPES:
            rng = rng_for(cid)
            if shapes is None:
                ss, ts = seed_s, seed_t
            else:
                sigma = 1e4 if cid.startswith('large') else 1.0
                ss = [rng.normal(0.0, sigma, sh) for sh in shapes]
                ts = [s + rng.normal(0.0, 0.5 * sigma, s.shape) for s in ss]
                if 'equal' in note:
                    for s, t in zip(ss, ts):
                        s.flat[::3] = t.flat[::3]  # |s - t| = 0: p=1 gradient 0 there
            cases.append(feature_case(cid, dtype, ss, ts, weights, p, red, note))
    return cases


def attention_case(cid, dtype, s, t, beta, reduction, note=''):
    s = rounded(s, dtype)
    t = rounded(t, dtype)
    expected, floors = attention_reference(s, t, beta, reduction)
    R, C = s.shape
    title = f"{dtype} attention transfer, beta={fmt(beta)}, {R}x{C}, reduction '{reduction}', grad"
    if note:
        title += f' ({note})'
    return {
        'id': f'{cid}-{dtype}', 'title': title, 'dtype': dtype, 'beta': beta,
        'student': matrix(s, dtype), 'teacher': matrix(t, dtype),
        'options': {'reduction': reduction, 'grad': True}, 'expected': expected, 'floors': floors,
    }


def attention_cases():
    cases = []
    for dtype in DTYPES:
        cases.append(attention_case('seed', dtype, np.array([[0.3, 0.5, 0.2], [0.4, 0.4, 0.2]]),
                                    np.array([[0.35, 0.45, 0.2], [0.35, 0.45, 0.2]]), 2.0, 'mean',
                                    "the seed's example"))
    specs = [
        # (id, beta, shape, reduction, special rows)
        ('b2-1x1', 2.0, (1, 1), 'mean', ''),
        ('b2-zero', 2.0, (3, 33), 'none', 'zero'),
        ('b2-tiny', 2.0, (4, 65), 'sum', 'tiny'),
        ('b2-wide', 2.0, (3, 4099), 'mean', ''),
        ('b1-zero', 1.0, (3, 17), 'none', 'zero'),
        ('b1-tiny', 1.0, (4, 7), 'mean', 'tiny'),
        ('b05-zero', 0.5, (3, 31), 'sum', 'zero'),
        ('b05-wide', 0.5, (2, 5000), 'none', 'zeros'),
        ('b3-zero', 3.0, (2, 63), 'mean', 'zero'),
        ('b3-tiny', 3.0, (4, 15), 'none', 'tiny'),
        ('b15', 1.5, (2, 3), 'sum', 'zeros'),
        ('b2-large', 2.0, (2, 65), 'mean', 'large'),
    ]
    for cid, beta, (R, C), red, special in specs:
        for dtype in DTYPES:
            rng = rng_for(cid)
            sigma = 1e4 if special == 'large' else 1.0
            s = rng.normal(0.0, sigma, (R, C))
            t = s + rng.normal(0.0, 0.3 * sigma, (R, C))
            note = ''
            if special == 'zero':
                s[1] = 0.0  # student row of zeros: sum <= 1e-8, left unnormalised; gradient 0
                t[R - 1] = 0.0  # teacher row of zeros
                note = 'a student row and a teacher row of zeros'
            elif special == 'tiny':
                # Non-zero rows whose |x|^beta sums stay below 1e-8 (by a factor >= 10): unnormalised.
                level = (1e-9 / C) ** (1.0 / beta)  # each |x|^beta <= 1e-9 / C
                s[0] = rng.uniform(0.5, 1.0, C) * level * rng.choice([-1.0, 1.0], C)
                t[2] = rng.uniform(0.5, 1.0, C) * level
                note = 'rows whose power sums are below 1e-8'
            elif special == 'zeros':
                s.flat[::7] = 0.0  # isolated zeros: gradient defined as 0
                note = 'isolated zero elements'
            elif special == 'large':
                note = 'values sigma 1e4'
            cases.append(attention_case(cid, dtype, s, t, beta, red, note))
    return cases


# ----------------------------------------------------------------------------------------------------


def documents():
    gen = {
        'tool': 'tools/gen_fixtures.py',
        'torch': torch.__version__,
        'numpy': np.__version__,
    }
    return {
        'kd.json': {'format': FORMAT, 'generator': gen, 'cases': kd_cases()},
        'hard.json': {'format': FORMAT, 'generator': gen, 'cases': hard_cases()},
        'feature.json': {'format': FORMAT, 'generator': gen, 'cases': feature_cases()},
        'attention.json': {'format': FORMAT, 'generator': gen, 'cases': attention_cases()},
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default=OUT_DIR, help='output directory (default: test/fixtures)')
    ap.add_argument('--check', action='store_true', help='only compare with the files on disk')
    args = ap.parse_args()
    docs = documents()
    titles = [c['title'] for d in docs.values() for c in d['cases']]
    dup = {x for x in titles if titles.count(x) > 1}
    if dup:
        sys.exit(f'duplicate case titles: {sorted(dup)}')
    os.makedirs(args.out, exist_ok=True)
    stale = []
    total = 0
    for name, doc in docs.items():
        text = json.dumps(doc, indent=1, sort_keys=True) + '\n'
        path = os.path.join(args.out, name)
        total += len(text)
        if args.check:
            with open(path, encoding='utf-8') as f:
                if f.read() != text:
                    stale.append(name)
            continue
        with open(path, 'w', encoding='utf-8') as f:
            f.write(text)
        print(f'{path}: {len(doc["cases"])} cases, {len(text)} bytes')
    print(f'total {sum(len(d["cases"]) for d in docs.values())} cases, {total} bytes')
    if stale:
        sys.exit(f'fixtures differ from the generator: {", ".join(stale)}')


if __name__ == '__main__':
    main()
