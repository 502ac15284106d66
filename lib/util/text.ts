/**
 * Text the commands print: one-line messages, safe to write to a terminal.
 * @module
 */

/** The first line of a message (errors are reported on one line). */
export function firstLine(s: string): string {
  const i = s.indexOf('\n');
  return i < 0 ? s : s.slice(0, i);
}

/**
 * Characters that would break a one-line message or reach the terminal as commands: C0 and C1
 * control characters (newline, escape, CSI), DEL, the Unicode line and paragraph separators, and the
 * bidirectional embeddings, overrides and isolates (which reorder the text around them).
 */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** The same characters outside the ASCII controls, which JSON.stringify leaves raw. */
const UNSAFE_IN_JSON = /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const hex = (c: string, digits: number): string => c.charCodeAt(0).toString(16).padStart(digits, '0');

/**
 * Text from a file header or the command line, made safe to echo in a one-line message: unsafe
 * characters become escapes (`\n`, `\t`, `\r`, `\x1b`, `\u2028`); everything else is kept as is.
 */
export function escapeText(s: string): string {
  return s.replace(UNSAFE, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\t') return '\\t';
    if (c === '\r') return '\\r';
    return c.charCodeAt(0) <= 0xff ? `\\x${hex(c, 2)}` : `\\u${hex(c, 4)}`;
  });
}

/**
 * JSON text with the unsafe characters JSON.stringify leaves raw (DEL, C1 controls, line separators,
 * bidirectional controls) written as \u escapes: the same JSON value, safe for a terminal.
 */
export function escapeJson(json: string): string {
  return json.replace(UNSAFE_IN_JSON, (c) => `\\u${hex(c, 4)}`);
}

/** The message of a util.parseArgs error without its long hint (escape it before printing). */
export function parseArgsMessage(err: unknown): string {
  const msg = String((err as Error)?.message ?? err);
  const i = msg.indexOf('. To specify a positional');
  return i < 0 ? msg : msg.slice(0, i);
}
