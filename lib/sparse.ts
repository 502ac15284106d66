/**
 * Sparse (top-k) teachers: each row's k largest teacher entries as (token index, value) pairs instead of
 * a dense row of logits (see docs/sparse-teachers.md). This module reads and validates the argument;
 * the backends check the entries themselves (index ranges, repeats, log-probability bounds) in their
 * one pass over them, as they do class indices.
 * @module
 */
import { SparseKindCode } from './backend/layout';
import { ConfigError, InputError, ShapeError } from './errors';
import { type DType, type FloatArray, type MatrixRead, checkAttached, dtypeOf } from './matrix';
import { isInt32Array, lengthOf } from './views';

/** What a sparse teacher's values are. */
export type SparseTeacherKind = 'logits' | 'logprobs';

/**
 * A teacher given by its top-k entries per row, row-major `rows x k`: `indices[r * k + e]` is a token
 * (column of the student) or -1 for an unused slot, `values[r * k + e]` its value.
 * - `'logits'`: the teacher's raw logits of those tokens; its distribution is softmax(v / T) over the
 *   row's entries.
 * - `'logprobs'`: the teacher's log-probabilities at the loss's temperature over the whole vocabulary.
 *   With `tail` (the default for logprobs) the remaining mass 1 - sum p is one more bucket, compared
 *   with the student's mass outside the same tokens; `tail: false` renormalises over the entries.
 */
export interface SparseTeacher {
  /** rows * k token ids, row-major; -1 marks an unused slot. */
  indices: Int32Array;
  /** rows * k values, the call's dtype (that of the student); unused slots are never read. */
  values: FloatArray;
  /** The student's row count. */
  rows: number;
  /** Slots per row, at most the vocabulary size. */
  k: number;
  /** What the values are: the teacher's raw logits of those tokens, or its log-probabilities at T. */
  kind: SparseTeacherKind;
  /** logprobs only (default true): the tail bucket. */
  tail?: boolean;
}

/** A sparse teacher as validated. */
export interface SparseTeacherData {
  indices: Int32Array;
  values: FloatArray;
  k: number;
  kind: SparseKindCode;
  tail: boolean;
}

/** A sparse teacher argument as read once (every property read once, before validation). */
export interface SparseRead {
  readonly indices: unknown;
  readonly values: unknown;
  readonly rows: unknown;
  readonly k: unknown;
  readonly kind: unknown;
  readonly tail: unknown;
}

/**
 * How far above 0 a log-probability, and above 1 a row's probability sum, may be (the rounding of
 * log-probabilities computed in float32); the binding and the js backend use the same bound.
 */
export const LOGPROB_SLACK = 1e-5;

/**
 * The largest k * element bytes with which the gradient may be written over the student (the native
 * kernel keeps each row's entry logits aside in its scratch cache of 4 MiB; engine.h).
 */
export const SPARSE_INPLACE_MAX_BYTES = 4 << 20;

/** Reads a teacher argument as a sparse teacher if it is one (an object with an `indices` property). */
export function readSparseTeacher(x: unknown): SparseRead | null {
  if (typeof x !== 'object' || x === null || Array.isArray(x) || !('indices' in x)) return null;
  const o = x as Record<string, unknown>;
  return { indices: o.indices, values: o.values, rows: o.rows, k: o.k, kind: o.kind, tail: o.tail };
}

/** The read of the values as a matrix read, for the call's dtype (see callDType). */
export function sparseValuesRead(r: SparseRead): MatrixRead {
  return { kind: 'typed', data: r.values, rows: r.rows, cols: r.k };
}

function checkCount(v: unknown, name: string): number {
  if (typeof v !== 'number') throw new InputError(`teacher.${name}: expected a number, got ${typeof v}`);
  if (!Number.isInteger(v) || v < 1) throw new ShapeError(`teacher.${name}: expected a positive integer, got ${v}`);
  return v;
}

/**
 * Validates a sparse teacher against a student of `rows x cols` and the call's dtype and divergence.
 * @throws ConfigError for a divergence other than 'kl', a bad kind or tail; ShapeError for k > cols or
 * a row count or length that does not match; InputError for wrong array types
 */
export function checkSparseTeacher(r: SparseRead, rows: number, cols: number, dtype: DType, divergence: string): SparseTeacherData {
  if (divergence !== 'kl') {
    throw new ConfigError(
      `divergence: a sparse teacher takes only 'kl', not '${divergence}' (reverse KL and JSD need the teacher's mass ` +
        'everywhere the student has some, which top-k entries do not give)',
    );
  }
  if (r.kind !== 'logits' && r.kind !== 'logprobs') throw new ConfigError(`teacher.kind: expected 'logits' or 'logprobs', got ${String(r.kind)}`);
  if (r.tail !== undefined && typeof r.tail !== 'boolean') throw new ConfigError(`teacher.tail: expected a boolean, got ${typeof r.tail}`);
  if (r.kind === 'logits' && r.tail === true) {
    throw new ConfigError("teacher.tail: only 'logprobs' have a tail bucket (logits say nothing of the mass outside the entries)");
  }
  const tail = r.kind === 'logprobs' && r.tail !== false;
  if (!isInt32Array(r.indices)) throw new InputError('teacher.indices: expected an Int32Array');
  const dt = dtypeOf(r.values);
  if (dt === undefined) throw new InputError('teacher.values: expected a Float32Array or Float64Array');
  if (dt !== dtype) throw new InputError(`teacher.values: expected ${dtype} like the other inputs of this call, got ${dt}`);
  const indices = r.indices;
  const values = r.values as FloatArray;
  checkAttached(indices, 'teacher.indices');
  checkAttached(values, 'teacher.values');
  const tRows = checkCount(r.rows, 'rows');
  const k = checkCount(r.k, 'k');
  if (tRows !== rows) throw new ShapeError(`teacher.rows: expected ${rows} (the student's rows), got ${tRows}`);
  if (k > cols) throw new ShapeError(`teacher.k: ${k} entries per row, more than the student's ${cols} columns`);
  for (const [a, name] of [
    [indices, 'indices'],
    [values, 'values'],
  ] as const) {
    const n = lengthOf(a);
    if (n !== rows * k) throw new ShapeError(`teacher.${name}: length ${n} does not match rows x k = ${rows} x ${k} (expected ${rows * k})`);
  }
  return { indices, values, k, kind: r.kind === 'logits' ? SparseKindCode.Logits : SparseKindCode.Logprobs, tail };
}
