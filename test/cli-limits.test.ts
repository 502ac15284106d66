// `kdloss eval` at the limits of one array and of the machine's memory: valid files too large to read
// in chunks of the asked size get exit code 2 and one line saying what a chunk needs and how to lower
// it (they were an "internal error: Invalid typed array length", exit code 1). The files are sparse:
// a header and a size, no data written, and no test reads them.
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import { expectInputError, runCli, tempDir } from './helpers/cli';
import { npyHeader } from './helpers/npy';

/** A sparse .npy file of `shape` and `descr`: the header, then zeros up to the data's size. */
function sparseNpy(file: string, descr: string, shape: number[]): string {
  const header = npyHeader(descr, shape);
  fs.writeFileSync(file, header);
  const itemsize = Number(descr.slice(2));
  fs.truncateSync(file, header.length + shape.reduce((a, b) => a * b, 1) * itemsize);
  return file;
}

describe('kdloss eval: chunks larger than one array or than memory', () => {
  const tmp = tempDir('kdloss-cli-limits-');
  const f = tmp.f;

  it('refuses rows wider than one array holds, naming the file (shape (1, 2^32 + 1))', async () => {
    const s = sparseNpy(f('wide-s.npy'), '<f4', [1, 2 ** 32 + 1]);
    const t = sparseNpy(f('wide-t.npy'), '<f4', [1, 2 ** 32 + 1]);
    const r = await runCli(['eval', '--student', s, '--teacher', t]);
    expectInputError(r, s, /rows of 4294967297 classes are too wide: kdloss reads whole rows, and one array holds at most \d+ elements/);
  });

  it('refuses --chunk-rows beyond one array, saying how many rows fit (4300000 x 1000 float32)', async () => {
    const s = sparseNpy(f('tall-s.npy'), '<f4', [4300000, 1000]);
    const t = sparseNpy(f('tall-t.npy'), '<f4', [4300000, 1000]);
    const r = await runCli(['eval', '--student', s, '--teacher', t, '--chunk-rows', '4300000']);
    expectInputError(r, '--chunk-rows 4300000', /more than one array holds \(4294967296\); use --chunk-rows 4294967 or fewer/);
  });

  it('counts one-hot label rows in bytes (600000 x 1000 float64 one-hot labels in one chunk)', async () => {
    const s = sparseNpy(f('oh-s.npy'), '<f4', [600000, 1000]);
    const t = sparseNpy(f('oh-t.npy'), '<f4', [600000, 1000]);
    const y = sparseNpy(f('oh-y.npy'), '<f8', [600000, 1000]);
    const r = await runCli(['eval', '--student', s, '--teacher', t, '--labels', y, '--chunk-rows', '600000']);
    expectInputError(r, '--chunk-rows 600000', /float64 labels\) need arrays of 4800000000 elements.*use --chunk-rows 536870 or fewer/);
  });

  it('refuses a header whose element count is beyond exact integers, and one that promises more data than the file has', async () => {
    const huge = f('huge.npy');
    fs.writeFileSync(huge, npyHeader('<f4', [2 ** 40, 2 ** 40]));
    const r = await runCli(['eval', '--student', huge, '--teacher', huge]);
    expectInputError(r, huge, /shape \(1099511627776, 1099511627776\) is too large/);
    const lying = f('lying.npy');
    fs.writeFileSync(lying, Buffer.concat([npyHeader('<f8', [1000, 1000]), Buffer.alloc(64)]));
    const r2 = await runCli(['eval', '--student', lying, '--teacher', lying]);
    expectInputError(r2, lying, /truncated data: shape \(1000, 1000\) float64 needs 8000000 bytes after the header, the file has 64/);
  });

  it("refuses chunks larger than this machine's memory before allocating them", async function () {
    // float64 chunks of 4e6 x 1000: 32 GB per array, within one array's limit; four of them.
    const rows = 4000000;
    if (4 * rows * 1000 * 8 <= os.totalmem()) this.skip();
    const s = sparseNpy(f('mem-s.npy'), '<f8', [rows, 1000]);
    const t = sparseNpy(f('mem-t.npy'), '<f8', [rows, 1000]);
    const r = await runCli(['eval', '--student', s, '--teacher', t, '--chunk-rows', String(rows)]);
    expectInputError(r, `--chunk-rows ${rows}`, /need 128\.0 GB of buffers .* more than this machine's memory \(\d+\.\d GB\); use --chunk-rows \d+ or fewer/);
    const fewer = Number(/use --chunk-rows (\d+)/.exec(r.stderr)![1]);
    expect(fewer * 1000 * 8 * 4).to.be.below(os.totalmem());
  });
});
