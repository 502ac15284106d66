#!/usr/bin/python3
"""Generates the embedded sample that `npm start` evaluates (examples/sample/*.npy).

Run it from the repository root with Debian's Python (python3-torch, python3-sklearn, python3-numpy),
not a pyenv / virtualenv python3 that may be first on PATH:

    /usr/bin/python3 examples/sample/make_sample.py            # writes examples/sample/{teacher,student,labels}.npy
    /usr/bin/python3 examples/sample/make_sample.py --check    # regenerates in memory, fails if a file differs
    /usr/bin/python3 examples/sample/make_sample.py --report   # only prints the metrics of the stored files

What it does
------------
* Loads scikit-learn's bundled handwritten digits (sklearn.datasets.load_digits(): 1797 8x8 images with
  pixels 0..16, 10 classes; a copy of the test set of the UCI "Optical Recognition of Handwritten
  Digits" data, shipped inside the package, no download). Pixels are scaled to [0, 1] (divided by 16).
* Splits it with train_test_split(test_size=1/3, stratify=labels, random_state=0) into 1198 training
  rows and 599 held-out rows.
* Trains, with torch on the training rows only, in float32 on the CPU:
    teacher  64-256-256-10 MLP (ReLU), cross-entropy, Adam lr 1e-3, 60 epochs of minibatches of 64;
    student  64-16-10 MLP (ReLU), cross-entropy, plain SGD lr 0.1, 6 epochs of minibatches of 64:
             small and deliberately under-trained, so it is clearly weaker than the teacher and
             disagrees with it on a fair share of the held-out rows.
* Writes the held-out logits of both models (float32, C order, shape [599, 10]) and the held-out labels
  (int64, shape [599]) with numpy.save.
* Prints both accuracies, their top-1 agreement, and the reference distillation loss at T = 4,
  alpha = 0.7 computed with torch in float64 from exactly the stored float32 logits:
      soft = F.kl_div(log_softmax(s/T), log_softmax(t/T), reduction='batchmean', log_target=True)
      hard = F.cross_entropy(s, y)                        (mean over rows)
      loss = alpha * T^2 * soft + (1 - alpha) * hard

Reproducibility: every random draw comes from a seeded torch.Generator (initialisation and shuffling;
torch.manual_seed is set as well), torch runs single-threaded with deterministic algorithms, and the
split uses a fixed random_state. Rerunning with the same library builds and the same CPU kernel paths
reproduces the files byte for byte. The kernels torch picks are host dependent, though: forcing another
ATen CPU capability (ATEN_CPU_CAPABILITY=default / avx512) or another OpenBLAS core type
(OPENBLAS_CORETYPE=SkylakeX / Sandybridge) changes the last bits of the trained weights and hence of
the logits (accuracies unchanged, loss in the 4th-5th significant digit), and so would other
torch/numpy/sklearn/BLAS versions. The printed metrics are always computed from the arrays written,
so they match the stored files whatever host produced them; examples/sample/README.md records the
host the committed files came from.
"""
import argparse
import hashlib
import io
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

SEED = 0
SPLIT_STATE = 0
TEST_SIZE = 1 / 3
T = 4.0
ALPHA = 0.7
OUT_DIR = os.path.dirname(os.path.abspath(__file__))


def mlp(sizes, gen):
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = torch.nn.Linear(fan_in, fan_out)
        # PyTorch's default init (kaiming_uniform a=sqrt(5) == U(+-1/sqrt(fan_in)) for both), drawn
        # from our own generator so it does not depend on global RNG state.
        bound = 1.0 / fan_in ** 0.5
        with torch.no_grad():
            lin.weight.copy_((torch.rand(fan_out, fan_in, generator=gen) * 2 - 1) * bound)
            lin.bias.copy_((torch.rand(fan_out, generator=gen) * 2 - 1) * bound)
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def train(model, x, y, opt, epochs, batch, gen):
    model.train()
    n = x.shape[0]
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()


def make():
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=TEST_SIZE, stratify=y, random_state=SPLIT_STATE)
    x_tr, x_te = torch.from_numpy(x_tr), torch.from_numpy(x_te)
    y_tr = torch.from_numpy(y_tr)

    gen = torch.Generator().manual_seed(SEED)
    teacher = mlp([64, 256, 256, 10], gen)
    train(teacher, x_tr, y_tr, torch.optim.Adam(teacher.parameters(), lr=1e-3), 60, 64, gen)

    gen = torch.Generator().manual_seed(SEED + 1)
    student = mlp([64, 16, 10], gen)
    train(student, x_tr, y_tr, torch.optim.SGD(student.parameters(), lr=0.1), 6, 64, gen)

    with torch.no_grad():
        t_logits = np.ascontiguousarray(teacher(x_te).numpy(), dtype=np.float32)
        s_logits = np.ascontiguousarray(student(x_te).numpy(), dtype=np.float32)
    labels = np.ascontiguousarray(y_te, dtype=np.int64)
    return {'teacher.npy': t_logits, 'student.npy': s_logits, 'labels.npy': labels}


def npy_bytes(a):
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def report(arrays):
    s = torch.from_numpy(arrays['student.npy']).double()
    t = torch.from_numpy(arrays['teacher.npy']).double()
    y = torch.from_numpy(arrays['labels.npy'])
    n = y.shape[0]
    acc_t = (t.argmax(1) == y).double().mean().item()
    acc_s = (s.argmax(1) == y).double().mean().item()
    agree = (s.argmax(1) == t.argmax(1)).double().mean().item()
    soft = F.kl_div(F.log_softmax(s / T, 1), F.log_softmax(t / T, 1),
                    reduction='batchmean', log_target=True).item()
    hard = F.cross_entropy(s, y).item()
    loss = ALPHA * T * T * soft + (1 - ALPHA) * hard
    print(f'held-out rows {n}, classes {s.shape[1]}')
    print(f'teacher accuracy {acc_t:.6f} ({int(round(acc_t * n))}/{n})')
    print(f'student accuracy {acc_s:.6f} ({int(round(acc_s * n))}/{n})')
    print(f'top-1 agreement  {agree:.6f} ({int(round(agree * n))}/{n})')
    print(f'KD loss T={T:g} alpha={ALPHA:g} (torch, float64 from the stored float32 logits):')
    print(f'  soft KL (batchmean)     {soft:.9f}')
    print(f'  hard CE (mean)          {hard:.9f}')
    print(f'  loss = alpha*T^2*soft + (1-alpha)*hard = {loss:.9f}')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument('--check', action='store_true',
                      help='regenerate in memory and fail if a stored file differs')
    mode.add_argument('--report', action='store_true',
                      help='only print the metrics of the stored files (no training)')
    args = ap.parse_args()

    out = os.path.normpath(OUT_DIR)
    if args.report:
        arrays = {}
        for name in ('teacher.npy', 'student.npy', 'labels.npy'):
            arrays[name] = np.load(os.path.join(out, name), allow_pickle=False)
            a = arrays[name]
            print(f'{name} {a.dtype} {list(a.shape)}')
        report(arrays)
        return

    arrays = make()
    failed = False
    if not args.check:
        os.makedirs(out, exist_ok=True)
    for name, a in arrays.items():
        data = npy_bytes(a)
        path = os.path.join(out, name)
        if args.check:
            with open(path, 'rb') as f:
                same = f.read() == data
            failed |= not same
            print(f'{name}: {"ok" if same else "DIFFERS"}')
        else:
            with open(path, 'wb') as f:
                f.write(data)
        print(f'{name} {a.dtype} {list(a.shape)} sha256 {hashlib.sha256(data).hexdigest()}')
    report(arrays)
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    main()
