/**
 * Errors and exit codes shared by the `kdloss` commands (lib/cli and lib/bench): each error is reported
 * as one line on stderr, without a stack trace, and ends the command with its exit code.
 * @module
 */
import type { Stats } from 'fs';
import { firstLine } from './text';

/** Exit codes of `kdloss`. */
export const EXIT_OK = 0;
/** An unexpected failure (a bug): reported with a hint to get the stack. */
export const EXIT_INTERNAL = 1;
/** Bad input or usage. */
export const EXIT_INPUT = 2;
/** Stopped by SIGINT (128 + 2, the shell convention). */
export const EXIT_INTERRUPTED = 130;

/** A problem with the user's input: a file, a flag or their combination. Exit code 2 unless given. */
export class CliError extends Error {
  /** The process exit code this error ends the command with. */
  readonly exitCode: number;

  constructor(message: string, exitCode = EXIT_INPUT) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

/** A bad command line (unknown flag, missing value, value out of range). Exit code 2. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
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
  if (st.isFile()) return 'a regular file';
  return 'not a regular file';
}
