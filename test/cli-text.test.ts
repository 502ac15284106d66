// What `kdloss` prints is safe for a terminal and a log: an error is one line even when a file header or
// a file name holds a newline, and no control character (escape sequences, C1 controls, bidirectional
// overrides) from a header, a file name or a flag reaches the output unescaped.
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { type CliResult, evalArgs, runCli, tempDir, writeSmallData } from './helpers/cli';
import { writeMatrix } from './helpers/npy';
import { S32 } from './helpers/cli';

/** Control and invisible characters that must never be printed raw. */
const RAW = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

function expectOneSafeLine(r: CliResult, ...includes: string[]): void {
  expect(r.code, r.stderr).to.equal(2);
  expect(r.stdout).to.equal('');
  expect(r.stderr.endsWith('\n')).to.equal(true);
  expect(r.stderr.slice(0, -1), 'one line').to.not.include('\n');
  expect(RAW.test(r.stderr), `raw control character in ${JSON.stringify(r.stderr)}`).to.equal(false);
  for (const s of includes) expect(r.stderr).to.include(s);
}

describe('kdloss: errors and reports are one line and escape control characters', () => {
  const tmp = tempDir('kdloss-cli-text-');
  const f = tmp.f;
  before(() => writeSmallData(tmp.path));

  it("escapes a header's descr holding a newline and an escape sequence", async () => {
    writeMatrix(f('descr.npy'), S32, { dict: "{'descr': '<f4\n\x1b[31mred', 'fortran_order': False, 'shape': (50, 7), }" });
    const r = await runCli(evalArgs(tmp.path, { student: f('descr.npy') }));
    expectOneSafeLine(r, f('descr.npy'), "'<f4\\n\\x1b[31mred'");
  });

  it('escapes a malformed header echoed in the parse error', async () => {
    writeMatrix(f('parse.npy'), S32, { dict: "{'descr': '<f4', \x1b[2J\u202e: 1}" });
    const r = await runCli(evalArgs(tmp.path, { student: f('parse.npy') }));
    expectOneSafeLine(r, 'malformed .npy header', '\\x1b');
  });

  it('escapes file names from the command line (newline, OSC, C1 CSI, line separator, bidi override)', async () => {
    const name = path.join(tmp.path, 'a\nb\x1b]0;title\x07c\u009b31m\u2028d\u202ee.npy');
    const r = await runCli(evalArgs(tmp.path, { teacher: name }));
    expectOneSafeLine(r, 'a\\nb\\x1b]0;title\\x07c\\x9b31m\\u2028d\\u202ee.npy: no such file');
  });

  it('escapes unknown options and flag values', async () => {
    expectOneSafeLine(await runCli(['eval', '--\x1b[31mred']), '\\x1b[31mred');
    expectOneSafeLine(await runCli(['eval', '--student', 'a', '--teacher', 'b', '--alpha', '0.5\n\x1b[2J']), "--alpha: expected a number in [0, 1], got '0.5\\n\\x1b[2J'");
    expectOneSafeLine(await runCli(['bench', '--filter=\x1b[2J\nx']), '\\x1b[2J\\nx');
    expectOneSafeLine(await runCli(['\x1b[2J']), "unknown command '\\x1b[2J'");
  });

  it('escapes file names in the text report and in --json (which stays valid JSON of the same names)', async () => {
    const odd = path.join(tmp.path, 'odd\x1b[2J\u009b\u202e.npy');
    fs.copyFileSync(f('s32.npy'), odd);
    const text = await runCli(evalArgs(tmp.path, { student: odd }));
    expect(text.code, text.stderr).to.equal(0);
    expect(RAW.test(text.stdout.replace(/\n/g, '')), 'raw control character in the report').to.equal(false);
    expect(text.stdout).to.include('odd\\x1b[2J\\x9b\\u202e.npy');
    const json = await runCli(evalArgs(tmp.path, { student: odd }, ['--json']));
    expect(json.code, json.stderr).to.equal(0);
    expect(RAW.test(json.stdout.replace(/\n/g, '')), 'raw control character in the JSON').to.equal(false);
    expect(JSON.parse(json.stdout).files.student).to.equal(odd);
  });
});
