/**
 * The installed kdloss package: where it is and its version.
 * @module
 */
import * as fs from 'fs';
import * as path from 'path';

/** The package's root directory (the one holding package.json, dist/ and build/). */
export const PACKAGE_ROOT = path.join(__dirname, '..', '..');

/** The package's version from its package.json ('unknown' when unreadable). */
export function packageVersion(): string {
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}
