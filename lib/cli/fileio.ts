/**
 * Opening and reading input files: regular files only, positional reads to the last byte.
 * @module
 */
import { createHash } from 'crypto';
import { constants, promises as fsp, type Stats } from 'fs';
import { FileError, fileKind, fsProblem } from './errors';

/**
 * Opens `file` for reading.
 * @throws FileError for a missing, unreadable or non-regular file
 */
export async function openRegular(file: string): Promise<{ fh: fsp.FileHandle; stats: Stats }> {
  // Only regular files: opening a FIFO blocks until a writer comes, a device or socket never ends or
  // fails. Checked before open, and again on the open file (O_NONBLOCK: a FIFO put there in between
  // opens at once instead of blocking, and is refused).
  let before: Stats;
  try {
    before = await fsp.stat(file);
  } catch (err) {
    throw new FileError(file, fsProblem(err));
  }
  if (!before.isFile()) throw new FileError(file, `not a regular file (${fileKind(before)})`);
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw new FileError(file, fsProblem(err));
  }
  try {
    const stats = await fh.stat();
    if (!stats.isFile()) throw new FileError(file, `not a regular file (${fileKind(stats)})`);
    return { fh, stats };
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw err;
  }
}

/** Fills `dst` from `position`, in as many reads as it takes. */
export async function readFully(fh: fsp.FileHandle, dst: Uint8Array, position: number, file: string): Promise<void> {
  let done = 0;
  while (done < dst.length) {
    let bytesRead: number;
    try {
      ({ bytesRead } = await fh.read(dst, done, dst.length - done, position + done));
    } catch (err) {
      throw new FileError(file, `read failed: ${fsProblem(err)}`);
    }
    if (bytesRead === 0) throw new FileError(file, `truncated data: the file ended at byte ${position + done} while reading`);
    done += bytesRead;
  }
}

/** Samples of {@link SAMPLE_BYTES} bytes a fingerprint hashes. */
export const SAMPLES = 16;
export const SAMPLE_BYTES = 4096;

/**
 * A cheap fingerprint of a file's content: the SHA-256 of its size and of {@link SAMPLES} blocks of
 * {@link SAMPLE_BYTES} bytes at evenly spaced offsets, the first at 0 (the header) and the last ending
 * at the end (the whole file when it is no larger than the blocks). It tells apart files of the same
 * shape but other data, wherever the file was copied to (no path or time goes in), for the price of a
 * few reads.
 */
export async function fingerprint(fh: fsp.FileHandle, size: number, file: string): Promise<string> {
  const hash = createHash('sha256');
  hash.update(`kdloss-fingerprint/1 ${size}\n`);
  if (size <= SAMPLES * SAMPLE_BYTES) {
    const all = Buffer.alloc(size);
    await readFully(fh, all, 0, file);
    hash.update(all);
  } else {
    const block = Buffer.alloc(SAMPLE_BYTES);
    const span = size - SAMPLE_BYTES;
    for (let i = 0; i < SAMPLES; i++) {
      await readFully(fh, block, Math.floor((span * i) / (SAMPLES - 1)), file);
      hash.update(block);
    }
  }
  return `sha256:${hash.digest('hex')}`;
}
