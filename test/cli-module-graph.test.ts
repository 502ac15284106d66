// The module graph of lib/ stays acyclic: every relative import of the TypeScript sources (type-only
// imports included) and every relative require of the compiled dist/. The command-line and benchmark
// directories (lib/cli, lib/bench, lib/util) count as one node each, so two files of different
// directories importing each other's directory (lib/cli -> lib/bench -> lib/cli) are a cycle too; and
// no two files anywhere import each other, directly or not.
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { ROOT } from './helpers/cli';

/** Directories whose files are one node of the graph. */
const GROUPS = ['cli', 'bench', 'util'];

function listFiles(dir: string, ext: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...listFiles(p, ext));
    else if (e.name.endsWith(ext) && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** Relative module specifiers of a source text: import/export ... from, import(), require(). */
function specifiers(text: string): string[] {
  const out: string[] = [];
  const patterns = [/\bfrom\s+['"](\.{1,2}\/[^'"]*|\.{1,2})['"]/g, /\b(?:import|require)\(\s*['"](\.{1,2}\/[^'"]*|\.{1,2})['"]\s*\)/g];
  for (const re of patterns) for (const m of text.matchAll(re)) out.push(m[1]);
  return out;
}

/** The module file a relative specifier names (with `ext`, or its directory's index). */
function resolve(from: string, spec: string, ext: string): string | null {
  const base = path.resolve(path.dirname(from), spec);
  for (const c of [base + ext, path.join(base, `index${ext}`), base]) if (fs.existsSync(c) && fs.statSync(c).isFile()) return c;
  return null;
}

/** The graph node of a file under `root`: its group directory (when grouped), or the file itself. */
function node(root: string, file: string, grouped: boolean): string {
  const rel = path.relative(root, file).split(path.sep);
  return grouped && rel.length > 1 && GROUPS.includes(rel[0]) ? `${rel[0]}/` : rel.join('/');
}

interface Graph {
  edges: Map<string, Set<string>>;
  /** A file-level example of each edge, for the failure message. */
  via: Map<string, string>;
  unresolved: string[];
}

function buildGraph(root: string, ext: string, grouped = true): Graph {
  const edges = new Map<string, Set<string>>();
  const via = new Map<string, string>();
  const unresolved: string[] = [];
  for (const file of listFiles(root, ext)) {
    const a = node(root, file, grouped);
    if (!edges.has(a)) edges.set(a, new Set());
    for (const spec of specifiers(fs.readFileSync(file, 'utf8'))) {
      const target = resolve(file, spec, ext);
      if (target === null) {
        unresolved.push(`${path.relative(root, file)}: '${spec}'`);
        continue;
      }
      const b = node(root, target, grouped);
      if (a === b) continue;
      edges.get(a)!.add(b);
      via.set(`${a} -> ${b}`, `${path.relative(root, file)} imports '${spec}'`);
    }
  }
  return { edges, via, unresolved };
}

/** One cycle of the graph (as a list of nodes, first repeated at the end), or null. */
function findCycle(edges: Map<string, Set<string>>): string[] | null {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (n: string): string[] | null => {
    state.set(n, 'open');
    stack.push(n);
    for (const m of edges.get(n) ?? []) {
      if (state.get(m) === 'open') return [...stack.slice(stack.indexOf(m)), m];
      if (state.get(m) === undefined) {
        const c = visit(m);
        if (c) return c;
      }
    }
    stack.pop();
    state.set(n, 'done');
    return null;
  };
  for (const n of [...edges.keys()].sort()) {
    if (state.get(n) === undefined) {
      const c = visit(n);
      if (c) return c;
    }
  }
  return null;
}

function expectAcyclic(g: Graph): void {
  const cycle = findCycle(g.edges);
  const explain = cycle
    ? cycle
        .slice(1)
        .map((b, i) => `${cycle[i]} -> ${b} (${g.via.get(`${cycle[i]} -> ${b}`)})`)
        .join('; ')
    : '';
  expect(cycle, `import cycle: ${explain}`).to.equal(null);
}

describe('module graph of lib/', () => {
  it('finds a cycle when there is one (the checker itself)', () => {
    const edges = new Map([
      ['cli/', new Set(['bench/'])],
      ['bench/', new Set(['util/', 'cli/'])],
      ['util/', new Set<string>()],
    ]);
    expect(findCycle(edges)).to.deep.equal(['bench/', 'cli/', 'bench/']);
    edges.get('bench/')!.delete('cli/');
    expect(findCycle(edges)).to.equal(null);
    expect(specifiers("import type { A } from '../cli/errors';\nconst m = await import('./eval');\nexport * from './x';")).to.deep.equal([
      '../cli/errors',
      './x',
      './eval',
    ]);
  });

  it('has no cycle among the TypeScript sources (type-only imports included)', () => {
    const g = buildGraph(path.join(ROOT, 'lib'), '.ts');
    expect(g.unresolved, 'imports that name no file').to.deep.equal([]);
    expect(g.edges.has('cli/') && g.edges.has('bench/'), 'lib/cli and lib/bench found').to.equal(true);
    expectAcyclic(g);
  });

  it('has no cycle between single files either (inside lib/cli, lib/bench, lib/util too)', () => {
    expectAcyclic(buildGraph(path.join(ROOT, 'lib'), '.ts', false));
    expectAcyclic(buildGraph(path.join(ROOT, 'dist'), '.js', false));
  });

  it('has no cycle among the compiled modules in dist/', () => {
    const g = buildGraph(path.join(ROOT, 'dist'), '.js');
    expect(g.unresolved, 'requires that name no file').to.deep.equal([]);
    expectAcyclic(g);
  });
});
