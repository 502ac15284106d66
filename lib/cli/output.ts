/**
 * Output files of `kdloss eval`, written so that no input and no existing file is ever damaged: the
 * output is checked against every input by device and inode (whatever path names it), written to a
 * temporary file in the destination's directory, and renamed into place only once complete. A failed
 * or interrupted run removes the temporary file, also when the process leaves at once on a second
 * Ctrl-C (see {@link removeTemporariesSync}).
 * @module
 */
import * as fs from 'fs';
import { promises as fsp } from 'fs';
import * as path from 'path';
import { CliError, FileError, fileKind, fsProblem } from './errors';

/** What identifies a file on this machine, whatever path names it. */
export interface FileIdentity {
  dev: number;
  ino: number;
}

/** An input an output must not be. */
export interface NamedInput {
  /** The input's flag without dashes, e.g. 'student'. */
  flag: string;
  /** The input as given on the command line. */
  file: string;
  identity: FileIdentity;
}

/** Temporary files of this process not yet renamed or removed. */
const temporaries = new Set<string>();
let exitHookInstalled = false;

/**
 * Removes every temporary output of this process, synchronously: runs on process exit (also
 * process.exit() from a signal handler), where asynchronous clean-up no longer gets to run.
 */
export function removeTemporariesSync(): void {
  for (const t of temporaries) {
    try {
      fs.unlinkSync(t);
    } catch {
      // already gone
    }
  }
  temporaries.clear();
}

/**
 * Where an output to `target` goes: `target` itself, or the file an existing symlink points to; and
 * the permission bits of the file it replaces (null when there is none).
 * @throws CliError when it exists and is not a regular file, is not writable, or is one of `inputs`
 */
async function destination(target: string, flag: string, inputs: readonly NamedInput[]): Promise<{ path: string; mode: number | null }> {
  let st: fs.Stats;
  try {
    st = await fsp.stat(target);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { path: target, mode: null }; // nothing there (or a dangling symlink, replaced)
    throw new FileError(target, `cannot write: ${fsProblem(err)}`);
  }
  if (!st.isFile()) throw new FileError(target, `cannot write: not a regular file (${fileKind(st)})`);
  for (const input of inputs) {
    if (input.identity.dev === st.dev && input.identity.ino === st.ino) {
      throw new CliError(`--${flag}: ${target} is the same file as the --${input.flag} input ${input.file}`);
    }
  }
  try {
    await fsp.access(target, fs.constants.W_OK);
  } catch (err) {
    throw new FileError(target, `cannot write: ${fsProblem(err)}`);
  }
  return { path: await fsp.realpath(target), mode: st.mode & 0o7777 };
}

/** A new file written in place of `target` on {@link OutputFile.commit}; see the module comment. */
export class OutputFile {
  private done = false;

  private constructor(
    /** The output as given on the command line. */
    readonly file: string,
    /** The path renamed over on commit. */
    private readonly final: string,
    /** The temporary file being written. */
    readonly temporary: string,
    /** Its handle, for writing. */
    readonly handle: fsp.FileHandle,
  ) {}

  /**
   * Checks `file` against the inputs and creates the temporary file beside it.
   * @param flag the output's flag without dashes, for messages
   * @throws CliError / FileError when the output is an input, not a regular file, or cannot be written
   */
  static async create(file: string, flag: string, inputs: readonly NamedInput[]): Promise<OutputFile> {
    const { path: final, mode } = await destination(file, flag, inputs);
    const dir = path.dirname(final);
    // The name's start only: a destination name near the file system's limit must still have a temporary.
    const stem = path.basename(final).slice(0, 200);
    const temporary = path.join(dir, `.${stem}.${process.pid}-${Math.random().toString(36).slice(2, 10)}.tmp`);
    let handle: fsp.FileHandle;
    try {
      // O_EXCL: never an existing file; 0o666 less the umask, like any new file.
      handle = await fsp.open(temporary, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o666);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const where = code === 'ENOENT' ? 'no such directory' : fsProblem(err);
      throw new FileError(file, `cannot write: ${where}${code === 'ENOENT' ? '' : ` (a temporary file in ${dir} is renamed into place)`}`);
    }
    if (mode !== null) {
      // A replaced file keeps its permissions (a private 0600 file stays private).
      try {
        await handle.chmod(mode);
      } catch (err) {
        await handle.close().catch(() => undefined);
        await fsp.unlink(temporary).catch(() => undefined);
        throw new FileError(file, `cannot write: ${fsProblem(err)}`);
      }
    }
    if (!exitHookInstalled) {
      process.on('exit', removeTemporariesSync);
      exitHookInstalled = true;
    }
    temporaries.add(temporary);
    return new OutputFile(file, final, temporary, handle);
  }

  /**
   * Flushes the data to disk, closes the file and renames it into place.
   * @throws FileError when that fails (the temporary file is removed)
   */
  async commit(): Promise<void> {
    if (this.done) return;
    try {
      await this.handle.sync();
      await this.handle.close();
      await fsp.rename(this.temporary, this.final);
    } catch (err) {
      await this.discard();
      throw new FileError(this.file, `cannot write: ${fsProblem(err)}`);
    }
    this.done = true;
    temporaries.delete(this.temporary);
  }

  /** Closes and removes the temporary file (after an error or an interruption); the destination is untouched. */
  async discard(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.handle.close().catch(() => undefined);
    await fsp.unlink(this.temporary).catch(() => undefined);
    temporaries.delete(this.temporary);
  }
}
