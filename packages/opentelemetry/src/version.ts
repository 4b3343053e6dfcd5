import { readFileSync } from 'node:fs';

declare const __KEYFOB_VERSION__: string | undefined;

/**
 * The package version, reported as the instrumentation scope version. The build replaces `__KEYFOB_VERSION__` with package.json's
 * version (tsup `define`); running from source (tests, tsx) reads package.json next to `src/`.
 */
export const VERSION: string =
  typeof __KEYFOB_VERSION__ === 'string' ? __KEYFOB_VERSION__ : versionFromPackageJson();

function versionFromPackageJson(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
      version?: unknown;
    };
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    return '0.0.0';
  }
}
