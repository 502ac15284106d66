/**
 * Backend selection: native by default, the pure TypeScript backend on request (`setBackend('js')`,
 * env KDLOSS_BACKEND=js) or where the addon cannot load. That fallback is announced once per process
 * on stderr, in one line with the reason and the fix; KDLOSS_BACKEND=native turns it into a
 * {@link NativeError} at load.
 * @module
 */
import { getEnvironmentData, setEnvironmentData } from 'worker_threads';
import { ConfigError, NativeError } from '../errors';
import { jsBackend } from './js';
import { AddonNotFound, installError, loadAddon } from './load';
import { type Addon, type NativeInfo, nativeBackend } from './native';
import type { Backend } from './types';

/** Name of a compute backend. */
export type BackendName = 'native' | 'js';

let addon: Addon | null = null;
let addonError: NativeError | null = null;
let addonFix = '';
try {
  addon = loadAddon();
} catch (err) {
  // An unusable KDLOSS_ISA is the user's explicit request: fail loudly at load, never fall back.
  if ((err as { code?: string }).code === 'ERR_KD_CONFIG') throw new ConfigError((err as Error).message);
  addonError = loadFailure(err);
}

/** The one-line reason for a failed load (with what the install script recorded) as a NativeError. */
function loadFailure(err: unknown): NativeError {
  const first = String((err as Error)?.message ?? err).split('\n')[0].trim();
  let reason: string;
  if (err instanceof AddonNotFound) {
    const install = installError();
    reason = install === null ? first : `${first}; the install could not compile it: ${install}`;
    addonFix = "install python3, make and a C++17 compiler (e.g. apt-get install python3 make g++), then run 'npm rebuild kdloss'";
  } else if (process.env.KDLOSS_ADDON) {
    reason = `KDLOSS_ADDON=${process.env.KDLOSS_ADDON}: ${first}`;
    addonFix = 'point KDLOSS_ADDON at a kdloss.node built for this machine, or unset it';
  } else {
    reason = first;
    addonFix = "rebuild it for this machine with 'npm rebuild kdloss --build-from-source' (needs python3, make and a C++17 compiler)";
  }
  const error = new NativeError(`native addon not loaded: ${reason}`);
  (error as { cause?: unknown }).cause = err;
  return error;
}

/** Worker-thread environment key marking that this process has printed the fallback warning. */
const WARNED = 'kdloss:js-fallback-warned';

/** Prints the fallback warning unless this process (its main thread or an earlier worker's parent) already did. */
function warnFallback(error: NativeError): void {
  if (getEnvironmentData(WARNED) === true) return;
  // Workers started from now on inherit the mark, so a pool of workers loading kdloss stays quiet.
  setEnvironmentData(WARNED, true);
  process.stderr.write(
    `kdloss: ${error.message}; running on the js backend (same results, slower). To fix: ${addonFix}. ` +
      'KDLOSS_BACKEND=native makes this an error, KDLOSS_BACKEND=js silences it.\n',
  );
}

const native: Backend | null = addon ? nativeBackend(addon) : null;

function initial(): Backend {
  const env = process.env.KDLOSS_BACKEND;
  if (env === 'js') return jsBackend;
  if (env !== undefined && env !== '' && env !== 'native') {
    throw new ConfigError(`KDLOSS_BACKEND: expected 'native' or 'js', got '${env}'`);
  }
  if (native !== null) return native;
  const error = addonError ?? new NativeError('native addon not loaded');
  if (env === 'native') {
    throw new NativeError(`KDLOSS_BACKEND=native: ${error.message}. To fix: ${addonFix}`);
  }
  warnFallback(error);
  return jsBackend;
}

let current: Backend = initial();

/** The backend computations currently run on. */
export function backend(): Backend {
  return current;
}

/**
 * Chooses the compute backend for every later call.
 * @param name 'native' (the C++ kernels) or 'js' (pure TypeScript, same semantics)
 * @throws ConfigError for an unknown name; NativeError when the addon could not be loaded
 */
export function setBackend(name: BackendName): void {
  if (name === 'js') {
    current = jsBackend;
  } else if (name === 'native') {
    if (native === null) throw new NativeError(`setBackend('native'): ${addonError?.message ?? 'native addon not loaded'}`);
    current = native;
  } else {
    throw new ConfigError(`backend: expected 'native' or 'js', got '${String(name)}'`);
  }
}

/** The name of the backend in use. */
export function getBackend(): BackendName {
  return current.name;
}

/**
 * Why the native addon could not be loaded (a {@link NativeError} whose message is the one-line reason,
 * with the original error as `cause`), or null when it is loaded.
 */
export function nativeLoadError(): Error | null {
  return addonError;
}

/** The loaded addon (for the benchmark's roofline probes), or null. */
export function nativeAddon(): Addon | null {
  return addon;
}

/** The addon's kernel information, or null without the addon. */
export function nativeInfo(): NativeInfo | null {
  return addon ? addon.info() : null;
}
