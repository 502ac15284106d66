/**
 * The file formats `kdloss eval` reads, behind one opener: a .npy file or a safetensors file, told
 * apart by their content (the .npy magic, or a JSON object after safetensors' 8-byte length), never by
 * the name. Each format's reader implements {@link InputFile}; {@link selectArray} picks the array a
 * flag names.
 * @module
 */
import * as path from 'path';
import { FileError } from './errors';
import { openRegular, readFully } from './fileio';
import { isNpy, NpyFile } from './npy';
import { looksLikeSafetensors, quoteName, SafetensorsFile } from './safetensors';
import type { ArraySource, InputFile } from './source';

/** A problem with one array: the file, and the tensor in a file of several. */
export function arrayError(a: ArraySource, problem: string): FileError {
  return new FileError(a.file, a.key === null ? problem : `tensor ${quoteName(a.key)}: ${problem}`);
}

/** Names listed in a message about a file of several tensors. */
const LIST_MAX = 10;

/**
 * Opens `file` and reads its header.
 * @throws FileError for a missing or unreadable file and every header problem
 */
export async function openInput(file: string): Promise<InputFile> {
  const { fh, stats } = await openRegular(file);
  try {
    const prefix = Buffer.alloc(Math.min(stats.size, 12));
    await readFully(fh, prefix, 0, file);
    if (isNpy(prefix)) return await NpyFile.open(file, fh, stats, prefix);
    // A name ending in .safetensors only chooses the message: its header's problem rather than "neither".
    if (looksLikeSafetensors(prefix) || path.extname(file).toLowerCase() === '.safetensors') {
      return await SafetensorsFile.open(file, fh, stats);
    }
    if (stats.size === 0) throw new FileError(file, 'empty file, not a NumPy .npy or safetensors file');
    throw new FileError(file, 'not a NumPy .npy file (bad magic) nor a safetensors file (no JSON header after the 8-byte length)');
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw err;
  }
}

/** "'a', 'b', ... and 3 more" */
export function nameList(names: readonly string[]): string {
  const shown = names.slice(0, LIST_MAX).map(quoteName).join(', ');
  return names.length > LIST_MAX ? `${shown} and ${names.length - LIST_MAX} more` : shown;
}

/**
 * The array of `input` that `--<flag>` reads: the one named by `key` (`--<flag>-key`), or the file's
 * only array.
 * @throws FileError when the key names no array, a .npy file is given a key, or a file of several
 *   arrays is given none
 */
export function selectArray(input: InputFile, key: string | undefined, flag: string): ArraySource {
  const arrays = input.arrays;
  if (input.format === 'npy') {
    if (key !== undefined) throw new FileError(input.file, `--${flag}-key ${quoteName(key)}: a .npy file holds one unnamed array (keys name safetensors tensors)`);
    return arrays[0];
  }
  const names = arrays.map((a) => a.key!);
  if (key !== undefined) {
    const found = arrays.find((a) => a.key === key);
    if (found) return found;
    throw new FileError(
      input.file,
      arrays.length === 0 ? `no tensor ${quoteName(key)}: the file holds no tensors` : `no tensor ${quoteName(key)} (the file holds ${nameList(names)})`,
    );
  }
  if (arrays.length === 1) return arrays[0];
  if (arrays.length === 0) throw new FileError(input.file, 'the file holds no tensors');
  throw new FileError(input.file, `the file holds ${arrays.length} tensors; pick one with --${flag}-key: ${nameList(names)}`);
}
