/**
 * Text the commands print: one-line messages.
 * @module
 */

/** The first line of a message (errors are reported on one line). */
export function firstLine(s: string): string {
  const i = s.indexOf('\n');
  return i < 0 ? s : s.slice(0, i);
}

/** The message of a util.parseArgs error, on one line and without its long hint. */
export function parseArgsMessage(err: unknown): string {
  const msg = firstLine(String((err as Error)?.message ?? err));
  const i = msg.indexOf('. To specify a positional');
  return i < 0 ? msg : msg.slice(0, i);
}
