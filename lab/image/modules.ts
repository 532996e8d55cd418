/**
 * Pure handling of the kernel's `modules.dep`: which module files to load, in
 * which order, for a list of wanted module names.
 */
import { MigralabError } from '../errors.ts';

/** The modules the guest needs: virtio PCI transport, network, block, and vfat for the config drive. */
export const GUEST_MODULES: readonly string[] = [
  'virtio_pci',
  'virtio_net',
  'virtio_blk',
  'vfat',
  'nls_cp437',
  'nls_ascii',
  'nls_utf8',
];

/** module file (relative to /lib/modules/<version>) -> its direct dependencies (files). */
export type ModuleDeps = Map<string, string[]>;

/** `kernel/drivers/net/virtio_net.ko.xz` -> `virtio_net` (dashes normalized to underscores, like modprobe). */
export function moduleName(file: string): string {
  const base = file.slice(file.lastIndexOf('/') + 1);
  return base.replace(/\.ko(\.(xz|gz|zst))?$/, '').replace(/-/g, '_');
}

export function parseModulesDep(text: string): ModuleDeps {
  const deps: ModuleDeps = new Map();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new MigralabError('PREREQ', `modules.dep: malformed line ${JSON.stringify(raw)}`);
    const file = line.slice(0, colon).trim();
    const list = line.slice(colon + 1).trim();
    deps.set(file, list === '' ? [] : list.split(/\s+/));
  }
  return deps;
}

/**
 * Resolves the wanted modules and everything they depend on, returning module files
 * in load order: every dependency before its dependents, each file once. Wanted
 * names missing from modules.dep raise a PREREQ error naming them (a module that is
 * built into the kernel is not in modules.dep: pass `builtin` names to skip them).
 */
export function resolveModules(deps: ModuleDeps, wanted: readonly string[], builtin: ReadonlySet<string> = new Set()): string[] {
  const byName = new Map<string, string>();
  for (const file of deps.keys()) byName.set(moduleName(file), file);

  const order: string[] = [];
  const done = new Set<string>();
  const visiting = new Set<string>();
  const visit = (file: string, chain: string[]): void => {
    if (done.has(file)) return;
    if (visiting.has(file)) throw new MigralabError('PREREQ', `modules.dep: dependency cycle ${[...chain, file].map(moduleName).join(' -> ')}`);
    visiting.add(file);
    const direct = deps.get(file);
    if (direct === undefined) throw new MigralabError('PREREQ', `modules.dep: ${file} (needed by ${chain.map(moduleName).join(' -> ')}) is not listed`);
    // modules.dep lists dependencies so that loading them right-to-left works; walk them in
    // that order so the result matches what modprobe would do.
    for (const dep of [...direct].reverse()) visit(dep, [...chain, file]);
    visiting.delete(file);
    done.add(file);
    order.push(file);
  };

  const missing: string[] = [];
  for (const w of wanted) {
    const name = w.replace(/-/g, '_');
    const file = byName.get(name);
    if (file === undefined) {
      if (!builtin.has(name)) missing.push(w);
      continue;
    }
    visit(file, []);
  }
  if (missing.length > 0) {
    throw new MigralabError('PREREQ', `kernel modules not found in modules.dep: ${missing.join(', ')} (is the matching linux-image package installed?)`);
  }
  return order;
}

/** Names of modules built into the kernel, from `modules.builtin` text (paths like kernel/fs/fat/fat.ko). */
export function parseModulesBuiltin(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (t !== '') names.add(moduleName(t));
  }
  return names;
}
