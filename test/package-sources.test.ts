// node-gyp (the addon) and CMake (the native tests and benchmark) both take their sources and flags
// from native/sources.gypi. This checks what each build really compiles, from the Makefiles
// `node-gyp configure` writes and the compile_commands.json CMake writes, per target architecture:
// the same kernel files in the same pieces, with the same variant flags and KD_HAVE_* defines, and
// no native source left out of both.
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const ROOT = path.join(__dirname, '..', '..');
const ARCHES = ['x64', 'arm64'] as const;
type Arch = (typeof ARCHES)[number];

/** native/sources.gypi's variables (JSON once its whole-line comments are dropped, as CMake reads it). */
function gypiVariables(): Record<string, string[] | string> {
  const text = fs.readFileSync(path.join(ROOT, 'native', 'sources.gypi'), 'utf8').replace(/^\s*#.*$/gm, '');
  return JSON.parse(text).variables;
}

/** One build's view: target -> { sources (repo-relative, extension dropped), compile flags per source }. */
type Build = Map<string, { sources: Set<string>; flags: Map<string, string> }>;

const stem = (file: string) => file.replace(/\.(cc|cpp|cxx|c)(\.o)?$|\.o$/, '');

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

/** `node-gyp configure --arch` in a scratch copy of the gyp files; the targets its Makefiles compile. */
function gypBuild(arch: Arch, scratch: string): Build {
  const dir = path.join(scratch, `gyp-${arch}`);
  fs.mkdirSync(path.join(dir, 'native'), { recursive: true });
  fs.copyFileSync(path.join(ROOT, 'binding.gyp'), path.join(dir, 'binding.gyp'));
  fs.copyFileSync(path.join(ROOT, 'native', 'sources.gypi'), path.join(dir, 'native', 'sources.gypi'));
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  const args = [require.resolve('node-gyp/bin/node-gyp.js', { paths: [ROOT] }), 'configure', `--arch=${arch}`];
  const nodeDir = path.join(path.dirname(process.execPath), '..');
  if (fs.existsSync(path.join(nodeDir, 'include', 'node', 'common.gypi'))) args.push(`--nodedir=${nodeDir}`);
  const r = spawnSync(process.execPath, args, { cwd: dir, encoding: 'utf8' });
  expect(r.status, r.stderr).to.equal(0);
  const build: Build = new Map();
  for (const mk of fs.readdirSync(path.join(dir, 'build')).filter((f) => f.endsWith('.target.mk'))) {
    const text = fs.readFileSync(path.join(dir, 'build', mk), 'utf8');
    const target = mk.replace(/\.target\.mk$/, '');
    const objs = /^OBJS := \\\n((?:\t.*\n)+)/m.exec(text);
    if (!objs) continue;
    const sources = new Set(
      objs[1]
        .split('\n')
        .map((l) => l.trim().replace(/ \\$/, ''))
        .filter((l) => l !== '')
        .map((l) => stem(l.replace(/^\$\(obj\)\.target\/\$\(TARGET\)\//, ''))),
    );
    const section = (name: string) =>
      (new RegExp(`^${name}_Release := \\\\\\n((?:\\t.*\\n)+)`, 'm').exec(text)?.[1] ?? '').replace(/[\\\t']/g, ' ');
    const flags = `${section('DEFS')} ${section('CFLAGS')} ${section('CFLAGS_CC')}`;
    build.set(target, { sources, flags: new Map([...sources].map((s) => [s, flags])) });
  }
  return build;
}

/** CMake configure for `arch` (arm64 through cmake/aarch64-linux-gnu.cmake); its compile commands. */
function cmakeBuild(arch: Arch, scratch: string): Build {
  const dir = path.join(scratch, `cmake-${arch}`);
  const args = ['-S', ROOT, '-B', dir, '-DCMAKE_EXPORT_COMPILE_COMMANDS=ON', '-DCMAKE_BUILD_TYPE=Release'];
  if (arch === 'arm64' && process.arch !== 'arm64') args.push(`-DCMAKE_TOOLCHAIN_FILE=${path.join(ROOT, 'cmake', 'aarch64-linux-gnu.cmake')}`);
  const r = spawnSync('cmake', args, { encoding: 'utf8' });
  expect(r.status, r.stdout + r.stderr).to.equal(0);
  const commands = JSON.parse(fs.readFileSync(path.join(dir, 'compile_commands.json'), 'utf8')) as { file: string; command: string }[];
  const build: Build = new Map();
  for (const c of commands) {
    const target = /CMakeFiles\/([^/]+)\.dir\//.exec(c.command)?.[1];
    if (!target) continue;
    const entry = build.get(target) ?? { sources: new Set<string>(), flags: new Map<string, string>() };
    const source = stem(path.relative(ROOT, c.file));
    entry.sources.add(source);
    entry.flags.set(source, c.command);
    build.set(target, entry);
  }
  return build;
}

function sorted(set: Set<string> | undefined): string[] {
  return [...(set ?? [])].sort();
}

describe('package: one native source list for node-gyp and CMake', function () {
  this.timeout(120_000);
  const vars = gypiVariables();
  const list = (name: string) => ((vars[name] as string[] | undefined) ?? []).map(stem);
  let scratch = '';

  before(function () {
    if (!has('cmake') || !has('python3')) this.skip();
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'kdloss-sources-'));
  });
  after(() => {
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
  });

  for (const arch of ARCHES) {
    it(`${arch}: the addon's kernels are the kernels the native tests check, with the same flags`, function () {
      const crossOk = arch === process.arch || (arch === 'arm64' && has('aarch64-linux-gnu-g++'));
      if (!crossOk) this.skip();
      const gyp = gypBuild(arch, scratch);
      const cmake = cmakeBuild(arch, scratch);
      const variants = vars[`kd_isa_${arch}`] as string[];
      expect(variants.length).to.be.greaterThan(0);

      // The addon target: the binding plus the core; CMake's kd_core: the core alone.
      expect(sorted(gyp.get('kdloss')?.sources)).to.deep.equal([...list('kd_addon_sources'), ...list('kd_core_sources')].sort());
      expect(sorted(cmake.get('kd_core')?.sources)).to.deep.equal(list('kd_core_sources').sort());

      // One static library per variant in both, the same files, built with that variant's flags only.
      const isaTargets = (b: Build) => [...b.keys()].filter((t) => t.startsWith('kd_isa_')).sort();
      expect(isaTargets(gyp)).to.deep.equal(variants.map((v) => `kd_isa_${v}`).sort());
      expect(isaTargets(cmake)).to.deep.equal(isaTargets(gyp));
      for (const v of variants) {
        const t = `kd_isa_${v}`;
        expect(sorted(gyp.get(t)!.sources), t).to.deep.equal(list(`kd_isa_${v}_sources`).sort());
        expect(sorted(cmake.get(t)!.sources), t).to.deep.equal(sorted(gyp.get(t)!.sources));
        for (const b of [gyp, cmake]) {
          for (const [file, flags] of b.get(t)!.flags) {
            for (const f of [...(vars[`kd_isa_${v}_flags`] as string[]), ...(vars.kd_cflags as string[])]) {
              expect(flags.split(/\s+/), `${t} ${file}`).to.include(f);
            }
          }
        }
        // dispatch.cc knows the variant is linked in.
        const define = `-D${vars[`kd_isa_${v}_define`] as string}`;
        expect(gyp.get('kdloss')!.flags.get('native/kernels/dispatch')!.split(/\s+/)).to.include(define);
        expect(cmake.get('kd_core')!.flags.get('native/kernels/dispatch')!.split(/\s+/)).to.include(define);
      }
      // No SIMD flag leaks into the core or the binding.
      for (const [file, flags] of [...gyp.get('kdloss')!.flags, ...cmake.get('kd_core')!.flags]) {
        expect(flags, file).to.not.match(/-mavx|-mfma/);
      }
    });
  }

  it('leaves no native source out: every .cc under native/ is in one list of native/sources.gypi', () => {
    const listed = new Set(
      Object.entries(vars)
        .filter(([name]) => name.endsWith('_sources'))
        .flatMap(([, files]) => files as string[]),
    );
    const onDisk: string[] = [];
    const walk = (dir: string) => {
      for (const e of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
        const rel = `${dir}/${e.name}`;
        if (e.isDirectory()) walk(rel);
        else if (/\.(cc|cpp|c)$/.test(e.name)) onDisk.push(rel);
      }
    };
    walk('native');
    expect(onDisk.filter((f) => !listed.has(f))).to.deep.equal([]);
    expect([...listed].filter((f) => !fs.existsSync(path.join(ROOT, f)))).to.deep.equal([]);
  });
});
