/**
 * `npm run bench`: measures everything, prints the table, writes bench/results/latest.json and a
 * timestamped copy.
 *
 * Flags: --quick (short time boxes), --filter=a,b (case ids containing a or b), --variants=avx2,scalar,
 * --no-js, --verbose, --out=DIR, --no-write, --json (print the JSON instead of the table).
 * @module
 */
import { formatResults } from './format';
import { runBenchmarks, writeResults } from './index';
import type { BenchOptions } from './types';

function parseArgs(argv: string[]): { options: BenchOptions; out?: string; write: boolean; json: boolean } {
  const options: BenchOptions = {};
  let out: string | undefined;
  let write = true;
  let json = false;
  for (const arg of argv) {
    const [k, v] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, ''];
    const list = (): string[] => v.split(',').map((s) => s.trim()).filter((s) => s !== '');
    if (k === '--quick') options.quick = true;
    else if (k === '--filter') options.filter = list();
    else if (k === '--variants') options.variants = list();
    else if (k === '--no-js') options.js = false;
    else if (k === '--verbose') options.verbose = true;
    else if (k === '--out') out = v;
    else if (k === '--no-write') write = false;
    else if (k === '--json') json = true;
    else throw new Error(`unknown argument ${arg}`);
  }
  return { options, out, write, json };
}

/** Entry point of `npm run bench`; returns the process exit code. */
export async function main(argv: string[] = process.argv.slice(2)): Promise<number> {
  const { options, out, write, json } = parseArgs(argv);
  const results = await runBenchmarks(options);
  process.stdout.write(`${json ? JSON.stringify(results, null, 2) : formatResults(results)}\n`);
  if (write) {
    const files = writeResults(results, out);
    process.stderr.write(`[bench] results written to ${files.join(' and ')}\n`);
  }
  return results.variants.length > 0 ? 0 : 1;
}

if (require.main === module) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (err: Error) => {
      process.stderr.write(`bench: ${err.stack ?? err.message}\n`);
      process.exitCode = 1;
    },
  );
}
