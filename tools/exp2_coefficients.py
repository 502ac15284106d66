#!/usr/bin/env python3
"""Derives vecmath.h's kExp2P (2^f ~ P2(f) on [-1/2, 1/2]) from its kExpP (e^r ~ P(r) on [-ln2/2, ln2/2]).

P2(f) = P(f ln2), so coefficient i is kExpP[i] * ln2^i (kExpP[i] as the compiler reads it), computed
here in 60-digit decimal arithmetic and rounded once to float / double. The approximation error of P2 on [-1/2, 1/2] is that of P on
[-ln2/2, ln2/2]; only the rounding of the coefficients is new.

  python3 tools/exp2_coefficients.py          prints both arrays
  python3 tools/exp2_coefficients.py --check  exits 1 unless vecmath.h holds exactly these values
"""
import decimal
import pathlib
import re
import struct
import sys

HEADER = pathlib.Path(__file__).resolve().parent.parent / "native" / "kernels" / "vecmath.h"


def arrays(text, name):
    """The values of every `name[...] = {...}` in text, in order (float block first, then double)."""
    out = []
    for m in re.finditer(name + r"\[[^\]]*\]\s*=\s*\{([^}]*)\}", text):
        out.append([decimal.Decimal(v.strip().rstrip("f")) for v in m.group(1).split(",") if v.strip()])
    return out


def to_float32(x):
    return struct.unpack("f", struct.pack("f", float(x)))[0]


def main():
    decimal.getcontext().prec = 60
    ln2 = decimal.Decimal(2).ln()
    text = HEADER.read_text()
    exp_f, exp_d = arrays(text, "kExpP")
    # The coefficients as the compiler reads them: each literal rounded to the header's type.
    exp_f = [decimal.Decimal(to_float32(c)) for c in exp_f]
    exp_d = [decimal.Decimal(float(c)) for c in exp_d]
    want = {
        "float": [to_float32(c * ln2**i) for i, c in enumerate(exp_f)],
        "double": [float(c * ln2**i) for i, c in enumerate(exp_d)],
    }
    if "--check" in sys.argv[1:]:
        have_f, have_d = arrays(text, "kExp2P")
        have = {"float": [to_float32(v) for v in have_f], "double": [float(v) for v in have_d]}
        if have != want:
            print("vecmath.h kExp2P differs from kExpP[i] * ln2^i:", file=sys.stderr)
            for t in want:
                print(f"  {t}: have {have[t]}\n  {t}: want {want[t]}", file=sys.stderr)
            return 1
        print("vecmath.h kExp2P matches kExpP[i] * ln2^i (float and double)")
        return 0
    for t, vals in want.items():
        suffix = "f" if t == "float" else ""
        print(f"{t}: {{" + ", ".join(repr(v) + suffix for v in vals) + "}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
