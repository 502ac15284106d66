/**
 * `kdloss bench` and `npm run bench`: measures everything, prints the report, and writes latest.json
 * and the chart latest.svg into ./kdloss-bench/ (or --out). A user command: it writes nothing inside
 * the installed package, and reports the figures against this machine's own limits; the project's
 * performance targets only with --targets (contributors).
 *
 * A bad command line (unknown flag, missing value, unknown variant, a filter that matches no case)
 * throws a {@link UsageError}: `kdloss` reports it on one line with exit code 2, and so does
 * `node dist/bench/main.js`.
 * @module
 */
import { parseArgs } from 'util';
import * as fs from 'fs';
import { CliError, fileKind, fsProblem, UsageError } from '../util/errors';
import { toJsonText } from '../util/json';
import { escapeText, parseArgsMessage } from '../util/text';
import { selectCases, selectThreadCases } from './cases';
import { formatResults } from './format';
import { defaultResultsDir, runBenchmarks, writeResults } from './index';
import type { BenchOptions } from './types';

/** Native kernel variants a build may contain. */
const KNOWN_VARIANTS = ['avx512', 'avx2', 'neon', 'scalar'];

export const BENCH_USAGE = `Usage: kdloss bench [options]

Measures the loss kernels on this machine: every benchmark case on each kernel variant this build
contains and this CPU supports (one child process each) and on the pure TypeScript backend. The
report puts each figure against this machine's own limits, measured in the same run: its exp rate and
its memory bandwidth (the roofline column: the time the case would take at the limit that binds it,
over the time it took). Writes latest.json and the chart latest.svg (throughput against input size
per variant, with the roofline) into ./kdloss-bench/, replacing the previous run's. Takes about two
minutes; the numbers depend on the machine's load.

Options:
  --quick              short time boxes (a smoke run; the numbers are noisier)
  --filter=A,B         only cases whose id contains A or B, e.g. 4096x1000, attention, async
  --variants=V,W       only these native variants (${KNOWN_VARIANTS.join(', ')}); the first one also runs
                       the async thread-scaling cases
  --no-js              skip the js backend (no 'x js' column)
  --verbose            per-case progress on stderr
  --out=DIR            write the results into DIR instead of ./kdloss-bench
  --no-write           write nothing
  --json               print the results as JSON instead of the report
  --targets            also evaluate the project's performance targets (for kdloss contributors: goals
                       for the machine the kernels are developed on, listed in bench/README.md)
  -h, --help           show this help
`;

interface Parsed {
  options: BenchOptions;
  out?: string;
  write: boolean;
  json: boolean;
  help: boolean;
}

/** A comma-separated flag value; an empty list is a usage error. */
function list(name: string, v: string): string[] {
  const xs = v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (xs.length === 0) throw new UsageError(`bench: --${name}: expected a comma-separated list, got '${v}'`);
  return xs;
}

/** Parses the bench command line; throws a {@link UsageError} on anything it does not know. */
export function parseBenchArgs(argv: string[]): Parsed {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        quick: { type: 'boolean' },
        filter: { type: 'string' },
        variants: { type: 'string' },
        'no-js': { type: 'boolean' },
        verbose: { type: 'boolean' },
        out: { type: 'string' },
        'no-write': { type: 'boolean' },
        json: { type: 'boolean' },
        targets: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new UsageError(`bench: ${parseArgsMessage(err)} (see kdloss bench --help)`);
  }
  const options: BenchOptions = {};
  if (values.quick) options.quick = true;
  if (values['no-js']) options.js = false;
  if (values.verbose) options.verbose = true;
  if (values.targets) options.targets = true;
  if (typeof values.filter === 'string') {
    options.filter = list('filter', values.filter);
    if (selectCases(options.filter).length === 0 && selectThreadCases(options.filter).length === 0) {
      throw new UsageError(`bench: --filter=${values.filter} matches no case (case ids look like 'kd 4096x1000 onehot float32')`);
    }
  }
  if (typeof values.variants === 'string') {
    options.variants = list('variants', values.variants);
    for (const v of options.variants) {
      if (!KNOWN_VARIANTS.includes(v)) {
        throw new UsageError(
          `bench: --variants: unknown variant '${v}' (expected ${KNOWN_VARIANTS.join(', ')}${v === 'js' ? '; the js backend runs unless --no-js' : ''})`,
        );
      }
    }
  }
  let out: string | undefined;
  if (typeof values.out === 'string') {
    if (values.out === '') throw new UsageError("bench: --out: expected a directory, got ''");
    out = values.out;
  }
  if (out !== undefined && values['no-write']) throw new UsageError('bench: --out and --no-write contradict each other');
  return { options, out, write: !values['no-write'], json: values.json === true, help: values.help === true };
}

/** Entry point of `kdloss bench` and `npm run bench`; returns the process exit code. */
export async function main(argv: string[] = process.argv.slice(2)): Promise<number> {
  const { options, out, write, json, help } = parseBenchArgs(argv);
  if (help) {
    process.stdout.write(BENCH_USAGE);
    return 0;
  }
  const dir = out ?? defaultResultsDir();
  // The output directory is made before the run: one that cannot be is reported at once, not after it.
  if (write) {
    const st = fs.statSync(dir, { throwIfNoEntry: false });
    if (st && !st.isDirectory()) throw new CliError(`bench: cannot write into ${dir}: not a directory (${fileKind(st)})`);
    try {
      fs.mkdirSync(dir, { recursive: true });
    } catch (err) {
      throw new CliError(`bench: cannot write into ${dir}: ${fsProblem(err)}`);
    }
  }
  const results = await runBenchmarks(options);
  process.stdout.write(`${json ? toJsonText(results) : formatResults(results)}\n`);
  if (write) {
    let files: string[];
    try {
      files = writeResults(results, dir);
    } catch (err) {
      throw new CliError(`bench: cannot write the results into ${dir}: ${fsProblem(err)}`);
    }
    process.stderr.write(`[bench] results written to ${escapeText(files.join(', '))}\n`);
  }
  return results.variants.length > 0 ? 0 : 1;
}

if (require.main === module) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (err: Error) => {
      if (err instanceof CliError) {
        process.stderr.write(`${escapeText(err.message)}\n`);
        process.exitCode = err.exitCode;
      } else {
        process.stderr.write(`bench: ${err.stack ?? err.message}\n`);
        process.exitCode = 1;
      }
    },
  );
}
