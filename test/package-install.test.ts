// The npm tarball as a user gets it: packed, then installed into an empty project by an npm whose
// PATH has node, npm and a few basic utilities but no compiler, make or python (a slim server image).
// With the prebuilt binaries the addon loads and is the best variant for this CPU; without them the
// install still succeeds and kdloss runs on its js backend, saying so once. Also: the tarball's
// contents, import and require sharing one build, the types of both entries, and the linux-arm64
// prebuild (an aarch64 N-API module, loaded by an arm64 node under qemu when one is prepared).
//
// Needs `npm run prebuild` first (prebuilds/ for this platform and linux-arm64). Run with
// `npm run test:package`; not part of `npm test` (it installs from the registry's cache and takes a
// minute). KDLOSS_QEMU_NODE=DIR/sysroot (tools/arm64-node.sh) enables the qemu run; CI sets it.
import { expect } from 'chai';
import { type SpawnSyncReturns, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as kd from 'kdloss';

const ROOT = path.join(__dirname, '..', '..');
const PROBES = path.join(ROOT, 'test', 'package');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { losses } = require(path.join(PROBES, 'data.cjs')) as { losses: (k: typeof kd) => Losses };
const PLATFORM = `${process.platform}-${process.arch}`;
/** npm's CLI script: the one running us (npm run) or the one on PATH. */
const NPM_CLI = fs.realpathSync(
  process.env.npm_execpath || spawnSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).stdout.trim(),
);

type Case = { loss: number; soft: number; hard: number; gradAbsSum: number };
type Losses = Record<'float64' | 'float32', Case>;
interface Probe {
  backend: string;
  isa: string | null;
  capabilities: { avx2: boolean; avx512: boolean; neon: boolean; compiled: string[] } | null;
  loadError: { name: string; code: string; message: string } | null;
  losses: Partial<Record<'native' | 'js', Losses>>;
  workerBackend?: string;
}

let work = '';

/** A directory of symlinks to node, npm, npx and basic utilities: the PATH of a slim image. */
function slimPath(): string {
  const bin = path.join(work, 'slim-bin');
  fs.mkdirSync(bin);
  fs.symlinkSync(process.execPath, path.join(bin, 'node'));
  fs.symlinkSync(NPM_CLI, path.join(bin, 'npm'));
  fs.symlinkSync(path.join(path.dirname(NPM_CLI), 'npx-cli.js'), path.join(bin, 'npx'));
  for (const tool of ['sh', 'env', 'cat', 'ls', 'mkdir', 'rm', 'cp', 'mv', 'uname', 'tar', 'gzip']) {
    const found = ['/usr/bin', '/bin'].map((d) => path.join(d, tool)).find((p) => fs.existsSync(p));
    if (found) fs.symlinkSync(found, path.join(bin, tool));
  }
  return bin;
}

/** The environment of a user's shell on that image: nothing of this repository's npm run. */
function slimEnv(bin: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: bin, HOME: process.env.HOME ?? os.homedir(), LANG: 'C.UTF-8' };
  if (process.env.TMPDIR) env.TMPDIR = process.env.TMPDIR;
  return { ...env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false', ...extra };
}

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): SpawnSyncReturns<string> & { seconds: number } {
  const start = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', maxBuffer: 64 << 20 });
  return Object.assign(r, { seconds: Number(process.hrtime.bigint() - start) / 1e9 });
}

/** An empty project with the probes, and kdloss installed from `tarball` on the slim PATH. */
function install(name: string, tarball: string, bin: string) {
  const dir = path.join(work, name);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: `consumer-${name}`, private: true }));
  for (const f of fs.readdirSync(PROBES)) fs.copyFileSync(path.join(PROBES, f), path.join(dir, f));
  const r = run(path.join(bin, 'npm'), ['install', '--foreground-scripts', '--no-package-lock', tarball], dir, slimEnv(bin));
  console.log(`      [${name}] npm install: ${r.seconds.toFixed(1)} s, exit ${r.status}`);
  const installed = path.join(dir, 'node_modules', 'kdloss');
  return { dir, installed, result: r };
}

function probe(dir: string, bin: string, args: string[] = [], extra: Record<string, string> = {}) {
  const r = run(path.join(bin, 'node'), ['probe.cjs', ...args], dir, slimEnv(bin, extra));
  expect(r.status, r.stderr).to.equal(0);
  return { out: JSON.parse(r.stdout) as Probe, stderr: r.stderr };
}

function expectClose(actual: Losses, expected: Losses, rel64: number, rel32: number): void {
  for (const dtype of ['float64', 'float32'] as const) {
    const rel = dtype === 'float64' ? rel64 : rel32;
    for (const key of Object.keys(expected[dtype]) as (keyof Case)[]) {
      const e = expected[dtype][key];
      expect(actual[dtype][key], `${dtype} ${key}`).to.be.closeTo(e, rel * Math.max(1, Math.abs(e)));
    }
  }
}

/** The same losses computed in this process by this checkout's js backend. */
function jsHere(): Losses {
  const previous = kd.getBackend();
  kd.setBackend('js');
  try {
    return losses(kd);
  } finally {
    kd.setBackend(previous);
  }
}

/** The variant dispatch must pick on this CPU, from /proc/cpuinfo (not from the addon's own report). */
function bestVariant(compiled: string[]): string {
  const flags = new Set(
    (/^(flags|Features)\s*:(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[2] ?? '').trim().split(/\s+/),
  );
  const has = {
    avx512: ['avx512f', 'avx512dq', 'avx512bw', 'avx512vl'].every((f) => flags.has(f)),
    avx2: flags.has('avx2') && flags.has('fma'),
    neon: flags.has('asimd'),
  };
  return (['avx512', 'avx2', 'neon'] as const).find((v) => compiled.includes(v) && has[v]) ?? 'scalar';
}

function elfHeader(file: string): string {
  const r = spawnSync('readelf', ['-h', '--dyn-syms', '-W', file], { encoding: 'utf8' });
  expect(r.status, r.stderr).to.equal(0);
  return r.stdout;
}

describe('package: the npm tarball installed without a compiler', function () {
  this.timeout(900_000);
  let bin = '';
  let tarball = '';
  let bare = '';
  let packed: { size: number; unpackedSize: number; files: { path: string }[] } = { size: 0, unpackedSize: 0, files: [] };

  before(() => {
    for (const p of [PLATFORM, 'linux-arm64']) {
      const dir = path.join(ROOT, 'prebuilds', p);
      if (!fs.existsSync(dir) || !fs.readdirSync(dir).some((f) => f.endsWith('.node'))) {
        throw new Error(`no prebuild in prebuilds/${p}: run 'npm run prebuild' first`);
      }
    }
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'kdloss-package-'));
    const r = run(process.execPath, [NPM_CLI, 'pack', '--ignore-scripts', '--json', '--pack-destination', work], ROOT, {
      ...process.env,
      npm_config_loglevel: 'error',
    });
    expect(r.status, r.stderr).to.equal(0);
    packed = JSON.parse(r.stdout)[0];
    tarball = path.join(work, (packed as unknown as { filename: string }).filename);
    console.log(`      tarball: ${(packed.size / 1024).toFixed(0)} kB packed, ${(packed.unpackedSize / 1024).toFixed(0)} kB unpacked, ${packed.files.length} files`);
    // The same package without prebuilds/, as npm would pack it before `npm run prebuild`.
    const unpack = path.join(work, 'unpack');
    fs.mkdirSync(unpack);
    expect(spawnSync('tar', ['xzf', tarball, '-C', unpack]).status).to.equal(0);
    fs.rmSync(path.join(unpack, 'package', 'prebuilds'), { recursive: true });
    bare = path.join(work, 'kdloss-no-prebuilds.tgz');
    expect(spawnSync('tar', ['czf', bare, '-C', unpack, 'package']).status).to.equal(0);
    bin = slimPath();
  });

  after(() => {
    if (work && !process.env.KDLOSS_KEEP_PACKAGE_TEST) fs.rmSync(work, { recursive: true, force: true });
  });

  it('has no compiler, make or python on the slim PATH', () => {
    for (const tool of ['python3', 'python', 'make', 'gcc', 'g++', 'cc', 'c++', 'clang', 'clang++']) {
      const r = spawnSync(path.join(bin, 'sh'), ['-c', `command -v ${tool}`], { env: slimEnv(bin), encoding: 'utf8' });
      expect(r.status, `${tool} found at ${r.stdout}`).to.not.equal(0);
    }
  });

  it('ships the library, the CLI, the prebuilds and the sources to rebuild, and nothing else', () => {
    const files = packed.files.map((f) => f.path);
    for (const f of [
      'package.json',
      'README.md',
      'LICENSE',
      'bin/kdloss.js',
      'dist/index.js',
      'dist/index.d.ts',
      'dist/index.mjs',
      'dist/index.d.mts',
      'dist/backend/load.js',
      'tools/install.js',
      'binding.gyp',
      'native/sources.gypi',
      'native/kernels/dispatch.cc',
      `prebuilds/${PLATFORM}/kdloss.glibc.node`,
      'prebuilds/linux-arm64/kdloss.glibc.node',
    ]) {
      expect(files, f).to.include(f);
    }
    // Every source that native/sources.gypi compiles into the addon is there.
    const gypi = JSON.parse(fs.readFileSync(path.join(ROOT, 'native', 'sources.gypi'), 'utf8').replace(/^\s*#.*$/gm, ''));
    const vars = gypi.variables as Record<string, string[] | string>;
    for (const [name, list] of Object.entries(vars)) {
      if (/^kd_(addon|core|isa_\w+)_sources$/.test(name)) for (const f of list as string[]) expect(files, f).to.include(f);
    }
    const unwanted = files.filter(
      (f) =>
        /^(test|examples|bench|cmake|\.ci)\//.test(f) ||
        /^native\/(tests|bench)\//.test(f) ||
        (/^tools\//.test(f) && f !== 'tools/install.js') ||
        /\.(map|py|tgz)$/.test(f) ||
        /^lib\//.test(f) ||
        f === 'CMakeLists.txt',
    );
    expect(unwanted).to.deep.equal([]);
  });

  describe('with the prebuilt binaries', () => {
    let project = { dir: '', installed: '', result: null as unknown as SpawnSyncReturns<string> & { seconds: number } };
    before(() => {
      project = install('prebuilt', tarball, bin);
    });

    it('installs without compiling anything', () => {
      expect(project.result.status, project.result.stderr).to.equal(0);
      expect(project.result.stderr).to.not.match(/compiling the addon|gyp ERR/);
      expect(fs.existsSync(path.join(project.installed, 'build'))).to.equal(false);
    });

    it("loads the native addon, dispatches to the best variant for this CPU, and matches the js backend", () => {
      const { out, stderr } = probe(project.dir, bin);
      expect(stderr).to.equal('');
      expect(out.loadError).to.equal(null);
      expect(out.backend).to.equal('native');
      const caps = out.capabilities!;
      if (process.arch === 'x64') expect(caps.compiled).to.deep.equal(['avx512', 'avx2', 'scalar']);
      expect(out.isa).to.equal(bestVariant(caps.compiled));
      expectClose(out.losses.native!, out.losses.js!, 1e-12, 1e-5);
      expect(out.losses.js).to.deep.equal(jsHere());
    });

    it('links the kdloss command, which runs', () => {
      const r = run(path.join(project.dir, 'node_modules', '.bin', 'kdloss'), ['--version'], project.dir, slimEnv(bin));
      expect(r.status, r.stderr).to.equal(0);
      expect(r.stdout.trim()).to.equal(`kdloss ${JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version}`);
      expect(r.stderr).to.equal('');
    });

    for (const [file, first] of [
      ['esm.mjs', 'import'],
      ['cjs.cjs', 'require'],
    ]) {
      it(`${first} first, then the other: one module instance, one addon loaded once`, () => {
        const r = run(path.join(bin, 'node'), ['--require', './dlopen.cjs', file], project.dir, slimEnv(bin));
        expect(r.status, r.stderr).to.equal(0);
        const out = JSON.parse(r.stdout);
        expect(out.first).to.equal(first);
        expect(out.same).to.equal(true);
        expect(out.esmNames).to.deep.equal(out.cjsNames);
        expect(out.backend).to.equal('native');
        expect(out.dlopen).to.have.length(1);
        expect(fs.realpathSync(out.dlopen[0])).to.equal(
          fs.realpathSync(path.join(project.installed, 'prebuilds', PLATFORM, 'kdloss.glibc.node')),
        );
      });
    }

    it('has types for import (.mts) and require (.cts) under module node16', () => {
      fs.writeFileSync(
        path.join(project.dir, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: {
            noEmit: true,
            strict: true,
            module: 'node16',
            moduleResolution: 'node16',
            target: 'es2022',
            typeRoots: [path.join(ROOT, 'node_modules', '@types')],
            types: ['node'],
          },
          files: ['types.mts', 'types.cts'],
        }),
      );
      const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
      const r = run(path.join(bin, 'node'), [tsc, '-p', 'tsconfig.json'], project.dir, slimEnv(bin));
      expect(r.status, r.stdout + r.stderr).to.equal(0);
    });

    it('runs the linux-arm64 prebuild in an arm64 node under qemu (KDLOSS_QEMU_NODE)', function () {
      const sysroot = process.env.KDLOSS_QEMU_NODE;
      if (!sysroot) {
        console.log('      (no arm64 node: set KDLOSS_QEMU_NODE to the sysroot of tools/arm64-node.sh)');
        this.skip();
      }
      const r = run(
        'qemu-aarch64',
        ['-L', sysroot, path.join(sysroot, 'usr', 'bin', 'node'), 'probe.cjs'],
        project.dir,
        { ...slimEnv(bin), PATH: `${bin}:/usr/bin:/bin` },
      );
      console.log(`      [qemu arm64 node] ${r.seconds.toFixed(1)} s`);
      expect(r.status, r.stderr).to.equal(0);
      const out = JSON.parse(r.stdout) as Probe;
      expect(r.stderr).to.equal('');
      expect(out.backend).to.equal('native');
      expect(out.isa).to.equal('neon');
      expect(out.capabilities!.compiled).to.deep.equal(['neon', 'scalar']);
      // The arm64 kernels against this machine's js backend (the same inputs, computed here).
      const here = jsHere();
      expectClose(out.losses.native!, here, 1e-12, 1e-5);
      expect(out.losses.js).to.deep.equal(here);
    });
  });

  describe('without prebuilt binaries', () => {
    let project = { dir: '', installed: '', result: null as unknown as SpawnSyncReturns<string> & { seconds: number } };
    before(() => {
      project = install('no-prebuilds', bare, bin);
    });

    it('installs anyway, saying on stderr why the addon was not compiled and how to fix it', () => {
      const r = project.result;
      expect(r.status, r.stderr).to.equal(0);
      expect(r.stderr).to.match(/kdloss install: could not compile the native addon: Could not find any Python installation/);
      expect(r.stderr).to.match(/kdloss install: to fix: install python3, make and a C\+\+17 compiler/);
      const recorded = fs.readFileSync(path.join(project.installed, 'build', 'install-error.txt'), 'utf8');
      expect(recorded).to.match(/^Could not find any Python installation/);
      console.log(`      install stderr (our lines):\n${r.stderr.split('\n').filter((l) => l.startsWith('kdloss')).map((l) => `        ${l}`).join('\n')}`);
    });

    it('runs on the js backend with correct results, warning once per process in one line', () => {
      const { out, stderr } = probe(project.dir, bin, ['worker']);
      expect(out.backend).to.equal('js');
      expect(out.workerBackend).to.equal('js');
      expect(out.isa).to.equal(null);
      expect(out.loadError!.name).to.equal('NativeError');
      expect(out.loadError!.code).to.equal('ERR_KD_NATIVE');
      expect(out.loadError!.message).to.match(new RegExp(`no prebuilt binary for ${PLATFORM}`));
      expect(out.loadError!.message).to.match(/the install could not compile it: Could not find any Python installation/);
      expect(out.losses.js).to.deep.equal(jsHere());
      const lines = stderr.split('\n').filter((l) => l !== '');
      expect(lines).to.have.length(1);
      expect(lines[0]).to.match(/^kdloss: native addon not loaded: .*; running on the js backend .*To fix: .*npm rebuild kdloss.*KDLOSS_BACKEND=native makes this an error/);
      console.log(`      load-time warning:\n        ${lines[0]}`);
    });

    it('with KDLOSS_BACKEND=js: the same results, no warning', () => {
      const { out, stderr } = probe(project.dir, bin, [], { KDLOSS_BACKEND: 'js' });
      expect(out.backend).to.equal('js');
      expect(stderr).to.equal('');
      expect(out.losses.js).to.deep.equal(jsHere());
    });

    it('with KDLOSS_BACKEND=native: loading throws NativeError, and a rebuild fails instead of falling back', () => {
      const code =
        "try { require('kdloss'); console.log('loaded') } catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message })) }";
      const r = run(path.join(bin, 'node'), ['-e', code], project.dir, slimEnv(bin, { KDLOSS_BACKEND: 'native' }));
      expect(r.status, r.stderr).to.equal(0);
      const err = JSON.parse(r.stdout);
      expect(err.name).to.equal('NativeError');
      expect(err.code).to.equal('ERR_KD_NATIVE');
      expect(err.message).to.match(/^KDLOSS_BACKEND=native: native addon not loaded: no prebuilt binary/);
      expect(r.stderr).to.equal('');
      const rebuild = run(path.join(bin, 'npm'), ['rebuild', 'kdloss', '--foreground-scripts'], project.dir, slimEnv(bin, { KDLOSS_BACKEND: 'native' }));
      expect(rebuild.status).to.not.equal(0);
      expect(rebuild.stderr).to.match(/KDLOSS_BACKEND=native: failing the install/);
    });
  });

  describe('without prebuilt binaries, with a compiler', () => {
    let project = { dir: '', installed: '', result: null as unknown as SpawnSyncReturns<string> & { seconds: number } };
    before(function () {
      // The install script's compile path, as developers and users of other platforms get it: every
      // file it needs (node-addon-api's headers among them) must come with the runtime dependencies.
      if (process.env.KDLOSS_PACKAGE_SKIP_SOURCE_BUILD) this.skip();
      const dir = path.join(work, 'source-build');
      fs.mkdirSync(dir);
      fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'consumer-source-build', private: true }));
      for (const f of fs.readdirSync(PROBES)) fs.copyFileSync(path.join(PROBES, f), path.join(dir, f));
      const env = { ...slimEnv(bin), PATH: `${bin}:${process.env.PATH}` };
      const r = run(path.join(bin, 'npm'), ['install', '--foreground-scripts', '--no-package-lock', bare], dir, env);
      console.log(`      [source-build] npm install: ${r.seconds.toFixed(1)} s, exit ${r.status}`);
      project = { dir, installed: path.join(dir, 'node_modules', 'kdloss'), result: r };
    });

    it('compiles the addon at install and loads it', () => {
      expect(project.result.status, project.result.stderr).to.equal(0);
      expect(project.result.stderr).to.match(/kdloss install: compiled build\/Release\/kdloss.node/);
      expect(fs.existsSync(path.join(project.installed, 'build', 'install-error.txt'))).to.equal(false);
      const { out, stderr } = probe(project.dir, bin);
      expect(stderr).to.equal('');
      expect(out.backend).to.equal('native');
      expect(out.isa).to.equal(bestVariant(out.capabilities!.compiled));
      expectClose(out.losses.native!, out.losses.js!, 1e-12, 1e-5);
    });
  });

  describe('the linux-arm64 prebuild', () => {
    it('is an aarch64 shared object exporting the N-API module entry', () => {
      const elf = elfHeader(path.join(ROOT, 'prebuilds', 'linux-arm64', 'kdloss.glibc.node'));
      expect(elf).to.match(/Class:\s+ELF64/);
      expect(elf).to.match(/Type:\s+DYN/);
      expect(elf).to.match(/Machine:\s+AArch64/);
      // Defined (not UND), global, in the dynamic symbol table.
      expect(elf).to.match(/FUNC\s+GLOBAL\s+DEFAULT\s+\d+\s+napi_register_module_v1\b/);
      expect(elf).to.match(/\bnode_api_module_get_api_version_v1\b/);
    });
  });
});
