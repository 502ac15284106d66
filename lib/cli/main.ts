/**
 * The `kdloss` command line: argument parsing, error reporting and exit codes
 * (0 ok, 2 bad input or usage, 130 interrupted, 1 internal error).
 * @module
 */
import * as fs from 'fs';
import { parseArgs } from 'util';
import type { Divergence } from '../distillation';
import { packageVersion } from '../util/package';
import { escapeText, firstLine, parseArgsMessage } from '../util/text';
import type { ProgressBar } from './report';
import { CliError, EXIT_INPUT, fsProblem, EXIT_INTERNAL, EXIT_OK, signalExitCode, STOP_SIGNALS, type StopSignal, UsageError } from './errors';
import { parseShard } from './shards';
import type { SparseTeacherSpec } from './sparse-teacher';
import { EVAL_USAGE, MERGE_USAGE, USAGE } from './usage';

/** Parses a number flag. */
function numberFlag(name: string, v: string | undefined, fallback: number, check: (x: number) => boolean, expected: string): number {
  if (v === undefined) return fallback;
  const x = v.trim() === '' ? NaN : Number(v);
  if (!check(x)) throw new UsageError(`--${name}: expected ${expected}, got '${v}'`);
  return x;
}

function intFlag(name: string, v: string | undefined, lo: number, hi: number): number | undefined {
  if (v === undefined) return undefined;
  return numberFlag(name, v, 0, (x) => Number.isInteger(x) && x >= lo && x <= hi, `an integer in [${lo}, ${hi}]`);
}

interface Io {
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
}

/**
 * The arguments with a negative number after a flag that takes one joined to it (`--ignore-index
 * -100` as `--ignore-index=-100`): parseArgs takes any word starting with '-' for an option.
 */
export function joinNegativeValues(argv: string[], flags: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (flags.includes(argv[i]) && i + 1 < argv.length && /^-\d/.test(argv[i + 1])) {
      out.push(`${argv[i]}=${argv[i + 1]}`);
      i++;
    } else {
      out.push(argv[i]);
    }
  }
  return out;
}

const DIVERGENCES: readonly Divergence[] = ['kl', 'reverse-kl', 'jsd', 'tvd'];

/** --divergence and --beta: the divergence (default 'kl') and, for 'jsd' only, its beta in (0, 1). */
function divergenceFlag(name: string | undefined, beta: string | undefined): { divergence: Divergence; beta?: number } {
  const divergence = (name ?? 'kl') as Divergence;
  if (!DIVERGENCES.includes(divergence)) throw new UsageError(`--divergence: expected kl, reverse-kl, jsd or tvd, got '${name}'`);
  if (divergence !== 'jsd') {
    if (beta !== undefined) throw new UsageError(`--beta: only --divergence jsd takes a beta, not ${divergence}`);
    return { divergence };
  }
  const b = numberFlag('beta', beta, 0.5, (x) => x > 0 && x < 1, "a number strictly between 0 and 1 (for beta 0 or 1 use --divergence kl or reverse-kl)");
  return { divergence, beta: b };
}

/**
 * The sparse teacher the flags give (--teacher-topk, or --teacher-indices and --teacher-values, with
 * --teacher-kind and --tail / --no-tail), or undefined for a dense --teacher.
 * @throws UsageError for no teacher, both kinds of teacher, or a sparse teacher's flag that is missing or out of place
 */
function sparseTeacherFlags(str: (k: string) => string | undefined, tail: boolean, noTail: boolean): SparseTeacherSpec | undefined {
  const topk = str('teacher-topk');
  const indices = str('teacher-indices');
  const values = str('teacher-values');
  const kind = str('teacher-kind');
  const pair = indices !== undefined || values !== undefined;
  if (topk === undefined && !pair) {
    if (str('teacher') === undefined) {
      throw new UsageError('eval: --teacher FILE is required, or a sparse teacher: --teacher-topk FILE, or --teacher-indices and --teacher-values (see kdloss eval --help)');
    }
    for (const [flag, given] of [
      ['teacher-kind', kind !== undefined],
      ['tail', tail],
      ['no-tail', noTail],
    ] as const) {
      if (given) throw new UsageError(`--${flag}: only with a sparse teacher (--teacher-topk, or --teacher-indices and --teacher-values)`);
    }
    return undefined;
  }
  const sparseFlag = topk !== undefined ? '--teacher-topk' : indices !== undefined ? '--teacher-indices' : '--teacher-values';
  if (str('teacher') !== undefined) throw new UsageError(`--teacher and ${sparseFlag}: give one teacher, dense logits or a sparse top-k one`);
  if (str('teacher-key') !== undefined) throw new UsageError(`--teacher-key: picks a tensor of --teacher; ${sparseFlag} reads tensors named 'indices' and 'values'`);
  if (topk !== undefined && pair) throw new UsageError(`--teacher-topk and ${indices !== undefined ? '--teacher-indices' : '--teacher-values'}: give one file of both tensors, or two files`);
  if (topk === undefined && (indices === undefined || values === undefined)) {
    throw new UsageError(indices === undefined ? '--teacher-values: needs --teacher-indices FILE' : '--teacher-indices: needs --teacher-values FILE');
  }
  if (kind === undefined) {
    throw new UsageError(`${sparseFlag}: --teacher-kind logits|logprobs is required (what the top-k values are: raw logits, or log-probabilities over the whole vocabulary)`);
  }
  if (kind !== 'logits' && kind !== 'logprobs') throw new UsageError(`--teacher-kind: expected logits or logprobs, got '${kind}'`);
  if (tail && noTail) throw new UsageError('--tail and --no-tail: give one');
  if (tail && kind === 'logits') throw new UsageError('--tail: only with --teacher-kind logprobs (logits say nothing of the mass outside the entries)');
  return { topk, indices, values, kind, tail: kind === 'logprobs' && !noTail };
}

async function runEval(argv: string[], io: Io): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: joinNegativeValues(argv, ['--ignore-index', '--temperature', '--alpha', '--beta']),
      strict: true,
      allowPositionals: false,
      options: {
        student: { type: 'string' },
        teacher: { type: 'string' },
        'teacher-topk': { type: 'string' },
        'teacher-indices': { type: 'string' },
        'teacher-values': { type: 'string' },
        'teacher-kind': { type: 'string' },
        tail: { type: 'boolean' },
        'no-tail': { type: 'boolean' },
        labels: { type: 'string' },
        'student-key': { type: 'string' },
        'teacher-key': { type: 'string' },
        'labels-key': { type: 'string' },
        'ignore-index': { type: 'string' },
        shard: { type: 'string' },
        temperature: { type: 'string' },
        alpha: { type: 'string' },
        divergence: { type: 'string' },
        beta: { type: 'string' },
        'no-temperature-scaling': { type: 'boolean' },
        'per-sample': { type: 'string' },
        json: { type: 'boolean' },
        threads: { type: 'string' },
        'chunk-rows': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new UsageError(`eval: ${parseArgsMessage(err)} (see kdloss eval --help)`);
  }
  if (values.help) {
    io.stdout.write(EVAL_USAGE);
    return EXIT_OK;
  }
  const str = (k: string): string | undefined => values[k] as string | undefined;
  if (str('student') === undefined) throw new UsageError('eval: --student FILE is required (see kdloss eval --help)');
  for (const k of ['student', 'teacher', 'teacher-topk', 'teacher-indices', 'teacher-values', 'labels', 'per-sample']) {
    if (str(k) === '') throw new UsageError(`--${k}: expected a file name, got ''`);
  }
  const sparseTeacher = sparseTeacherFlags(str, values.tail === true, values['no-tail'] === true);
  const temperature = numberFlag('temperature', str('temperature'), 4, (x) => Number.isFinite(x) && x > 0, 'a finite number > 0');
  const alpha = numberFlag('alpha', str('alpha'), 0.7, (x) => x >= 0 && x <= 1, 'a number in [0, 1]');
  const divergence = divergenceFlag(str('divergence'), str('beta'));
  if (sparseTeacher !== undefined && divergence.divergence !== 'kl') {
    throw new UsageError(`--divergence ${divergence.divergence}: a sparse teacher takes only kl (reverse KL, JSD and TVD need the teacher's mass everywhere the student has some)`);
  }
  const threads = intFlag('threads', str('threads'), 1, 1024);
  const chunkRows = intFlag('chunk-rows', str('chunk-rows'), 1, 1 << 24);
  const perSample = str('per-sample');
  const ignoreIndex = intFlag('ignore-index', str('ignore-index'), -(2 ** 31), 2 ** 31 - 1);
  const shard = str('shard') === undefined ? undefined : parseShard(str('shard')!);
  if (str('labels-key') !== undefined && str('labels') === undefined) throw new UsageError('--labels-key: needs --labels FILE');

  // Loaded here so that a failure to load the library (e.g. a bad KDLOSS_ISA) is reported like any error.
  const { evaluate } = await import('./eval');
  const { formatText, ProgressBar: Bar, toJson } = await import('./report');
  const { toJsonText } = await import('../util/json');

  const controller = new AbortController();
  let stopping = false;
  const onSignal = (signal: StopSignal): void => {
    if (!stopping) {
      stopping = true;
      controller.abort(signal);
    } else {
      // A second signal while stopping: leave at once (the exit hook still removes temporary outputs).
      process.exit(signalExitCode(signal));
    }
  };
  for (const s of STOP_SIGNALS) process.on(s, onSignal);
  const progress: { bar: ProgressBar | null } = { bar: null };
  try {
    const summary = await evaluate({
      student: str('student')!,
      teacher: str('teacher'),
      sparseTeacher,
      labels: str('labels'),
      studentKey: str('student-key'),
      teacherKey: str('teacher-key'),
      labelsKey: str('labels-key'),
      ignoreIndex,
      shard,
      temperature,
      alpha,
      ...divergence,
      temperatureScaling: values['no-temperature-scaling'] !== true,
      perSample,
      threads,
      chunkRows,
      signal: controller.signal,
      onStart: ({ rows }) => {
        progress.bar = new Bar(io.stderr, rows);
      },
      onProgress: (done) => progress.bar?.update(done),
    });
    progress.bar?.clear();
    if (values.json) {
      const maxRssBytes = peakRssBytes();
      io.stdout.write(`${toJsonText(toJson(summary, maxRssBytes))}\n`);
    } else {
      const width = io.stdout.isTTY ? io.stdout.columns || 80 : 80;
      io.stdout.write(formatText(summary, width));
    }
    return EXIT_OK;
  } finally {
    progress.bar?.clear();
    // Once stopping, the handlers stay until the process exits: a second signal arriving after the run
    // has wound down still leaves with the run's exit code instead of killing the process.
    if (!stopping) for (const s of STOP_SIGNALS) process.removeListener(s, onSignal);
  }
}

async function runMerge(argv: string[], io: Io): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: true,
      options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    }));
  } catch (err) {
    throw new UsageError(`merge: ${parseArgsMessage(err)} (see kdloss merge --help)`);
  }
  if (values.help) {
    io.stdout.write(MERGE_USAGE);
    return EXIT_OK;
  }
  if (positionals.length === 0) throw new UsageError('merge: give the --json reports of the shards (see kdloss merge --help)');
  const { mergeReports, readReport } = await import('./merge');
  const { formatText, toJson } = await import('./report');
  const { toJsonText } = await import('../util/json');
  const reports = [];
  for (const file of positionals) reports.push(await readReport(file));
  const summary = mergeReports(reports);
  if (values.json) {
    io.stdout.write(`${toJsonText(toJson(summary, peakRssBytes()))}\n`);
  } else {
    const width = io.stdout.isTTY ? io.stdout.columns || 80 : 80;
    io.stdout.write(formatText(summary, width));
  }
  return EXIT_OK;
}

async function runBench(argv: string[]): Promise<number> {
  let bench: { main(argv: string[]): Promise<number> };
  try {
    bench = await import('../bench/main');
  } catch {
    throw new CliError('bench: the benchmark is not available in this build');
  }
  return bench.main(argv);
}

/**
 * Runs `kdloss` with the arguments after the program name and returns the exit code. Errors are
 * reported on `io.stderr` as one line.
 */
export async function run(argv: string[], io: Io = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case undefined:
        io.stderr.write(USAGE);
        return EXIT_INPUT;
      case '-h':
      case '--help':
      case 'help':
        if (command === 'help' && rest[0] === 'eval') io.stdout.write(EVAL_USAGE);
        else if (command === 'help' && rest[0] === 'merge') io.stdout.write(MERGE_USAGE);
        else if (command === 'help' && rest[0] === 'bench') return await runBench(['--help']);
        else io.stdout.write(USAGE);
        return EXIT_OK;
      case '-v':
      case '--version':
        io.stdout.write(`kdloss ${packageVersion()}\n`);
        return EXIT_OK;
      case 'eval':
        return await runEval(rest, io);
      case 'merge':
        return await runMerge(rest, io);
      case 'bench':
        return await runBench(rest);
      default:
        throw new UsageError(
          command.startsWith('-') ? `unknown option '${command}' (see kdloss --help)` : `unknown command '${command}' (see kdloss --help)`,
        );
    }
  } catch (err) {
    // One line, whatever the message holds (file names and header text are the user's): escaped.
    const say = (msg: string): void => {
      io.stderr.write(`kdloss: ${escapeText(msg)}\n`);
    };
    if (err instanceof CliError) {
      say(err.message);
      return err.exitCode;
    }
    const code = (err as { code?: unknown })?.code;
    if (typeof code === 'string' && code.startsWith('ERR_KD_')) {
      // A library error (ConfigError, ShapeError, InputError, NativeError): bad input or setup.
      say(firstLine((err as Error).message));
      return EXIT_INPUT;
    }
    if (process.env.KDLOSS_DEBUG) io.stderr.write(`${(err as Error)?.stack ?? String(err)}\n`);
    say(`internal error: ${firstLine(String((err as Error)?.message ?? err))}${process.env.KDLOSS_DEBUG ? '' : ' (KDLOSS_DEBUG=1 shows the stack)'}`);
    return EXIT_INTERNAL;
  }
}

/** The process entry point (bin/kdloss.js): runs {@link run} on process.argv and sets the exit code. */
export function cli(): void {
  // `kdloss eval ... | head`: a closed pipe is not an error. Any other failure to write the report
  // (a full disk, /dev/full) is reported on one line like a failed --per-sample write.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? EXIT_OK);
    process.stderr.write(`kdloss: cannot write to standard output: ${fsProblem(err)}\n`);
    process.exit(EXIT_INPUT);
  });
  void run(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
    // After Ctrl-C, do not wait for the cancelled computation to wind down.
    if (STOP_SIGNALS.some((s) => signalExitCode(s) === code)) process.exit(code);
  });
}

if (require.main === module) cli();

/**
 * This process's peak resident set size. On Linux, VmHWM of /proc/self/status: getrusage's maxRSS
 * survives execve, so a child spawned by a large parent would report the parent's size.
 */
function peakRssBytes(): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS * 1024;
}
