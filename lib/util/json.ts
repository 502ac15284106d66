/**
 * The JSON kdloss writes (`kdloss eval --json`, the evaluation accumulator's state, `kdloss bench`'s
 * results). JSON has no NaN or infinities and JSON.stringify writes them as null, the value kdloss
 * uses for "not defined" (no labels, no limit). So every number is written as a JSON number when
 * finite and as one of the strings "NaN", "Infinity", "-Infinity" otherwise; null only ever means
 * "not defined".
 * @module
 */
import { escapeJson } from './text';

/** The strings non-finite numbers are written as. */
export type NonFinite = 'NaN' | 'Infinity' | '-Infinity';

/** JSON.stringify's replacer for the convention above. */
function replacer(_key: string, value: unknown): unknown {
  return typeof value === 'number' && !Number.isFinite(value) ? (String(value) as NonFinite) : value;
}

/** `value` as kdloss JSON text (indented; non-finite numbers as strings; terminal-safe escapes). */
export function toJsonText(value: unknown): string {
  return escapeJson(JSON.stringify(value, replacer, 2));
}

/**
 * A number read back from kdloss JSON: a JSON number, or "NaN", "Infinity", "-Infinity".
 * @throws TypeError for anything else (null included: a number was expected)
 */
export function fromJsonNumber(v: unknown): number {
  if (typeof v === 'number') return v;
  if (v === 'NaN') return NaN;
  if (v === 'Infinity') return Infinity;
  if (v === '-Infinity') return -Infinity;
  throw new TypeError(`expected a number, "NaN", "Infinity" or "-Infinity", got ${JSON.stringify(v)}`);
}
