// The benchmark's command line and chart, without depending on any timing: the SVG generator on a
// synthetic results object (well-formed standalone XML, one line per variant, the legend, the
// roofline), the argument parser (unknown flags are usage errors, exit code 2 through `kdloss`), and
// tiny `kdloss bench --quick` runs (a single 2x3 case) that must exit with 0, print the report, write
// the JSON results and the chart into ./kdloss-bench/ of the current directory (or --out) and nothing
// inside the package, and show the project's targets only with --targets.
import { expect } from 'chai';
import { execFile, execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { BenchResults, CaseResult, Timing } from '../dist/bench/types';
import { Rng } from './helpers/random';

const ROOT = path.resolve(__dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'kdloss.js');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const svg = require(path.join(ROOT, 'dist', 'bench', 'svg.js')) as typeof import('../dist/bench/svg');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const benchMain = require(path.join(ROOT, 'dist', 'bench', 'main.js')) as typeof import('../dist/bench/main');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const format = require(path.join(ROOT, 'dist', 'bench', 'format.js')) as typeof import('../dist/bench/format');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const scaling = require(path.join(ROOT, 'dist', 'bench', 'scaling.js')) as typeof import('../dist/bench/scaling');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const cases = require(path.join(ROOT, 'dist', 'bench', 'cases.js')) as typeof import('../dist/bench/cases');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const libRng = require(path.join(ROOT, 'dist', 'util', 'rng.js')) as typeof import('../dist/util/rng');

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runCli(args: string[], cwd = ROOT): Promise<CliResult> {
  return new Promise((resolve) => {
    const env = { ...process.env };
    delete env.KDLOSS_ISA;
    delete env.KDLOSS_BACKEND;
    execFile(process.execPath, [BIN, ...args], { env, cwd, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const e = err as (Error & { code?: number | string }) | null;
      resolve({ code: e === null ? 0 : typeof e.code === 'number' ? e.code : null, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/**
 * A minimal XML well-formedness check: one root element, every tag closed in order, attributes
 * quoted, no raw '<' or stray '&' in text. Returns the element names in document order.
 */
function checkXml(doc: string): string[] {
  const names: string[] = [];
  const stack: string[] = [];
  let rest = doc.replace(/^<\?xml[^?]*\?>\s*/, '');
  let roots = 0;
  const textOk = (t: string): void => {
    expect(t, 'raw < in text').not.to.include('<');
    expect(/&(?!(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/.test(t), `stray & in ${JSON.stringify(t.slice(0, 80))}`).to.equal(false);
  };
  while (rest.length > 0) {
    const i = rest.indexOf('<');
    if (i < 0) {
      expect(rest.trim(), 'text after the root element').to.equal('');
      break;
    }
    textOk(rest.slice(0, i));
    if (stack.length === 0) expect(rest.slice(0, i).trim(), 'text outside the root element').to.equal('');
    rest = rest.slice(i);
    if (rest.startsWith('<!--')) {
      const j = rest.indexOf('-->');
      expect(j, 'unterminated comment').to.be.greaterThan(0);
      rest = rest.slice(j + 3);
      continue;
    }
    const m = /^<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+="[^"<]*")*)\s*(\/?)>/.exec(rest);
    expect(m, `malformed tag at ${JSON.stringify(rest.slice(0, 80))}`).to.not.equal(null);
    const [whole, close, name, attrs, selfClose] = m!;
    textOk(attrs.replace(/="[^"]*"/g, '=""'));
    for (const a of attrs.matchAll(/="([^"]*)"/g)) textOk(a[1]);
    if (close) {
      expect(stack.pop(), `closing </${name}>`).to.equal(name);
    } else {
      if (stack.length === 0) roots++;
      names.push(name);
      if (!selfClose) stack.push(name);
    }
    rest = rest.slice(whole.length);
  }
  expect(stack, 'unclosed elements').to.deep.equal([]);
  expect(roots, 'root elements').to.equal(1);
  return names;
}

const timing = (ns: number): Timing => ({ medianNs: ns, minNs: ns * 0.9, samples: 20, batch: 1 });

/** A results object with three KD float32 one-hot sizes on avx2, scalar and js, plus one other case. */
function synthetic(): BenchResults {
  const variants = ['avx2', 'scalar', 'js'];
  const speed: Record<string, number> = { avx2: 1e9, scalar: 2e8, js: 2e7 };
  const shapes: [number, number][] = [
    [2, 3],
    [64, 10],
    [4096, 1000],
  ];
  const cases: CaseResult[] = shapes.map(([rows, cols]) => {
    const elements = rows * cols;
    const bytes = 3 * elements * 4;
    const results: CaseResult['results'] = {};
    for (const v of variants) {
      const ns = 1000 + (elements / speed[v]) * 1e9;
      results[v] = {
        ...timing(ns),
        roofline: v === 'js' ? null : { memNs: 500 + bytes / 20, expNs: (3 * elements) / 3, ns: 0, bound: 'exp', probeGBs: 20, expPerSec: 3e9 },
        elementsPerSec: elements / (ns * 1e-9),
        vsJs: null,
        vsForward: null,
        rooflineFraction: null,
        machineRooflineFraction: null,
      };
    }
    return {
      id: `kd ${rows}x${cols} onehot float32`,
      label: `kd ${rows}x${cols} onehot`,
      kind: 'kd',
      dtype: 'float32',
      rows,
      cols,
      layers: 1,
      targets: 'onehot',
      grad: false,
      forwardId: null,
      elements,
      bytes,
      expsPerElement: 3,
      results,
    } satisfies CaseResult;
  });
  // Not part of the chart's series: must not add points.
  cases.push({ ...cases[2], id: 'kd 4096x1000 onehot float64', dtype: 'float64' });
  return {
    schema: 'kdloss-bench/2',
    date: '2026-01-02T03:04:05.678Z',
    machine: {
      commit: 'abc123 <&> "test"',
      addonBuilt: null,
      cpu: 'Test CPU <model> & co',
      cores: 2,
      memoryGB: 8,
      loadAverage: [0.5, 0.25, 0.1],
      node: 'v20.0.0',
      platform: 'linux',
      arch: 'x64',
      kdloss: '0.0.0',
      capabilities: { avx2: true, avx512: false, neon: false, compiled: ['avx2', 'scalar'] },
    },
    policies: {} as BenchResults['policies'],
    notes: [],
    variants,
    defaultVariant: 'avx2',
    errors: {},
    probes: {
      avx2: { expPerSec: { float32: 3e9, float64: 1e9 }, bandwidthGBs: { float32: 20, float64: 20 }, probeBytes: { float32: 1, float64: 1 } },
      scalar: { expPerSec: { float32: 5e8, float64: 3e8 }, bandwidthGBs: { float32: 8, float64: 8 }, probeBytes: { float32: 1, float64: 1 } },
    },
    api: { avx2: timing(3000), scalar: timing(4000), js: timing(20000) },
    asyncApi: { avx2: timing(20000), scalar: timing(21000), js: timing(30000) },
    cases,
    threads: {
      variant: 'avx2',
      counts: [1, 2],
      cases: [
        {
          id: 'kd 4096x1000 onehot float32 async',
          label: 'kd 4096x1000 onehot',
          syncId: 'kd 4096x1000 onehot float32',
          dtype: 'float32',
          rows: 4096,
          cols: 1000,
          targets: 'onehot',
          elements: 4096000,
          results: { '1': { ...timing(4e6), elementsPerSec: 1.024e9 }, '2': { ...timing(2.2e6), elementsPerSec: 1.86e9 } },
          speedup: 4 / 2.2,
          syncMedianNs: 3.9e6,
        },
      ],
      machineScaling: 1.85,
    },
    checks: [],
    elapsedMs: 1234,
  };
}

describe('benchmark chart (svg.ts)', () => {
  it('renders a well-formed standalone SVG with one line per variant, the legend and the roofline', () => {
    const doc = svg.renderChart(synthetic());
    expect(doc.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n<svg ')).to.equal(true);
    expect(doc).to.include('xmlns="http://www.w3.org/2000/svg"');
    const names = checkXml(doc);
    expect(names[0]).to.equal('svg');
    // Standalone: no scripts, links, external images or fonts.
    expect(doc).not.to.match(/<script|href=|<image|@import|url\(/i);
    expect(doc).not.to.match(/NaN|Infinity|undefined/);
    // One solid polyline per variant (grouped by series name) with a point per size.
    for (const v of ['avx2', 'scalar', 'js (TypeScript backend)']) {
      const g = new RegExp(`<g class="series" data-name="${v.replace(/[()]/g, '\\$&')}">\\s*<polyline points="([^"]+)"`).exec(doc);
      expect(g, `series ${v}`).to.not.equal(null);
      expect(g![1].trim().split(/\s+/)).to.have.length(3);
      expect(doc, `legend ${v}`).to.include(`>${v}</text>`);
    }
    // The roofline (dashed) and the 2-thread markers.
    expect(doc).to.include('>memory bound (avx2)</text>');
    expect(doc).to.include('>exp bound (avx2)</text>');
    expect(doc.match(/stroke-dasharray/g)?.length ?? 0).to.be.at.least(2);
    expect(doc).to.include('>avx2, 2 threads (async)</text>');
    // Axis labels, title with the machine (escaped), tick labels.
    expect(doc).to.include('throughput: elements/s, log scale');
    expect(doc).to.include('input size: student elements per call');
    expect(doc).to.include('Test CPU &lt;model&gt; &amp; co, 2 cores');
    expect(doc).to.include('>1G/s</text>');
    expect(doc).to.include('>1k</text>');
  });

  it('renders a valid (empty) chart from results without any KD float32 one-hot case', () => {
    const r = synthetic();
    r.cases = r.cases.filter((c) => c.dtype === 'float64');
    r.threads = { variant: null, counts: [1, 2], cases: [], machineScaling: null };
    const doc = svg.renderChart(r);
    checkXml(doc);
    expect(doc).to.include('no KD float32 one-hot case');
    expect(doc).not.to.match(/NaN|Infinity/);
  });

  it('formats axis numbers in short SI notation', () => {
    expect(svg.si(6)).to.equal('6');
    expect(svg.si(640)).to.equal('640');
    expect(svg.si(1000)).to.equal('1k');
    expect(svg.si(4.096e6)).to.equal('4.1M');
    expect(svg.si(1e10)).to.equal('10G');
    expect(svg.xmlEscape(`a<b>&"c'`)).to.equal('a&lt;b&gt;&amp;&quot;c&apos;');
  });
});

describe('benchmark inputs', () => {
  it("come from the tests' seeded generator (xorshift32: seed 1 gives 270369 / 2^32 first)", () => {
    expect(new libRng.Rng(1).uniform()).to.equal(270369 / 2 ** 32);
    expect(new libRng.Rng(0).uniform(), 'seed 0 is seed 1').to.equal(270369 / 2 ** 32);
    expect(new Rng(7)).to.be.instanceOf(libRng.Rng);
    const r = new Rng(1234);
    const expected = Float32Array.from({ length: 100 }, () => r.normal(3));
    expect(cases.randomArray('float32', 100, 3, 1234)).to.deep.equal(expected);
    const c = new Rng(99);
    expect(cases.randomClasses(50, 7, 99)).to.deep.equal(Int32Array.from({ length: 50 }, () => c.int(7)));
  });
});

describe('benchmark thread scaling', () => {
  it("prints each case's speedup next to the machine's own scaling", () => {
    const text = format.formatResults(synthetic());
    expect(text).to.include('Async thread scaling on avx2');
    expect(text).to.match(/kd 4096x1000 onehot .* 1\.82x/);
    expect(text).to.include("vecmath('exp') on 2 worker threads at once runs 1.85x one worker's throughput");
  });

  it('measures the machine scaling on worker threads (a positive ratio, not a timing claim)', async function () {
    if (process.env.KDLOSS_BACKEND === 'js') this.skip();
    this.timeout(20000);
    const x = await scaling.machineScaling(2, 1, 50);
    expect(x).to.be.a('number');
    expect(x).to.be.greaterThan(0);
    expect(Number.isFinite(x)).to.equal(true);
  });

  it('leaves out rounds in which a worker got no time (a loaded machine): no NaN or infinite scaling', () => {
    // A one-worker window without a single call made the ratio infinite, an empty round NaN.
    expect(scaling.medianRatio([{ one: 0, all: 10 }, { one: 0, all: 0 }, { one: 100, all: 180 }])).to.equal(1.8);
    expect(scaling.medianRatio([{ one: 10, all: 19 }, { one: 10, all: 0 }, { one: 10, all: 18 }, { one: 10, all: 20 }])).to.equal(1.9);
    expect(scaling.medianRatio([{ one: 0, all: 5 }])).to.equal(null);
    expect(scaling.medianRatio([])).to.equal(null);
  });
});

describe('kdloss bench command line', () => {
  it('parses the known flags', () => {
    const p = benchMain.parseBenchArgs(['--quick', '--filter=2x3, attention', '--variants', 'avx2,scalar', '--no-js', '--json', '--out=x', '--targets']);
    expect(p.options).to.deep.equal({ quick: true, js: false, filter: ['2x3', 'attention'], variants: ['avx2', 'scalar'], targets: true });
    expect(benchMain.parseBenchArgs([]).options).to.deep.equal({});
    expect(p).to.include({ out: 'x', write: true, json: true, help: false });
    expect(benchMain.parseBenchArgs(['--no-write']).write).to.equal(false);
    expect(benchMain.parseBenchArgs(['-h']).help).to.equal(true);
  });

  for (const [args, pattern] of [
    [['--bogus'], /unknown option '--bogus'/i],
    [['--quick=yes'], /--quick/],
    [['stray'], /positional|unexpected argument/i],
    [['--filter'], /--filter/],
    [['--filter=,'], /expected a comma-separated list/],
    [['--filter=no-such-case'], /matches no case/],
    [['--variants=avx3'], /unknown variant 'avx3'/],
    [['--variants=js'], /--no-js/],
    [['--out=d', '--no-write'], /contradict/],
  ] as [string[], RegExp][]) {
    it(`rejects ${args.join(' ')} as a usage error`, () => {
      let err: unknown;
      try {
        benchMain.parseBenchArgs(args);
      } catch (e) {
        err = e;
      }
      expect(err, 'thrown').to.be.instanceOf(Error);
      expect((err as Error).name).to.equal('UsageError');
      expect((err as { exitCode: number }).exitCode).to.equal(2);
      expect((err as Error).message).to.match(pattern);
    });
  }

  it('exits with 2 and one line on stderr for an unknown flag', async () => {
    const r = await runCli(['bench', '--no-such-flag']);
    expect(r.code).to.equal(2);
    expect(r.stdout).to.equal('');
    expect(r.stderr.trim().split('\n')).to.have.length(1);
    expect(r.stderr).to.match(/^kdloss: bench: unknown option '--no-such-flag'/i);
  });

  it('refuses an --out that cannot be a directory before measuring anything (exit code 2, one line)', async function () {
    this.timeout(20000);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kdloss-bench-'));
    try {
      const file = path.join(dir, 'a-file');
      fs.writeFileSync(file, 'x');
      const r = await runCli(['bench', '--quick', '--filter=kd 2x3 onehot float32', `--out=${file}`]);
      expect(r.code, r.stderr).to.equal(2);
      expect(r.stdout).to.equal('');
      expect(r.stderr).to.match(/^kdloss: bench: cannot write into \S+a-file: not a directory \(a regular file\)\n$/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('prints its help with exit code 0', async () => {
    const r = await runCli(['bench', '--help']);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.include('Usage: kdloss bench');
    expect(r.stdout).to.include('./kdloss-bench/');
    expect(r.stdout).to.include('--targets');
    const viaHelp = await runCli(['help', 'bench']);
    expect(viaHelp.code, viaHelp.stderr).to.equal(0);
    expect(viaHelp.stdout).to.equal(r.stdout);
  });

  /** Files under `dir` modified at or after `since` (ms), skipping node_modules, .git and build directories. */
  function modifiedSince(dir: string, since: number): string[] {
    const out: string[] = [];
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) {
        if (!['node_modules', '.git'].includes(e.name) && !e.name.startsWith('build')) out.push(...modifiedSince(p, since));
      } else if (e.isFile() && fs.statSync(p).mtimeMs >= since) {
        out.push(path.relative(ROOT, p));
      }
    }
    return out;
  }

  it('runs a quick one-case benchmark as a user command: the report, and results in ./kdloss-bench/ only', async function () {
    this.timeout(60000);
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'kdloss-bench-'));
    const since = Date.now() - 1;
    try {
      const r = await runCli(['bench', '--quick', '--filter=kd 2x3 onehot float32'], cwd);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout).to.match(/^case\s+dtype\s+variant\s+median\s+elem\/s/m);
      expect(r.stdout).to.match(/^kd 2x3 onehot\s+float32\s+js\s/m);
      expect(r.stdout).to.include('Async latency, 64x10 float32 computeDistillationAsync');
      // The figures against this machine's limits; the project's targets only with --targets.
      expect(r.stdout).to.include("This machine's limits, measured in this run");
      expect(r.stdout).to.not.match(/Targets|MISS|\bgoal\b/);
      const dir = path.join(cwd, 'kdloss-bench');
      expect(fs.readdirSync(dir).sort()).to.deep.equal(['latest.json', 'latest.svg']);
      expect(r.stderr).to.include(`results written to ${path.join(dir, 'latest.json')}`);
      const results = JSON.parse(fs.readFileSync(path.join(dir, 'latest.json'), 'utf8')) as BenchResults;
      expect(results.schema).to.equal('kdloss-bench/2');
      expect(results.cases.map((c) => c.id)).to.deep.equal(['kd 2x3 onehot float32']);
      expect(results.variants).to.include('js');
      expect(results.checks).to.deep.equal([]);
      for (const v of results.variants) expect(results.asyncApi[v].medianNs, v).to.be.greaterThan(0);
      const doc = fs.readFileSync(path.join(dir, 'latest.svg'), 'utf8');
      checkXml(doc);
      for (const v of results.variants) expect(doc).to.include(`data-name="${v === 'js' ? 'js (TypeScript backend)' : v}"`);
      // Nothing written inside the package (bench/results/ included).
      expect(modifiedSince(ROOT, since), 'files written inside the package').to.deep.equal([]);
    } finally {
      fs.rmSync(cwd, { recursive: true, force: true });
    }
  });

  it('evaluates the project targets with --targets, into --out', async function () {
    this.timeout(60000);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kdloss-bench-'));
    try {
      const r = await runCli(['bench', '--quick', '--filter=kd 2x3 onehot float32', '--no-js', '--targets', `--out=${dir}`]);
      expect(r.code, r.stderr).to.equal(0);
      const results = JSON.parse(fs.readFileSync(path.join(dir, 'latest.json'), 'utf8')) as BenchResults;
      const native = results.variants.filter((v) => v !== 'js');
      if (native.length > 0) {
        expect(results.checks.length).to.be.greaterThan(0);
        expect(r.stdout).to.match(/^Targets \(/m);
        expect(r.stdout).to.match(/^target\s+goal\s/m);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('prints the targets table only for results that carry checks', () => {
    const r = synthetic();
    expect(format.formatResults(r)).to.not.include('Targets');
    r.checks = [{ name: 'KD float32 4096x1000 one-hot throughput (elem/s)', variant: 'avx2', value: 1e9, target: '>= 1.5e9', met: false }];
    const text = format.formatResults(r);
    expect(text).to.match(/^Targets \(/m);
    expect(text).to.match(/KD float32 4096x1000 one-hot throughput \(elem\/s\)\s+>= 1\.5e9\s+1\.00 G\/s MISS/);
  });

  it("records no commit for a package installed inside another project's git repository", function () {
    this.timeout(20000);
    const proj = fs.mkdtempSync(path.join(os.tmpdir(), 'kdloss-bench-proj-'));
    try {
      const git = (...args: string[]): void => {
        execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { cwd: proj, stdio: 'ignore' });
      };
      git('init', '-q');
      fs.writeFileSync(path.join(proj, 'x.txt'), 'x');
      git('add', 'x.txt');
      git('commit', '-q', '-m', 'x');
      const pkg = path.join(proj, 'node_modules', 'kdloss');
      fs.mkdirSync(pkg, { recursive: true });
      fs.cpSync(path.join(ROOT, 'dist'), path.join(pkg, 'dist'), { recursive: true });
      fs.copyFileSync(path.join(ROOT, 'package.json'), path.join(pkg, 'package.json'));
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const installed = require(path.join(pkg, 'dist', 'bench', 'index.js')) as typeof import('../dist/bench/index');
      expect(installed.machineInfo(null).commit).to.equal(null);
      // A checkout of kdloss itself does record it.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const own = require(path.join(ROOT, 'dist', 'bench', 'index.js')) as typeof import('../dist/bench/index');
      if (fs.existsSync(path.join(ROOT, '.git'))) expect(own.machineInfo(null).commit).to.match(/^[0-9a-f]{12}/);
    } finally {
      fs.rmSync(proj, { recursive: true, force: true });
    }
  });
});
