/**
 * Shards: `--shard i/n` evaluates the i-th of n contiguous row ranges (1-based). The ranges split the
 * rows as evenly as possible (the first rows % n shards get one row more), every row in exactly one
 * shard; with fewer rows than shards, the last shards are empty.
 * @module
 */
import { UsageError } from './errors';

/** The most shards a split may have. */
export const MAX_SHARDS = 1 << 20;

export interface ShardSpec {
  /** 1-based. */
  index: number;
  count: number;
}

/**
 * Parses `i/n`.
 * @throws UsageError unless 1 <= i <= n <= MAX_SHARDS
 */
export function parseShard(v: string): ShardSpec {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(v);
  const expected = `i/n with 1 <= i <= n <= ${MAX_SHARDS} (e.g. 1/4, then 2/4, 3/4, 4/4)`;
  if (!m) throw new UsageError(`--shard: expected ${expected}, got '${v}'`);
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (!(count >= 1 && count <= MAX_SHARDS && index >= 1 && index <= count)) throw new UsageError(`--shard: expected ${expected}, got '${v}'`);
  return { index, count };
}

/** Rows [start, end) of shard `index` of `count` over `rows` rows (exact for any safe integer rows). */
export function shardRange(rows: number, index: number, count: number): { start: number; end: number } {
  const q = Math.floor(rows / count);
  const r = rows - q * count;
  const at = (k: number): number => k * q + Math.min(k, r);
  return { start: at(index - 1), end: at(index) };
}
