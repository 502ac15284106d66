/**
 * Errors of `kdloss eval`. Each is reported as one line on stderr (no stack trace) with its exit code;
 * the base classes and exit codes are shared with `kdloss bench` (lib/util/errors.ts).
 * @module
 */
import { CliError, EXIT_INTERRUPTED } from '../util/errors';
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
