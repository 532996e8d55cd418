/**
 * libvirtd on a lab node, as an independent host: inside the node's own network, mount
 * and UTS namespaces, with private copies bind-mounted over /etc/libvirt, /etc/default,
 * /var/lib/libvirt, /var/log/libvirt, /var/cache/libvirt, /etc/passwd and /etc/group
 * (which hold the `libvirt-qemu` user and the `libvirtd` group libvirtd looks up), its
 * /run/libvirt in the node's private /run. Started the tutorial's way, `libvirtd -d -l`,
 * with a per-node pid file; a lab daemon in the ledger (it lives as long as the lab).
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, copyFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MigralabError } from '../../errors.ts';
import type { LabNode, StartedLab } from '../../provision/provider.ts';
import type { Ledger, Resource } from '../../state/ledger.ts';
import { waitFor } from '../../time/wait.ts';
import { LIBVIRT_BIN_DEFAULTS, LIBVIRT_TCP_PORT, libvirtdConf, qemuConf } from './config.ts';

export const LIBVIRTD_PID = '/run/libvirt/libvirtd.pid';
/** The file that marks a host directory as a mount point migralab made (lab/provision/local.ts removes it with the lab). */
export const MOUNTPOINT_MARKER = '.migralab-mountpoint';

/** Where a node's private libvirt directories live on the host. */
export function libvirtDirs(node: LabNode) {
  const root = join(node.plan.dir, 'libvirt');
  return {
    root,
    etc: join(root, 'etc'),
    defaults: join(root, 'default'),
    lib: join(root, 'lib'),
    log: join(root, 'log'),
    cache: join(root, 'cache'),
    passwd: join(root, 'passwd'),
    group: join(root, 'group'),
    conf: join(root, 'etc', 'libvirtd.conf'),
  };
}

/** /etc/passwd and /etc/group with libvirt's user and groups added (pure). */
export function withLibvirtAccounts(passwd: string, group: string): { passwd: string; group: string } {
  const has = (text: string, name: string) => text.split('\n').some((l) => l.startsWith(`${name}:`));
  let p = passwd.endsWith('\n') ? passwd : `${passwd}\n`;
  let g = group.endsWith('\n') ? group : `${group}\n`;
  if (!has(g, 'libvirt-qemu')) g += 'libvirt-qemu:x:64055:\n';
  if (!has(g, 'libvirtd')) g += 'libvirtd:x:64056:\n';
  if (!has(g, 'libvirt')) g += 'libvirt:x:64057:\n';
  if (!has(p, 'libvirt-qemu')) p += 'libvirt-qemu:x:64055:64055:Libvirt Qemu,,,:/var/lib/libvirt:/usr/sbin/nologin\n';
  return { passwd: p, group: g };
}

/**
 * A directory on the host for lab nodes to mount over, where the host has none (no
 * libvirt-daemon-system): made empty with a marker file (so a later lab knows it is
 * migralab's, not a libvirt installation's), in the ledger, removed by down.
 */
export async function privateMountPoint(ledger: Ledger, mp: string): Promise<void> {
  const ours = existsSync(join(mp, MOUNTPOINT_MARKER));
  if (existsSync(mp) && !ours) return;
  if (!ledger.resources.some((r) => r.kind === 'mountpoint' && r.path === mp)) await ledger.record({ kind: 'mountpoint', path: mp });
  await mkdir(mp, { recursive: true, mode: 0o755 });
  await writeFile(join(mp, MOUNTPOINT_MARKER), 'made by migralab as a mount point for its lab nodes; removed with the lab\n');
}

/** libvirtd answering on the node's local socket? */
async function answers(node: LabNode): Promise<boolean> {
  const r = await node.transport.run(['virsh', '-c', 'qemu:///system', 'version'], { check: false, timeoutMs: 10_000 });
  return r.exitCode === 0;
}

/** Starts libvirtd on every compute node that does not run one yet. */
export async function ensureLibvirtd(lab: StartedLab, progress: (m: string) => void = () => {}): Promise<void> {
  if (lab.ensureLibvirtd) return lab.ensureLibvirtd(progress);
  const running = lab.ledger.resources.filter((r): r is Extract<Resource, { kind: 'process' }> => r.kind === 'process' && r.name.startsWith('libvirtd@'));
  await Promise.all(
    lab.computes.map(async (node) => {
      const entry = running.find((r) => r.name === `libvirtd@${node.name}`);
      if (entry?.pid !== undefined && (await node.transport.process(entry.pid, entry.startTime).alive()) && (await answers(node))) return;
      if (entry) await lab.ledger.forget((r) => r === entry);
      await startLibvirtd(lab.ledger, node);
      progress(`libvirt: libvirtd -d -l on ${node.name}, listening on ${node.address}:${LIBVIRT_TCP_PORT} (TCP, no TLS, no auth: the tutorial's settings, inside the lab only)`);
    }),
  );
}

/** libvirtd on one node, the tutorial's way (the openstack profile starts its computes' this way too). */
export async function startLibvirtd(ledger: Ledger, node: LabNode): Promise<void> {
  const t = node.transport;
  const d = libvirtDirs(node);
  for (const dir of [d.etc, join(d.etc, 'qemu'), d.defaults, d.lib, d.log, d.cache]) await mkdir(dir, { recursive: true, mode: 0o700 });
  // The host's own libvirt client configuration, then the tutorial's daemon configuration.
  for (const f of await readdir('/etc/libvirt').catch(() => [] as string[])) if (f.endsWith('.conf')) await copyFile(join('/etc/libvirt', f), join(d.etc, f));
  await writeFile(d.conf, libvirtdConf(node.address), { mode: 0o600 });
  await writeFile(join(d.etc, 'qemu.conf'), qemuConf(node), { mode: 0o600 });
  for (const f of await readdir('/etc/default').catch(() => [] as string[])) await copyFile(join('/etc/default', f), join(d.defaults, f)).catch(() => {});
  await writeFile(join(d.defaults, 'libvirt-bin'), LIBVIRT_BIN_DEFAULTS, { mode: 0o644 });
  const accounts = withLibvirtAccounts(await readFile('/etc/passwd', 'utf8'), await readFile('/etc/group', 'utf8'));
  await writeFile(d.passwd, accounts.passwd, { mode: 0o644 });
  await writeFile(d.group, accounts.group, { mode: 0o644 });
  // Mount points libvirt needs that the host may not have (no libvirt-daemon-system): made empty with a
  // marker file (so a later lab knows they are migralab's, not a libvirt installation's), removed by down.
  for (const mp of ['/var/lib/libvirt', '/var/log/libvirt', '/var/cache/libvirt']) await privateMountPoint(ledger, mp);
  const binds: [string, string][] = [
    [d.etc, '/etc/libvirt'],
    [d.defaults, '/etc/default'],
    [d.lib, '/var/lib/libvirt'],
    [d.log, '/var/log/libvirt'],
    [d.cache, '/var/cache/libvirt'],
    [d.passwd, '/etc/passwd'],
    [d.group, '/etc/group'],
  ];
  for (const [from, to] of binds) {
    // Already bound (libvirtd died and is started again): bind again on top, harmless.
    await t.run(['mount', '--bind', from, to]);
  }
  await t.run(['mkdir', '-p', '/run/libvirt']);
  const slot = await ledger.record({ kind: 'process', name: `libvirtd@${node.name}`, node: 'lab' });
  // As /etc/default/libvirt-bin says: -d (daemon) -l (listen); the pid file is the node's own.
  const r = await t.run(['libvirtd', '-d', '-l', '-p', LIBVIRTD_PID, '-f', '/etc/libvirt/libvirtd.conf'], { check: false, timeoutMs: 30_000 });
  if (r.exitCode !== 0) throw new MigralabError('LAB', `libvirtd on ${node.name} did not start: ${(r.stderr || r.stdout).trim() || `exit ${r.exitCode}`} (see ${d.log})`);
  const pid = await waitFor(
    `libvirtd's pid file on ${node.name}`,
    async () => {
      const c = await t.run(['cat', LIBVIRTD_PID], { check: false });
      const n = Number(c.stdout.trim());
      return Number.isInteger(n) && n > 0 ? n : undefined;
    },
    { timeoutMs: 10_000, intervalMs: 20 },
  );
  await ledger.update(slot, { pid, startTime: t.process(pid).startTime });
  await waitFor(`libvirtd on ${node.name} to answer`, () => answers(node), { timeoutMs: 20_000, intervalMs: 50 });
  await waitFor(
    `libvirtd on ${node.name} to listen on ${node.address}:${LIBVIRT_TCP_PORT}`,
    async () => (await t.run(['ss', '-Hltn', 'sport', '=', `:${LIBVIRT_TCP_PORT}`], { check: false })).stdout.includes(`${node.address}:${LIBVIRT_TCP_PORT}`),
    { timeoutMs: 10_000, intervalMs: 50 },
  );
}

/** libvirtd's version on a node (`libvirtd --version`). */
export async function libvirtVersion(node: LabNode): Promise<string | null> {
  const r = await node.transport.run(['libvirtd', '--version'], { check: false });
  return /(\d+\.\d+\.\d+)/.exec(r.stdout)?.[1] ?? null;
}
