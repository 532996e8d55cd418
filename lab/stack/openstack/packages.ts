/**
 * The `stack: openstack` profile's Debian packages: one list (packages.txt), installed by
 * `bash scripts/setup.sh --openstack` only when asked, and checked by `up` before it starts
 * anything, so a missing package is named with the command that installs it.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MigralabError } from '../../errors.ts';
import { run } from '../../exec/run.ts';

export const PACKAGE_LIST = fileURLToPath(new URL('./packages.txt', import.meta.url));
export const INSTALL_COMMAND = 'bash scripts/setup.sh --openstack';

/** The package names of packages.txt (pure over its text). */
export function parsePackageList(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.replace(/#.*/, '').trim())
    .filter(Boolean)
    .map((l) => l.split(/\s+/)[0]!);
}

export function openstackPackages(): string[] {
  return parsePackageList(readFileSync(PACKAGE_LIST, 'utf8'));
}

/** The packages of the list that dpkg does not have installed. */
export async function missingOpenstackPackages(packages = openstackPackages()): Promise<string[]> {
  const r = await run(['dpkg-query', '-W', '-f', '${Package} ${Status}\\n', ...packages], { check: false });
  const ok = new Set(
    r.stdout
      .split('\n')
      .filter((l) => l.endsWith(' install ok installed'))
      .map((l) => l.split(' ')[0]),
  );
  return packages.filter((p) => !ok.has(p));
}

/** Refuses (exit 3, before anything starts) when the profile's packages are not all installed. */
export async function checkOpenstackPackages(packages = openstackPackages()): Promise<void> {
  const missing = await missingOpenstackPackages(packages);
  if (missing.length)
    throw new MigralabError(
      'PREREQ',
      `the openstack lab profile (stack: openstack) needs Debian packages that are not installed: ${missing.join(', ')}. Install them with: ${INSTALL_COMMAND} (about 360 packages, about 3 minutes; the install starts no service)`,
    );
}
