/**
 * Errors and exit codes shared by the `kdloss` commands (lib/cli and lib/bench): each error is reported
 * as one line on stderr, without a stack trace, and ends the command with its exit code.
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
