/**
 * The openstack profile's database cache. A first bring-up runs every service's migrations
 * (keystone, placement, glance, neutron, nova: about a minute of CPU on two cores), then
 * keystone's bootstrap and catalog and nova's cells. What that leaves in MariaDB depends only
 * on the packages and on the controller's name and address, so it is dumped once
 * (`mariadb-dump`, before any service writes rows of its own) with the passwords and
 * keystone's fernet and credential keys it was made with, under
 * <cache>/openstack/<key>/ (root only), and loaded by later bring-ups. The key is a hash of
 * every installed version of the profile's packages, the controller's name and address and
 * this file's format: an upgrade or another topology makes a new entry. The 4 most
 * recently used entries are kept.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, readFile, readdir, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { LocalNode } from '../../exec/local.ts';
import { run } from '../../exec/run.ts';
import type { LabPlan } from '../../provision/plan.ts';
import type { Secrets } from './config.ts';
import { openstackPackages } from './packages.ts';

/** Bump when what is cached, or how, changes. */
const FORMAT = 1;
const KEEP = 4;
export const CACHED_DATABASES = ['keystone', 'placement', 'glance', 'neutron', 'nova_api', 'nova', 'nova_cell0'];
const KEY_DIRS = ['fernet-keys', 'credential-keys'];

/** The cache key (pure): package versions, controller, format. */
export function cacheKey(o: { versions: string; controller: string; address: string }): string {
  return createHash('sha256').update(JSON.stringify({ format: FORMAT, ...o })).digest('hex').slice(0, 16);
}

export interface DatabaseCache {
  hit: boolean;
  dir: string;
  dump: string;
  secrets?: Secrets;
  /** Copies the cached keystone keys into keystone's /etc. */
  restoreKeys(keystoneEtc: string): Promise<void>;
  /** Dumps the databases (and keys, passwords) into the cache; a failure only costs the next bring-up its speed. */
  save(socket: string, controller: LocalNode, secrets: Secrets, keystoneEtc: string, warn?: (m: string) => void): Promise<void>;
}

export async function databaseCache(plan: LabPlan): Promise<DatabaseCache> {
  const root = join(dirname(plan.imageCache), 'openstack');
  const versions = (await run(['dpkg-query', '-W', '-f', '${Package}=${Version}\\n', ...openstackPackages(), 'mariadb-server-core'], { check: false })).stdout;
  const dir = join(root, cacheKey({ versions, controller: plan.nfsServer.name, address: plan.nfsServer.address }));
  const dump = join(dir, 'databases.sql');
  const hit = existsSync(join(dir, 'complete'));
  const secrets = hit ? (JSON.parse(await readFile(join(dir, 'secrets.json'), 'utf8')) as Secrets) : undefined;
  if (hit) await utimes(dir, new Date(), new Date()).catch(() => {});
  return {
    hit,
    dir,
    dump,
    secrets,
    async restoreKeys(keystoneEtc) {
      for (const k of KEY_DIRS) {
        await rm(join(keystoneEtc, k), { recursive: true, force: true });
        await cp(join(dir, k), join(keystoneEtc, k), { recursive: true, preserveTimestamps: true });
      }
    },
    async save(socket, controller, s, keystoneEtc, warn = () => {}) {
      const tmp = `${dir}.tmp-${process.pid}`;
      try {
        await mkdir(root, { recursive: true, mode: 0o700 });
        await rm(tmp, { recursive: true, force: true });
        await mkdir(tmp, { mode: 0o700 });
        const r = await controller.run(
          ['sh', '-c', 'umask 077; out="$0"; sock="$1"; shift; exec mariadb-dump --no-defaults --socket="$sock" --single-transaction --skip-comments --databases "$@" > "$out"', join(tmp, 'databases.sql'), socket, ...CACHED_DATABASES],
          { check: false, timeoutMs: 120_000 },
        );
        if (r.exitCode !== 0) throw new Error(r.stderr.trim());
        for (const k of KEY_DIRS) await cp(join(keystoneEtc, k), join(tmp, k), { recursive: true, preserveTimestamps: true });
        await writeFile(join(tmp, 'secrets.json'), JSON.stringify(s, null, 2), { mode: 0o600 });
        await writeFile(join(tmp, 'complete'), `${new Date().toISOString()}\n`, { mode: 0o600 });
        await rm(dir, { recursive: true, force: true });
        await rename(tmp, dir);
        await prune(root);
      } catch (e) {
        await rm(tmp, { recursive: true, force: true });
        warn(`openstack: the database cache was not written to ${dir} (${(e as Error).message.split('\n')[0]}); the next bring-up migrates every database again`);
      }
    },
  };
}

/** Keeps the KEEP most recently used entries; removes temporary ones older than an hour. */
async function prune(root: string): Promise<void> {
  const entries = await Promise.all(
    (await readdir(root)).map(async (name) => ({ name, mtime: (await stat(join(root, name)).catch(() => undefined))?.mtimeMs ?? 0 })),
  );
  const done = entries.filter((e) => !e.name.includes('.tmp-')).sort((a, b) => b.mtime - a.mtime);
  for (const e of done.slice(KEEP)) await rm(join(root, e.name), { recursive: true, force: true });
  for (const e of entries.filter((x) => x.name.includes('.tmp-') && Date.now() - x.mtime > 3600_000)) await rm(join(root, e.name), { recursive: true, force: true });
}
