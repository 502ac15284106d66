// `kdloss eval` on bad input files: every one exits with code 2 and one line on stderr naming the file,
// without a stack trace.
import { expect } from 'chai';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import { type CliResult, COLS, evalArgs, expectInputError, ROWS, runCli, T32, tempDir, writeSmallData, Y } from './helpers/cli';
import { npyHeader, toInt64, writeMatrix, writeNpy } from './helpers/npy';
import { oneHot } from './helpers/random';

describe('kdloss eval: bad input files', () => {
  const tmp = tempDir('kdloss-cli-files-');
  const f = tmp.f;
  before(() => writeSmallData(tmp.path));

  describe('kdloss eval: bad input (exit code 2, one line naming the file)', () => {
    const good = (over: Partial<Record<'student' | 'teacher' | 'labels', string>> = {}, extra: string[] = []): string[] =>
      evalArgs(tmp.path, over, extra);
    const raw = (name: string, bytes: Buffer): string => {
      fs.writeFileSync(f(name), bytes);
      return f(name);
    };
    const f32 = new Float32Array(ROWS * COLS);

    interface Case {
      what: string;
      args: () => string[];
      file: () => string;
      pattern: RegExp;
      after?: () => void;
    }
    const cases: Case[] = [
      { what: 'a missing file', args: () => good({ teacher: f('nope.npy') }), file: () => f('nope.npy'), pattern: /no such file/ },
      { what: 'a directory', args: () => good({ student: tmp.path }), file: () => tmp.path, pattern: /not a regular file \(a directory\)/ },
      {
        what: 'a FIFO (which blocked open() forever)',
        args: () => {
          execFileSync('mkfifo', [f('fifo.npy')]);
          return good({ student: f('fifo.npy') });
        },
        file: () => f('fifo.npy'),
        pattern: /not a regular file \(a FIFO\)/,
      },
      {
        what: 'a FIFO as the labels',
        args: () => {
          execFileSync('mkfifo', [f('fifo-labels.npy')]);
          return good({ labels: f('fifo-labels.npy') });
        },
        file: () => f('fifo-labels.npy'),
        pattern: /not a regular file \(a FIFO\)/,
      },
      {
        what: 'a symlink loop (the file named once in the message)',
        args: () => {
          fs.symlinkSync(f('loop.npy'), f('loop.npy'));
          return good({ student: f('loop.npy') });
        },
        file: () => f('loop.npy'),
        pattern: /loop\.npy: too many levels of symbolic links$/,
      },
      { what: 'a character device', args: () => good({ teacher: '/dev/zero' }), file: () => '/dev/zero', pattern: /not a regular file \(a character device\)/ },
      {
        what: 'a socket',
        args: () => good({ teacher: f('socket.npy') }),
        file: () => f('socket.npy'),
        pattern: /not a regular file \(a socket\)/,
      },
      { what: 'an empty file', args: () => good({ student: raw('empty.npy', Buffer.alloc(0)) }), file: () => f('empty.npy'), pattern: /empty file/ },
      {
        what: 'a bad magic',
        args: () => good({ student: raw('magic.npy', Buffer.from('PK\x03\x04 this is a zip, not npy')) }),
        file: () => f('magic.npy'),
        pattern: /not a NumPy \.npy file \(bad magic\)/,
      },
      {
        what: 'an unsupported format version',
        args: () => {
          const h = npyHeader('<f4', [ROWS, COLS]);
          h[6] = 4;
          return good({ student: raw('v4.npy', Buffer.concat([h, Buffer.from(f32.buffer)])) });
        },
        file: () => f('v4.npy'),
        pattern: /unsupported \.npy format version 4\.0/,
      },
      {
        what: 'a truncated header',
        args: () => good({ student: raw('trunc-header.npy', npyHeader('<f4', [ROWS, COLS]).subarray(0, 40)) }),
        file: () => f('trunc-header.npy'),
        pattern: /truncated \.npy header/,
      },
      {
        what: 'a malformed header',
        args: () => {
          writeNpy(f('malformed.npy'), f32, [ROWS, COLS], { dict: "{'descr': '<f4', 'fortran_order': False, 'shape': (50, 7" });
          return good({ student: f('malformed.npy') });
        },
        file: () => f('malformed.npy'),
        pattern: /malformed \.npy header/,
      },
      {
        what: 'an unsupported dtype (bool)',
        args: () => {
          writeNpy(f('bool.npy'), new Uint8Array(ROWS * COLS), [ROWS, COLS], { descr: '|b1' });
          return good({ teacher: f('bool.npy') });
        },
        file: () => f('bool.npy'),
        pattern: /unsupported dtype '\|b1' \(bool8\)/,
      },
      {
        what: 'an unsupported dtype (complex64)',
        args: () => {
          writeNpy(f('c8.npy'), new Float32Array(2 * ROWS * COLS), [ROWS, COLS], { descr: '<c8' });
          return good({ student: f('c8.npy') });
        },
        file: () => f('c8.npy'),
        pattern: /unsupported dtype '<c8' \(complex64\)/,
      },
      {
        what: 'integer logits',
        args: () => {
          writeNpy(f('int-logits.npy'), new Int32Array(ROWS * COLS), [ROWS, COLS]);
          return good({ student: f('int-logits.npy') });
        },
        file: () => f('int-logits.npy'),
        pattern: /unsupported dtype '<i4' \(int32\) for logits \(expected float16, bfloat16, float32 or float64\)/,
      },
      {
        what: 'a big-endian byte order',
        args: () => {
          writeNpy(f('be.npy'), f32, [ROWS, COLS], { descr: '>f4' });
          return good({ teacher: f('be.npy') });
        },
        file: () => f('be.npy'),
        pattern: /unsupported byte order: big-endian '>f4'/,
      },
      {
        what: 'a big-endian label file',
        args: () => {
          writeNpy(f('be-labels.npy'), toInt64(Y), [ROWS], { descr: '>i8' });
          return good({ labels: f('be-labels.npy') });
        },
        file: () => f('be-labels.npy'),
        pattern: /unsupported byte order: big-endian '>i8'/,
      },
      {
        what: 'Fortran order',
        args: () => {
          writeNpy(f('fortran.npy'), f32, [ROWS, COLS], { fortranOrder: true });
          return good({ student: f('fortran.npy') });
        },
        file: () => f('fortran.npy'),
        pattern: /Fortran \(column-major\) order is not supported/,
      },
      {
        what: 'truncated data',
        args: () => {
          writeNpy(f('trunc.npy'), f32, [ROWS, COLS], { truncateBy: 10 });
          return good({ teacher: f('trunc.npy') });
        },
        file: () => f('trunc.npy'),
        pattern: /truncated data: shape \(50, 7\) float32 needs 1400 bytes after the header, the file has 1390/,
      },
      {
        what: 'trailing bytes after the data',
        args: () => good({ student: raw('trailing.npy', Buffer.concat([npyHeader('<f4', [ROWS, COLS]), Buffer.from(f32.buffer), Buffer.alloc(3)])) }),
        file: () => f('trailing.npy'),
        pattern: /3 unexpected bytes after the data/,
      },
      {
        what: '1-D logits',
        args: () => {
          writeNpy(f('flat.npy'), f32, [ROWS * COLS]);
          return good({ student: f('flat.npy') });
        },
        file: () => f('flat.npy'),
        pattern: /expected logits of 2 or more axes \(\.\.\., classes\), got shape \(350,\)/,
      },
      {
        what: 'logits without rows',
        args: () => {
          writeNpy(f('norows.npy'), new Float32Array(0), [0, COLS]);
          return good({ student: f('norows.npy') });
        },
        file: () => f('norows.npy'),
        pattern: /no rows/,
      },
      {
        what: 'a student/teacher dtype mismatch',
        args: () => good({ teacher: f('t64.npy') }),
        file: () => f('t64.npy'),
        pattern: /dtype float64 does not match .*s32\.npy \(float32\)/,
      },
      {
        what: 'a student/teacher row mismatch',
        args: () => {
          writeMatrix(f('t-rows.npy'), { data: T32.data.subarray(0, (ROWS - 1) * COLS), rows: ROWS - 1, cols: COLS });
          return good({ teacher: f('t-rows.npy') });
        },
        file: () => f('t-rows.npy'),
        pattern: /49 rows, but .*s32\.npy has 50 rows/,
      },
      {
        what: 'a student/teacher class mismatch',
        args: () => {
          writeMatrix(f('t-cols.npy'), { data: new Float32Array(ROWS * 6), rows: ROWS, cols: 6 });
          return good({ teacher: f('t-cols.npy') });
        },
        file: () => f('t-cols.npy'),
        pattern: /6 classes, but .*s32\.npy has 7 classes/,
      },
      {
        what: 'a label count mismatch',
        args: () => {
          writeNpy(f('y-short.npy'), toInt64(Y.subarray(1)), [ROWS - 1]);
          return good({ labels: f('y-short.npy') });
        },
        file: () => f('y-short.npy'),
        pattern: /49 labels, but .*s32\.npy has 50 rows/,
      },
      {
        what: 'a one-hot class mismatch',
        args: () => {
          writeMatrix(f('onehot-cols.npy'), oneHot(Y, COLS - 1));
          return good({ labels: f('onehot-cols.npy') });
        },
        file: () => f('onehot-cols.npy'),
        pattern: /6 classes, but .*s32\.npy has 7 classes/,
      },
      {
        what: '2-D integer labels',
        args: () => {
          writeNpy(f('y-2d.npy'), Int32Array.from(Y), [ROWS, 1]);
          return good({ labels: f('y-2d.npy') });
        },
        file: () => f('y-2d.npy'),
        pattern: /integer labels must be class indices of the logits' leading shape \(50,\), got shape \(50, 1\)/,
      },
      {
        what: 'float labels that are not one-hot',
        args: () => {
          const m = oneHot(Y, COLS);
          m.data[12 * COLS] = 0.5;
          writeMatrix(f('soft-labels.npy'), m);
          return good({ labels: f('soft-labels.npy') });
        },
        file: () => f('soft-labels.npy'),
        pattern: /row 12 is not one-hot/,
      },
      {
        what: 'an int32 label >= classes',
        args: () => {
          const y = Int32Array.from(Y);
          y[17] = COLS;
          writeNpy(f('y-big.npy'), y, [ROWS]);
          return good({ labels: f('y-big.npy') });
        },
        file: () => f('y-big.npy'),
        pattern: /row 17: class index 7 out of range \[0, 7\)/,
      },
      {
        what: 'a negative int32 label other than the ignore index',
        args: () => {
          const y = Int32Array.from(Y);
          y[0] = -5;
          writeNpy(f('y-neg.npy'), y, [ROWS]);
          return good({ labels: f('y-neg.npy') });
        },
        file: () => f('y-neg.npy'),
        pattern: /row 0: class index -5 out of range \[0, 7\) and not the ignore index -100/,
      },
      {
        what: 'an int64 label beyond 32 bits',
        args: () => {
          const y = toInt64(Y);
          y[3] = 1n << 40n;
          writeNpy(f('y-huge.npy'), y, [ROWS]);
          return good({ labels: f('y-huge.npy') });
        },
        file: () => f('y-huge.npy'),
        pattern: /row 3: class index 1099511627776 out of range/,
      },
      {
        what: 'a negative int64 label in a later chunk (absolute row), removing the partial --per-sample file',
        args: () => {
          const y = toInt64(Y);
          y[33] = -1n;
          writeNpy(f('y-late.npy'), y, [ROWS]);
          return good({ labels: f('y-late.npy') }, ['--chunk-rows', '8', '--per-sample', f('partial.npy')]);
        },
        file: () => f('y-late.npy'),
        pattern: /row 33: class index -1 out of range/,
        after: () => expect(fs.existsSync(f('partial.npy'))).to.equal(false),
      },
      {
        what: 'an unwritable --per-sample path',
        args: () => good({}, ['--per-sample', path.join(tmp.path, 'no-such-dir', 'out.npy')]),
        file: () => path.join(tmp.path, 'no-such-dir', 'out.npy'),
        pattern: /cannot write: no such directory/,
      },
    ];

    // The runs are independent: run them a few at a time up front, then check each in its own test.
    const results = new Map<string, CliResult>();
    before(async function () {
      this.timeout(120000);
      // A listening Unix socket for the socket case, closed once every run is done.
      const server = net.createServer();
      await new Promise<void>((resolve) => server.listen(f('socket.npy'), resolve));
      const queue = [...cases];
      const worker = async (): Promise<void> => {
        // Killed after 30 s: a run that hangs (a FIFO) fails its test instead of the suite.
        for (let c = queue.shift(); c !== undefined; c = queue.shift()) results.set(c.what, await runCli(c.args(), {}, { timeoutMs: 30000 }));
      };
      await Promise.all([worker(), worker(), worker(), worker()]);
      server.close();
    });

    for (const c of cases) {
      it(`rejects ${c.what}`, async () => {
        expectInputError(results.get(c.what)!, c.file(), c.pattern);
        c.after?.();
      });
    }
  });
});
