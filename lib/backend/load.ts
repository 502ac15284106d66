/**
 * Locating and loading the native addon.
 *
 * Order: `KDLOSS_ADDON` when set; else what `node-gyp-build` finds in the package: a local build
 * (`build/Release`, made by the install script when no prebuilt binary fits this machine, by
 * `npm rebuild kdloss --build-from-source`, or by a developer), else the prebuilt binary for this
 * platform (`prebuilds/<platform>-<arch>/`). A local build wins because it only exists when the
 * install (or a developer) made one on purpose for this machine.
 * @module
 */
import * as fs from 'fs';
import * as path from 'path';
import type { Addon } from './native';

/** The installed package's root directory (this file is dist/backend/load.js). */
export const packageRoot: string = path.join(__dirname, '..', '..');

/**
 * Where the install script records, in one line, why it could not compile the addon; read into the
 * load-time message so that users see the reason the install hid (npm shows a successful install
 * script's output only with --foreground-scripts).
 */
export const installErrorFile: string = path.join(packageRoot, 'build', 'install-error.txt');

/** The part of node-gyp-build this module uses. */
interface NodeGypBuild {
  /** The addon node-gyp-build would load from the package in `dir`; throws when there is none. */
  path(dir: string): string;
}

/** Why no addon could be found: no local build and no prebuilt binary for this platform. */
export class AddonNotFound extends Error {
  /** @param message names the platform and the prebuilt platforms of this package */
  constructor(message: string) {
    super(message);
    this.name = 'AddonNotFound';
  }
}

/** The libc a prebuilt binary must be built for here (node-gyp-build's test: Alpine means musl). */
function libc(): string {
  return fs.existsSync('/etc/alpine-release') ? 'musl' : 'glibc';
}

/** This machine as prebuilt binaries are named: `linux-x64 glibc`, `darwin-arm64`, ... */
export function platformName(): string {
  return `${process.platform}-${process.arch}${process.platform === 'linux' ? ` ${libc()}` : ''}`;
}

/** The prebuilt binaries this package ships, named as {@link platformName} names machines, sorted. */
export function prebuiltPlatforms(): string[] {
  const found: string[] = [];
  const dir = path.join(packageRoot, 'prebuilds');
  let platforms: string[] = [];
  try {
    platforms = fs.readdirSync(dir);
  } catch {
    return found;
  }
  for (const platform of platforms) {
    let files: string[] = [];
    try {
      files = fs.readdirSync(path.join(dir, platform)).filter((f) => f.endsWith('.node'));
    } catch {
      continue;
    }
    for (const f of files) {
      const tag = f.split('.').find((t) => t === 'glibc' || t === 'musl');
      found.push(tag ? `${platform} ${tag}` : platform);
    }
  }
  return [...new Set(found)].sort();
}

/**
 * Path of the addon: KDLOSS_ADDON if set, else the local build or the matching prebuilt binary.
 * @throws AddonNotFound when there is neither
 */
export function addonPath(): string {
  const override = process.env.KDLOSS_ADDON;
  if (override) return override;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const nodeGypBuild = require('node-gyp-build') as NodeGypBuild;
  try {
    return nodeGypBuild.path(packageRoot);
  } catch {
    const prebuilt = prebuiltPlatforms();
    throw new AddonNotFound(
      `no prebuilt binary for ${platformName()} ` +
        `(this package has ${prebuilt.length > 0 ? prebuilt.join(', ') : 'none'}) and no local build in build/Release`,
    );
  }
}

/** Loads the addon; throws whatever finding or loading it throws (missing file, unusable KDLOSS_ISA, ...). */
export function loadAddon(): Addon {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(addonPath()) as Addon;
}

/** The install script's recorded reason for not compiling the addon, or null. */
export function installError(): string | null {
  try {
    const text = fs.readFileSync(installErrorFile, 'utf8').trim();
    return text === '' ? null : text;
  } catch {
    return null;
  }
}
