/**
 * The file formats `kdloss eval` reads, behind one opener: each format's reader implements
 * {@link RowSource}. A new format (safetensors, another dtype) adds its reader here.
 * @module
 */
import { NpyReader } from './npy';
import type { RowSource } from './source';

/**
 * Opens `file` and reads its header.
 * @throws FileError for a missing or unreadable file and every header problem
 */
export function openSource(file: string): Promise<RowSource> {
  return NpyReader.open(file);
}
