#!/usr/bin/env node
// Long runs of the differential fuzzer (test/helpers/fuzz-*.ts; test/fuzz.test.ts runs a few thousand
// cases in the suite). Runs the cases once per kernel variant this machine supports, each in a child
// process with KDLOSS_ISA set, and prints the first failing case as a reproduction: the replay command
// (seed, case index, variant), the case's options, what disagreed, and for small cases a
// self-contained script.
//
//   node tools/fuzz.js [--cases N] [--seed S] [--start I] [--isa scalar,avx2,...] [--keep-going]
//                      [--no-known] [--parallel]
//   node tools/fuzz.js --seed S --case I [--isa V]      replay one case, printing every check
//
// Needs the compiled library and tests (`npm run pretest`, or `npx tsc -p tsconfig.json && npx tsc -p
// test/tsconfig.json`) and the addon (build/ or KDLOSS_ADDON). Exit code 0 when every case passed, 1
// when one failed, 2 for a usage error.
'use strict';
const { spawn } = require('child_process');
const path = require('path');

const ROOT = path.join(__dirname, '..');
const HELPERS = path.join(ROOT, 'dist-test', 'test', 'helpers');

function usage(msg) {
  if (msg) console.error(`fuzz: ${msg}`);
  console.error(
    'usage: node tools/fuzz.js [--cases N] [--seed S] [--start I] [--isa a,b] [--keep-going] [--no-known] [--parallel]\n' +
      '       node tools/fuzz.js --seed S --case I [--isa V]',
  );
  process.exit(2);
}

function parseArgs(argv) {
  const o = { cases: 10000, seed: Date.now() % 1000000, start: 0, isa: null, keepGoing: false, known: true, parallel: false };
  o.caseIndex = null;
  o.worker = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = () => {
      const v = Number(argv[++i]);
      if (!Number.isSafeInteger(v) || v < 0) usage(`${a}: expected a non-negative integer, got ${argv[i]}`);
      return v;
    };
    if (a === '--cases') o.cases = num();
    else if (a === '--seed') o.seed = num();
    else if (a === '--start') o.start = num();
    else if (a === '--case') o.caseIndex = num();
    else if (a === '--isa') o.isa = (argv[++i] || usage('--isa: expected a list')).split(',');
    else if (a === '--keep-going') o.keepGoing = true;
    else if (a === '--no-known') o.known = false;
    else if (a === '--parallel') o.parallel = true;
    else if (a === '--worker') o.worker = true;
    else if (a === '--help' || a === '-h') usage();
    else usage(`unknown argument ${a}`);
  }
  return o;
}

function load() {
  try {
    return {
      kd: require(ROOT),
      gen: require(path.join(HELPERS, 'fuzz-gen.js')),
      driver: require(path.join(HELPERS, 'fuzz-driver.js')),
      repro: require(path.join(HELPERS, 'fuzz-repro.js')),
    };
  } catch (err) {
    console.error(`fuzz: cannot load the compiled library or fuzz helpers (${err.message.split('\n')[0]})`);
    console.error('fuzz: build them first: npm run pretest (or npx tsc -p tsconfig.json && npx tsc -p test/tsconfig.json)');
    process.exit(2);
  }
}

/** The variants this machine can run (a variant this build lacks or this CPU cannot run is left out). */
function supportedVariants(kd) {
  const caps = kd.capabilities();
  if (caps === null) {
    console.error(`fuzz: the native addon is not loaded: ${kd.nativeLoadError()?.message}`);
    process.exit(2);
  }
  return caps.compiled.filter((v) => v === 'scalar' || caps[v] === true).reverse();
}

// ---- worker: runs cases on the variant it was started with; one JSON line per event -------------

async function worker(o) {
  const { kd, gen, driver, repro } = load();
  const emit = (e) => process.stdout.write(`${JSON.stringify(e)}\n`);
  const known = {};
  let failed = 0;
  let last = Date.now();
  const first = o.caseIndex ?? o.start;
  const end = o.caseIndex !== null ? first + 1 : o.start + o.cases;
  for (let i = first; i < end; i++) {
    const c = gen.makeCase(o.seed, i);
    const report = await driver.checkCase(c, { known: o.known });
    for (const issue of new Set(report.known.flatMap((k) => k.issues))) {
      const key = `${issueName(issue)}: ${issue.title}`;
      known[key] = (known[key] || 0) + 1;
    }
    if (o.caseIndex !== null) {
      emit({ type: 'replay', text: replayText(c, report, kd.isa(), repro) });
    }
    if (report.failures.length > 0) {
      failed++;
      emit({ type: 'failure', index: i, text: repro.formatFailure(c, report, kd.isa(), 4096) });
      if (!o.keepGoing) {
        emit({ type: 'done', done: i - first + 1, failed, known });
        return;
      }
    }
    if (Date.now() - last > 30000) {
      last = Date.now();
      emit({ type: 'progress', done: i - first + 1, failed });
    }
  }
  emit({ type: 'done', done: end - first, failed, known });
}

function issueName(issue) {
  return issue.item === 'found' ? 'found by the fuzzer' : `issue 14 item ${issue.item}`;
}

function replayText(c, report, isa, repro) {
  const lines = [`case ${c.index} of seed ${c.seed} on ${isa}: ${report.failures.length} failing check(s), ${report.known.length} excused`];
  lines.push(`  spec: ${JSON.stringify(c.spec)}`);
  for (const d of report.failures) lines.push(`  FAIL [${d.check}] ${d.pair}: ${d.message}`);
  for (const k of report.known) {
    const d = k.discrepancy;
    lines.push(`  known (${k.issues.map(issueName).join(', ')}) [${d.check}] ${d.pair}: ${d.message}`);
  }
  const s = repro.snippet(c, 4096);
  if (s !== null) lines.push('  self-contained reproduction:', ...s.split('\n').map((l) => `    ${l}`));
  return lines.join('\n');
}

// ---- parent: one worker per variant ---------------------------------------------------------------

function runWorker(o, isa, onEvent) {
  const args = [__filename, '--worker', '--seed', String(o.seed), '--start', String(o.start), '--cases', String(o.cases)];
  if (o.caseIndex !== null) args.push('--case', String(o.caseIndex));
  if (o.keepGoing) args.push('--keep-going');
  if (!o.known) args.push('--no-known');
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { env: { ...process.env, KDLOSS_ISA: isa }, stdio: ['ignore', 'pipe', 'inherit'] });
    let buf = '';
    let done = null;
    child.stdout.on('data', (chunk) => {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let e;
        try {
          e = JSON.parse(line);
        } catch {
          process.stdout.write(`[${isa}] ${line}\n`);
          continue;
        }
        if (e.type === 'done') done = e;
        onEvent(isa, e);
      }
    });
    child.on('close', (code, signal) => resolve({ isa, code, signal, done }));
  });
}

async function parent(o) {
  const { kd } = load();
  const supported = supportedVariants(kd);
  const variants = o.isa ?? supported;
  for (const v of variants) if (!supported.includes(v)) usage(`--isa ${v}: not supported here (supported: ${supported.join(', ')})`);
  const what = o.caseIndex !== null ? `case ${o.caseIndex}` : `cases ${o.start}..${o.start + o.cases - 1}`;
  console.log(`fuzz: seed ${o.seed}, ${what}, variants ${variants.join(', ')}${o.known ? '' : ', no known issues excused'}`);
  const t0 = Date.now();
  const failures = [];
  const onEvent = (isa, e) => {
    if (e.type === 'progress') console.log(`  [${isa}] ${e.done} cases, ${e.failed} failing (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
    else if (e.type === 'replay') console.log(e.text);
    else if (e.type === 'failure') failures.push({ isa, index: e.index, text: e.text });
  };
  const results = o.parallel
    ? await Promise.all(variants.map((v) => runWorker(o, v, onEvent)))
    : await variants.reduce(async (acc, v) => [...(await acc), await runWorker(o, v, onEvent)], Promise.resolve([]));
  let ok = true;
  for (const r of results) {
    if (r.done === null) {
      ok = false;
      console.log(`  [${r.isa}] worker ended without finishing (exit code ${r.code}, signal ${r.signal})`);
      continue;
    }
    console.log(`  [${r.isa}] ${r.done.done} cases, ${r.done.failed} failing`);
    for (const [k, n] of Object.entries(r.done.known)) console.log(`      excused in ${n} case(s): ${k}`);
    if (r.done.failed > 0 || r.code !== 0) ok = false;
  }
  console.log(`fuzz: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  if (failures.length > 0) {
    failures.sort((a, b) => a.index - b.index);
    console.log(`\nfirst failing case (${failures.length} reported):\n${failures[0].text}`);
  }
  process.exit(ok ? 0 : 1);
}

const opts = parseArgs(process.argv.slice(2));
(opts.worker ? worker(opts) : parent(opts)).catch((err) => {
  console.error(err);
  process.exit(1);
});
