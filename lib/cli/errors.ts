/**
 * Errors of the command line. Each is reported as one line on stderr (no stack trace) with its exit code.
 * @module
 */

/** Exit codes of `kdloss`. */
export const EXIT_OK = 0;
/** An unexpected failure (a bug): reported with a hint to get the stack. */
export const EXIT_INTERNAL = 1;
/** Bad input or usage. */
export const EXIT_INPUT = 2;
/** Stopped by SIGINT (128 + 2, the shell convention). */
export const EXIT_INTERRUPTED = 130;

/** A problem with the user's input: a file, a flag or their combination. Exit code 2. */
export class CliError extends Error {
  /** The process exit code this error ends the command with. */
  readonly exitCode: number;

  constructor(message: string, exitCode = EXIT_INPUT) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

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

/** A bad command line (unknown flag, missing value, value out of range). Exit code 2. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** The run was interrupted (SIGINT) after `rows` rows. Exit code 130. */
export class InterruptedError extends CliError {
  /** Rows fully evaluated before the interruption. */
  readonly rows: number;

  constructor(rows: number) {
    super(`interrupted after ${rows} rows`, EXIT_INTERRUPTED);
    this.name = 'InterruptedError';
    this.rows = rows;
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
      return 'is a directory, not a .npy file';
    case 'ENOTDIR':
      return 'a component of the path is not a directory';
    case 'ENOSPC':
      return 'no space left on device';
    default:
      return e?.code ? `${e.code}: ${firstLine(e.message)}` : firstLine(String((err as Error)?.message ?? err));
  }
}

/** The first line of a message (errors are reported on one line). */
export function firstLine(s: string): string {
  const i = s.indexOf('\n');
  return i < 0 ? s : s.slice(0, i);
}
