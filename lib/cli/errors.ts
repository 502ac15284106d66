/**
 * Errors of `kdloss eval`. Each is reported as one line on stderr (no stack trace) with its exit code;
 * the base classes and exit codes are shared with `kdloss bench` (lib/util/errors.ts).
 * @module
 */
import type { Stats } from 'fs';
import { constants } from 'os';
import { CliError } from '../util/errors';
import { firstLine } from '../util/text';

export { CliError, EXIT_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, UsageError } from '../util/errors';

/** A problem with one input file; the message starts with the file's name. */
export class FileError extends CliError {
  /** The file as given on the command line. */
  readonly file: string;

  constructor(file: string, problem: string) {
    super(`${file}: ${problem}`);
    this.name = 'FileError';
    this.file = file;
  }
}

/** Signals that stop a run cleanly (outputs removed), and so end it with 128 + their number. */
export const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
export type StopSignal = (typeof STOP_SIGNALS)[number];

/** The exit code of a run stopped by `signal`: 128 + its number (130 for SIGINT), the shell convention. */
export function signalExitCode(signal: StopSignal): number {
  return 128 + constants.signals[signal];
}

/** The run was stopped by a signal (Ctrl-C: SIGINT) after `rows` rows. Exit code 128 + the signal's number. */
export class InterruptedError extends CliError {
  /** Rows fully evaluated before the interruption. */
  readonly rows: number;
  readonly signal: StopSignal;

  constructor(rows: number, signal: StopSignal = 'SIGINT') {
    super(signal === 'SIGINT' ? `interrupted after ${rows} rows` : `terminated by ${signal} after ${rows} rows`, signalExitCode(signal));
    this.name = 'InterruptedError';
    this.rows = rows;
    this.signal = signal;
  }
}

/** A one-line description of a filesystem error on `file` (ENOENT, EACCES, EISDIR, ...). */
export function fsProblem(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  switch (e?.code) {
    case 'ENOENT':
      return 'no such file';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'is a directory';
    case 'ENOTDIR':
      return 'a component of the path is not a directory';
    case 'ENOSPC':
      return 'no space left on device';
    case 'EDQUOT':
      return 'disk quota exceeded';
    case 'EFBIG':
      return 'file too large (the file size limit, ulimit -f)';
    case 'EROFS':
      return 'read-only file system';
    case 'ELOOP':
      return 'too many levels of symbolic links';
    case 'ENAMETOOLONG':
      return 'file name too long';
    default: {
      // Node's messages start with the code again ("EIO: i/o error, read"): say it once.
      const msg = firstLine(String((err as Error)?.message ?? err));
      return e?.code && !msg.startsWith(`${e.code}:`) ? `${e.code}: ${msg}` : msg;
    }
  }
}

/** A description of a non-regular file's kind: 'a directory', 'a FIFO', ... */
export function fileKind(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSymbolicLink()) return 'a symbolic link';
  return 'not a regular file';
}
