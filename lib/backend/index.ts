/**
 * Backend selection: native by default, the pure TypeScript backend on request (`setBackend('js')`,
 * env KDLOSS_BACKEND=js) or where the addon cannot load.
 * @module
 */
import { ConfigError, NativeError } from '../errors';
import { jsBackend } from './js';
import { type Addon, loadAddon, type NativeInfo, nativeBackend } from './native';
import type { Backend } from './types';

/** Name of a compute backend. */
export type BackendName = 'native' | 'js';

let addon: Addon | null = null;
let addonError: Error | null = null;
try {
  addon = loadAddon();
} catch (err) {
  addonError = err as Error;
  // An unusable KDLOSS_ISA is the user's explicit request: fail loudly at load, never fall back.
  if ((err as { code?: string }).code === 'ERR_KD_CONFIG') throw new ConfigError((err as Error).message);
}
const native: Backend | null = addon ? nativeBackend(addon) : null;

function initial(): Backend {
  const env = process.env.KDLOSS_BACKEND;
  if (env === undefined || env === '' || env === 'native') return native ?? jsBackend;
  if (env === 'js') return jsBackend;
  throw new ConfigError(`KDLOSS_BACKEND: expected 'native' or 'js', got '${env}'`);
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
    if (native === null) throw new NativeError(`native backend unavailable: ${addonError?.message ?? 'not built'}`);
    current = native;
  } else {
    throw new ConfigError(`backend: expected 'native' or 'js', got '${String(name)}'`);
  }
}

/** The name of the backend in use. */
export function getBackend(): BackendName {
  return current.name;
}

/** Why the native addon could not be loaded, or null when it is loaded. */
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
