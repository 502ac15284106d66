#!/usr/bin/env node
// The package's npm "install" script.
//
// 1. A prebuilt binary for this platform (prebuilds/<platform>-<arch>/) that loads in a fresh node
//    process: use it, compile nothing.
// 2. Else (or with `npm install --build-from-source`): compile the addon with node-gyp.
// 3. If that fails (no python3, make or C++ compiler, as in slim server images), the install still
//    succeeds: kdloss then runs on its js backend and says so once when loaded. The reason is printed
//    here (npm shows it with --foreground-scripts) and recorded in build/install-error.txt, which the
//    load-time message quotes. KDLOSS_BACKEND=native makes the failed build fail the install instead.
//
// Only Node's own modules and node-gyp-build (a runtime dependency) are used: this runs in the
// user's project, where kdloss's devDependencies are not installed.
'use strict';
const { spawn, spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..');
const errorFile = path.join(root, 'build', 'install-error.txt');
const strict = process.env.KDLOSS_BACKEND === 'native';
const tag = 'kdloss install:';

/** The prebuilt binary node-gyp-build picks for this platform, if one is shipped and loads. */
function loadablePrebuild() {
  const probe =
    "const p = require('node-gyp-build').path(process.argv[1]); require(p); process.stdout.write(p);";
  const env = { ...process.env, PREBUILDS_ONLY: '1' };
  // The probe loads the addon only to see that it loads: no kernel choice of the user's applies.
  delete env.KDLOSS_ISA;
  delete env.KDLOSS_ADDON;
  const r = spawnSync(process.execPath, ['-e', probe, root], { cwd: root, env, encoding: 'utf8' });
  if (r.status === 0 && r.stdout) return { path: r.stdout, error: null };
  const lines = String(r.stderr || '').split('\n').map((l) => l.trim());
  const error = lines.find((l) => /^Error:/.test(l)) || lines.find((l) => l !== '') || `exit code ${r.status}`;
  return { path: null, error: error.replace(/^Error: /, '') };
}

/** How to run node-gyp: npm's own copy (npm names it in npm_config_node_gyp), a local one, or PATH. */
function nodeGyp() {
  const candidates = [process.env.npm_config_node_gyp];
  try {
    candidates.push(require.resolve('node-gyp/bin/node-gyp.js', { paths: [root] }));
  } catch {
    // not installed locally (the usual case for users): npm's copy or PATH
  }
  const script = candidates.find((c) => c && fs.existsSync(c));
  return script ? { cmd: process.execPath, args: [script] } : { cmd: 'node-gyp', args: [] };
}

/** The most telling line of a failed node-gyp run. */
function buildFailure(output, code) {
  const lines = output.split('\n').map((l) => l.replace(/\r$/, ''));
  const stack = lines.map((l) => /gyp ERR! stack Error: (.*)/.exec(l)).find(Boolean);
  const compiler = lines.find((l) => /(: error: |: fatal error: |No such file or directory|command not found)/.test(l));
  if (stack && /`make` failed/.test(stack[1]) && compiler) return `${stack[1]} (${compiler.trim()})`;
  if (stack) return stack[1];
  if (compiler) return compiler.trim();
  return `node-gyp exited with code ${code}`;
}

function record(reason) {
  try {
    fs.mkdirSync(path.dirname(errorFile), { recursive: true });
    fs.writeFileSync(errorFile, reason.replace(/\s+/g, ' ').trim() + '\n');
  } catch {
    // the load-time message then names the missing build without this detail
  }
}

function build(why) {
  const gyp = nodeGyp();
  const args = [...gyp.args, 'rebuild'];
  if (!process.env.JOBS && !process.env.npm_config_jobs) args.push('--jobs=max');
  process.stderr.write(`${tag} ${why}; compiling the addon with node-gyp (about two minutes)\n`);
  let output = '';
  let child;
  try {
    child = spawn(gyp.cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], shell: gyp.args.length === 0 });
  } catch (err) {
    return done(1, `could not start node-gyp: ${err.message}`);
  }
  const keep = (chunk, stream) => {
    stream.write(chunk);
    output += chunk;
    if (output.length > 1 << 20) output = output.slice(-(1 << 19));
  };
  child.stdout.on('data', (c) => keep(c.toString(), process.stderr));
  child.stderr.on('data', (c) => keep(c.toString(), process.stderr));
  child.on('error', (err) => done(1, `could not start node-gyp: ${err.message}`));
  child.on('close', (code) => done(code, code === 0 ? '' : buildFailure(output, code)));
}

let finished = false;
function done(code, reason) {
  if (finished) return;
  finished = true;
  if (code === 0) {
    process.stderr.write(`${tag} compiled build/Release/kdloss.node\n`);
    return;
  }
  record(reason);
  const platform = `${process.platform}-${process.arch}`;
  process.stderr.write(
    `${tag} could not compile the native addon: ${reason}\n` +
      `${tag} no prebuilt binary for ${platform} either, so kdloss will run on its js backend (same results, slower)\n` +
      `${tag} to fix: install python3, make and a C++17 compiler (e.g. apt-get install python3 make g++), then run 'npm rebuild kdloss'\n`,
  );
  if (strict) {
    process.stderr.write(`${tag} KDLOSS_BACKEND=native: failing the install\n`);
    process.exitCode = 1;
  }
}

function main() {
  fs.rmSync(errorFile, { force: true });
  if (process.env.npm_config_build_from_source === 'true') return build('--build-from-source');
  const prebuild = loadablePrebuild();
  if (prebuild.path) return; // nothing to do: the loader finds the same file
  build(`no usable prebuilt binary for ${process.platform}-${process.arch} (${prebuild.error})`);
}

main();
