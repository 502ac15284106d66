/**
 * Errors of `kdloss eval`. Each is reported as one line on stderr (no stack trace) with its exit code;
 * the base classes and exit codes are shared with `kdloss bench` (lib/util/errors.ts).
 * @module
 */
import { constants } from 'os';
import { CliError } from '../util/errors';

export { CliError, EXIT_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, fileKind, fsProblem, UsageError } from '../util/errors';

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
