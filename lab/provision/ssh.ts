/**
 * The ssh provider: existing hosts (real devstack nodes, CI VMs, or a local lab's own
 * sshd hosts), reached over ssh2, given the tutorial's configuration and reverted by
 * `down`.
 *
 * `up --plan` prints every change and changes nothing. `up` applies them, recording each
 * one in a ledger on the host *before* making it, with a backup of every file it changes:
 *   - /etc/hosts: the lab's nodes by name (the tutorial's entries), only those missing;
 *   - the controller's NFS export of its instances directory: the kernel's nfsd
 *     (/etc/exports + exportfs) where the host has it, else nfs-ganesha (+ rpcbind for
 *     NFSv3) started by migralab;
 *   - compute nodes that are NFS clients: `mount -t nfs controller:DIR DIR`, where the
 *     kernel can; else QEMU opens the disks with its own nfs:// driver (recorded);
 *   - migralab's own directory on each host (image, run files, ledger, backups).
 * `down` replays each host's ledger in reverse: services stopped, mounts undone, files
 * restored byte for byte from their backups, directories it made removed; nothing a user
 * had already is touched.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Topology } from '../config/topology.ts';
import { MigralabError } from '../errors.ts';
import { LocalNode } from '../exec/local.ts';
import { SshNode, shellJoin } from '../exec/ssh.ts';
import type { NodeTransport } from '../exec/transport.ts';
import { buildGuestImage } from '../image/build.ts';
import { ganeshaConfig, rpcbindArgv, rpcbindListeners } from '../nfs/ganesha.ts';
import { confWithSettings, domainMark, LIBVIRT_TCP_PORT, libvirtdSettings, qemuSettings } from '../migrate/libvirt/config.ts';
import { Ledger, type Resource } from '../state/ledger.ts';
import { waitFor } from '../time/wait.ts';
import { knownIssues, type Environment } from './environment.ts';
import { planLab, type LabPlan, type NodePlan } from './plan.ts';
import type { DownReport, LabInfo, LabNode, LabStatus, Progress, Provider, StartedLab } from './provider.ts';

/** One change to a host, as planned and as recorded in the host's ledger. */
export type HostChange =
  | { kind: 'mkdir'; path: string; /** holds the hosts' ledgers too: removed last, and only where empty */ container?: boolean }
  | { kind: 'file'; path: string; existed: boolean; before: string; after: string; backup?: string }
  | { kind: 'service'; name: string; argv: string[]; logFile: string; pid?: number; startTime?: string }
  | { kind: 'mount'; source: string; target: string; options: string }
  | { kind: 'command'; argv: string[]; revert?: string[] }
  | { kind: 'upload'; path: string; from: string };

export interface HostPlan {
  node: string;
  login: string;
  changes: HostChange[];
  /** What the host lacks, with the command that installs it. */
  missing: { program: string; pkg: string }[];
  nfsServer?: 'kernel' | 'ganesha';
  nfsClient?: 'kernel' | 'qemu';
  notes: string[];
}

export const HOSTS_MARK = (lab: string) => `# migralab ${lab}: the lab's nodes by name, as the live-migration tutorial has them`;

/** /etc/hosts with the lab's nodes added where they are missing (pure); the same text when nothing is. */
export function hostsWithNodes(text: string, lab: string, nodes: readonly { name: string; address: string }[]): string {
  const has = (n: { name: string; address: string }) => text.split('\n').some((l) => {
    const f = l.replace(/#.*/, '').trim().split(/\s+/);
    return f[0] === n.address && f.slice(1).includes(n.name);
  });
  const missing = nodes.filter((n) => !has(n));
  if (!missing.length) return text;
  const base = text === '' || text.endsWith('\n') ? text : `${text}\n`;
  return `${base}${HOSTS_MARK(lab)}\n${missing.map((n) => `${n.address}\t${n.name}`).join('\n')}\n`;
}

/** /etc/exports with the instances directory exported to the lab network (pure). */
export function exportsWithExport(text: string, dir: string, cidr: string, options: string): string {
  if (text.split('\n').some((l) => l.trim().split(/\s+/)[0] === dir)) return text;
  const base = text === '' || text.endsWith('\n') ? text : `${text}\n`;
  return `${base}${dir} ${cidr}(${options})\n`;
}

/** A unified-style diff of two texts for the plan (pure; whole lines, no context folding). */
export function lineDiff(before: string, after: string): string[] {
  const a = before.split('\n');
  const b = after.split('\n');
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  let j = 0;
  while (j < a.length - i && j < b.length - i && a[a.length - 1 - j] === b[b.length - 1 - j]) j++;
  return [...a.slice(i, a.length - j).map((l) => `- ${l}`), ...b.slice(i, b.length - j).map((l) => `+ ${l}`)];
}

export function formatPlan(plans: readonly HostPlan[]): string {
  const out: string[] = [];
  for (const p of plans) {
    out.push(`${p.node} (${p.login}): NFS ${p.nfsServer ? `server ${p.nfsServer}` : ''}${p.nfsClient ? `client ${p.nfsClient}` : ''}`.trimEnd());
    if (p.missing.length) out.push(`  missing: ${p.missing.map((m) => m.program).join(', ')} — install with: apt-get install -y ${[...new Set(p.missing.map((m) => m.pkg))].join(' ')} (or migralab up --install)`);
    for (const c of p.changes) {
      if (c.kind === 'file') {
        out.push(`  ${c.existed ? 'change' : 'create'} ${c.path}:`);
        for (const l of lineDiff(c.before, c.after)) out.push(`    ${l}`);
      } else if (c.kind === 'mkdir') out.push(`  mkdir ${c.path}`);
      else if (c.kind === 'service') out.push(`  start ${c.name}: ${shellJoin(c.argv)}`);
      else if (c.kind === 'mount') out.push(`  mount -t nfs -o ${c.options} ${c.source} ${c.target}`);
      else if (c.kind === 'command') out.push(`  run ${shellJoin(c.argv)}${c.revert ? ` (down runs ${shellJoin(c.revert)})` : ''}`);
      else out.push(`  upload ${c.from} → ${c.path}`);
    }
    for (const n of p.notes) out.push(`  note: ${n}`);
  }
  return out.join('\n');
}

function sshNode(n: NodePlan): SshNode {
  const s = n.ssh!;
  return new SshNode({
    name: n.name,
    host: s.host,
    port: s.port,
    user: s.user,
    ...(s.identityFile ? { identityFile: s.identityFile } : {}),
    ...(s.knownHosts ? { knownHosts: s.knownHosts } : {}),
    ...(s.hostKey ? { hostKey: s.hostKey } : {}),
    ...(s.viaNetns ? { proxyCommand: new LocalNode('via', s.viaNetns).tcpPipeArgv(s.host, s.port) } : {}),
    sudo: s.user !== 'root',
  });
}

/** Where migralab keeps its things on a host (per node: hosts may share a file system). */
export function remotePaths(t: Pick<Topology, 'name' | 'paths'>, node: string) {
  const root = join(t.paths.remoteState, t.name);
  const own = `${root}-${node}`;
  return { root, ledger: `${own}.ledger.json`, backups: `${own}.backups`, image: join(root, 'image'), ganesha: join(root, 'ganesha') };
}

/** The topmost directory of `path` that does not exist yet (what a mkdir -p makes and a revert removes), or undefined. */
async function firstMissing(t: NodeTransport, path: string): Promise<string | undefined> {
  let missing: string | undefined;
  for (let p = path; p !== '/' && p !== '.'; p = dirname(p)) {
    if (await t.exists(p)) break;
    missing = p;
  }
  return missing;
}

const program = async (t: NodeTransport, p: string) => (await t.run(['sh', '-c', 'command -v "$1"', 'sh', p], { check: false })).exitCode === 0;

/** What every host must have, and for which package. */
const HOST_PROGRAMS: Record<string, string> = { 'qemu-system-x86_64': 'qemu-system-x86', 'qemu-img': 'qemu-utils', ip: 'iproute2', ss: 'iproute2', setsid: 'util-linux' };

async function planHost(t: Topology, plan: LabPlan, n: NodePlan, node: SshNode, imageFiles: { kernel: string; initrd: string }, opts: PlanOptions = {}): Promise<HostPlan> {
  const r = remotePaths(t, n.name);
  // A login that is not root must sudo without a password: asked once, before anything else runs through sudo.
  if (n.ssh!.user !== 'root') {
    const why = await node.sudoRefusal();
    if (why !== undefined) throw new MigralabError('PREREQ', `${n.name}: ${n.ssh!.user} is not root and sudo -n refuses (${why}): migralab needs root or password-less sudo there`);
  }
  const hp: HostPlan = { node: n.name, login: `${n.ssh!.user}@${n.ssh!.host}:${n.ssh!.port}`, changes: [], missing: [], notes: [] };
  for (const [p, pkg] of Object.entries(HOST_PROGRAMS)) if (!(await program(node, p))) hp.missing.push({ program: p, pkg });

  const stateTop = await firstMissing(node, r.root);
  // Above the lab's own directory (remoteState itself was missing) it also holds every lab's
  // host ledgers, possibly other labs' or, where two hosts share a file system, the other
  // host's: down removes only its empty directories, after this host's ledger.
  if (stateTop) hp.changes.push(stateTop === r.root ? { kind: 'mkdir', path: stateTop } : { kind: 'mkdir', path: stateTop, container: true });
  hp.changes.push({ kind: 'mkdir', path: n.dir });
  const hosts = (await node.run(['cat', '/etc/hosts'], { check: false })).stdout;
  const hostsText = hosts === '' ? '' : `${hosts}\n`;
  const newHosts = hostsWithNodes(hostsText, plan.lab, plan.nodes);
  if (newHosts !== hostsText) hp.changes.push({ kind: 'file', path: '/etc/hosts', existed: true, before: hostsText, after: newHosts });

  if (n.roles.includes('compute')) {
    hp.changes.push({ kind: 'mkdir', path: r.image });
    hp.changes.push({ kind: 'upload', path: join(r.image, 'vmlinuz'), from: imageFiles.kernel }, { kind: 'upload', path: join(r.image, 'initrd.img'), from: imageFiles.initrd });
  }
  if (n.roles.includes('nfs-server')) {
    const top = await firstMissing(node, n.instancesDir);
    if (top) hp.changes.push({ kind: 'mkdir', path: top }, ...(top !== n.instancesDir ? [{ kind: 'mkdir' as const, path: n.instancesDir }] : []));
    const kernel = (await program(node, 'exportfs')) && (await node.run(['sh', '-c', 'grep -qw nfsd /proc/filesystems || modprobe nfsd'], { check: false })).exitCode === 0;
    if (kernel) {
      hp.nfsServer = 'kernel';
      const exportsText = (await node.run(['cat', '/etc/exports'], { check: false })).stdout;
      const before = exportsText === '' ? '' : `${exportsText}\n`;
      const after = exportsWithExport(before, n.instancesDir, plan.cidr, plan.exportOptions);
      if (after !== before) hp.changes.push({ kind: 'file', path: '/etc/exports', existed: await node.exists('/etc/exports'), before, after });
      hp.changes.push({ kind: 'command', argv: ['exportfs', '-ra'], revert: ['exportfs', '-ra'] });
    } else {
      hp.nfsServer = 'ganesha';
      hp.notes.push("this host's kernel has no NFS server (no nfsd): nfs-ganesha serves the export");
      for (const [p, pkg] of [['ganesha.nfsd', 'nfs-ganesha nfs-ganesha-vfs'], ['rpcbind', 'rpcbind'], ['rpcinfo', 'rpcbind']] as const) if (!(await program(node, p))) hp.missing.push({ program: p, pkg });
      const conf = join(r.ganesha, 'ganesha.conf');
      hp.changes.push({ kind: 'mkdir', path: r.ganesha });
      // ganesha's and rpcbind's own state directories, where the host has none yet
      for (const d of ['/var/lib/nfs/ganesha', '/run/ganesha', '/run/rpcbind']) if (!(await node.exists(d))) hp.changes.push({ kind: 'mkdir', path: d });
      hp.changes.push({ kind: 'file', path: conf, existed: false, before: '', after: ganeshaConfig({ path: n.instancesDir, clients: plan.cidr, bindAddress: n.address, versions: [plan.nfsVersion] }) });
      const rpcbindUp = (await node.run(['sh', '-c', 'rpcinfo -p 127.0.0.1 >/dev/null 2>&1'], { check: false })).exitCode === 0;
      if (plan.nfsVersion === 3 && !rpcbindUp) hp.changes.push({ kind: 'service', name: 'rpcbind', argv: rpcbindArgv(n.address, await rpcbindListeners(node, n.address)), logFile: join(r.ganesha, 'rpcbind.log') });
      hp.changes.push({ kind: 'service', name: 'ganesha', argv: ['ganesha.nfsd', '-F', '-L', join(r.ganesha, 'ganesha.log'), '-f', conf, '-p', join(r.ganesha, 'ganesha.pid'), '-N', 'NIV_EVENT'], logFile: join(r.ganesha, 'ganesha.out') });
    }
  }
  if (n.roles.includes('nfs-client')) {
    const kernel = (await node.run(['sh', '-c', 'grep -qw nfs /proc/filesystems || modprobe nfs'], { check: false })).exitCode === 0;
    const server = plan.nfsServer;
    if (kernel) {
      hp.nfsClient = 'kernel';
      const top = await firstMissing(node, n.instancesDir);
      if (top) hp.changes.push({ kind: 'mkdir', path: top }, ...(top !== n.instancesDir ? [{ kind: 'mkdir' as const, path: n.instancesDir }] : []));
      hp.changes.push({ kind: 'mount', source: `${server.name}:${server.instancesDir}`, target: n.instancesDir, options: `vers=${plan.nfsVersion},proto=tcp` });
    } else {
      hp.nfsClient = 'qemu';
      hp.notes.push(`this host's kernel cannot mount NFS: QEMU opens the disks on ${server.name}'s export with its own nfs:// driver`);
      if (!(await node.exists('/usr/lib/x86_64-linux-gnu/qemu/block-nfs.so'))) hp.missing.push({ program: "QEMU's nfs block driver", pkg: 'qemu-block-extra' });
    }
  }
  if (opts.libvirt && n.roles.includes('compute')) hp.changes.push(...(await planLibvirt(t, n, node, hp)));
  return hp;
}

export interface PlanOptions {
  /** The libvirt driver will run: the tutorial's libvirtd configuration on every compute host. */
  libvirt?: boolean;
}

export const LIBVIRT_MARK = (lab: string) => `# migralab ${lab}: the live-migration tutorial's settings for the libvirt driver (migralab down restores this file)`;
/** systemd units of a libvirtd already running on a host, which the lab's own libvirtd replaces while it is up. */
const LIBVIRT_UNITS = ['libvirtd.service', 'libvirtd.socket', 'libvirtd-ro.socket', 'libvirtd-admin.socket', 'libvirtd-tcp.socket', 'libvirtd-tls.socket'];
/** libvirtd's own pid file on a host: the lab's libvirtd runs in the foreground under migralab (the service entry). */
export const SSH_LIBVIRTD_PID = '/run/libvirtd.pid';

/**
 * The tutorial's libvirt setup on a compute host: libvirtd.conf with TCP, no TLS, no
 * authentication (on the host's lab address only), qemu.conf for the lab's guests (QEMU as
 * root, unconfined, migration on the lab address), and libvirtd started listening (the
 * tutorial's `libvirtd_opts="-d -l"`) by migralab. A libvirtd that systemd runs is stopped
 * for the lab's lifetime and started again by down; one that runs otherwise is refused.
 */
async function planLibvirt(t: Topology, n: NodePlan, node: SshNode, hp: HostPlan): Promise<HostChange[]> {
  const changes: HostChange[] = [];
  for (const [p, pkg] of [['libvirtd', 'libvirt-daemon'], ['virsh', 'libvirt-clients']] as const) if (!(await program(node, p))) hp.missing.push({ program: p, pkg });
  if (!(await node.exists('/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so'))) hp.missing.push({ program: "libvirt's QEMU driver", pkg: 'libvirt-daemon-driver-qemu' });
  // libvirtd's QEMU driver looks its default user up at start, even when qemu.conf says root
  if ((await node.run(['getent', 'passwd', 'libvirt-qemu'], { check: false })).exitCode !== 0) hp.missing.push({ program: "libvirt's libvirt-qemu account", pkg: 'libvirt-daemon-system' });
  const answering = (await program(node, 'virsh')) && (await node.run(['virsh', '-c', 'qemu:///system', 'version'], { check: false, timeoutMs: 10_000 })).exitCode === 0;
  if (answering) {
    const systemd = await node.exists('/run/systemd/system');
    const active: string[] = [];
    if (systemd) for (const u of LIBVIRT_UNITS) if ((await node.run(['systemctl', 'is-active', '--quiet', u], { check: false })).exitCode === 0) active.push(u);
    if (!active.length)
      throw new MigralabError('PREREQ', `${n.name}: a libvirtd already runs there${systemd ? ' outside systemd' : ''}: migralab stops only what systemd runs (and starts it again at down). Stop it, then run up again`);
    changes.push({ kind: 'command', argv: ['systemctl', 'stop', ...active], revert: ['systemctl', 'start', ...active] });
    hp.notes.push(`libvirtd runs there under systemd (${active.join(', ')}): stopped while the lab is up, started again by down`);
  }
  // what libvirtd makes at start where the host has none (no libvirt-daemon-system): made by the plan, so down removes them
  // (the host is read before any of them is made: a directory planned above is not planned again)
  const planned = new Set<string>();
  for (const d of ['/etc/libvirt', '/etc/libvirt/secrets', '/etc/libvirt/nwfilter', '/var/lib/libvirt', '/var/log/libvirt', '/var/cache/libvirt', '/run/libvirt']) {
    const top = await firstMissing(node, d);
    for (const p of top ? [top, d] : [])
      if (!planned.has(p)) {
        planned.add(p);
        changes.push({ kind: 'mkdir', path: p });
      }
  }
  for (const [file, settings] of [
    ['/etc/libvirt/libvirtd.conf', { ...libvirtdSettings(n.address), auth_unix_ro: '"none"', auth_unix_rw: '"none"' }],
    ['/etc/libvirt/qemu.conf', qemuSettings(n)],
  ] as const) {
    const existed = await node.exists(file);
    const before = existed ? (await node.readFile(file)).toString('utf8') : '';
    const after = confWithSettings(before, settings, LIBVIRT_MARK(t.name));
    if (after !== before) changes.push({ kind: 'file', path: file, existed, before, after });
  }
  hp.notes.push(`libvirt: libvirtd --listen on ${n.address}:${LIBVIRT_TCP_PORT} (TCP, no TLS, no authentication, as the tutorial has it: keep the lab network private)`);
  changes.push({ kind: 'service', name: 'libvirtd', argv: ['libvirtd', '--listen', '-f', '/etc/libvirt/libvirtd.conf', '-p', SSH_LIBVIRTD_PID], logFile: join(n.dir, 'libvirtd.log') });
  return changes;
}

/** The libvirtd service migralab started on a host, from the host's ledger. */
async function libvirtdEntry(t: Topology, node: SshNode): Promise<Extract<HostChange, { kind: 'service' }> | undefined> {
  const ledger = await readHostLedger(node, remotePaths(t, node.name).ledger);
  return ledger?.changes.find((c): c is Extract<HostChange, { kind: 'service' }> => c.kind === 'service' && c.name === 'libvirtd');
}

/** libvirtd on a host answers on its socket and listens on the lab address; one that exits says why (its log's tail). */
export async function waitLibvirtd(t: Topology, node: SshNode, address: string, known?: Extract<HostChange, { kind: 'service' }>): Promise<void> {
  const svc = known ?? (await libvirtdEntry(t, node));
  /** Why libvirtd is gone (its log's tail), or undefined while it runs. */
  const gone = async (): Promise<string | undefined> => {
    if (svc?.pid === undefined || (await node.process(svc.pid, svc.startTime).alive())) return undefined;
    const log = (await node.run(['tail', '-n', '3', svc.logFile], { check: false })).stdout.trim();
    return `${node.name}: libvirtd exited at start${log ? `: ${log.split('\n').join(' | ')}` : ''} (see ${svc.logFile})`;
  };
  // a libvirtd that exited ends the wait at once (waitFor would retry a thrown error until its deadline)
  const until = async (what: string, ok: () => Promise<boolean>, timeoutMs: number) => {
    const r = await waitFor(what, async () => ((await ok()) ? { dead: undefined } : ((d) => (d ? { dead: d } : undefined))(await gone())), { timeoutMs, intervalMs: 100 });
    if (r.dead) throw new MigralabError('LAB', r.dead);
  };
  await until(`libvirtd on ${node.name} to answer (virsh -c qemu:///system version)`, async () => (await node.run(['virsh', '-c', 'qemu:///system', 'version'], { check: false, timeoutMs: 10_000 })).exitCode === 0, 20_000);
  await until(`libvirtd on ${node.name} to listen on ${address}:${LIBVIRT_TCP_PORT}`, async () => (await node.run(['ss', '-Hltn', 'sport', '=', `:${LIBVIRT_TCP_PORT}`], { check: false })).stdout.includes(`${address}:${LIBVIRT_TCP_PORT}`), 10_000);
}

/** The host's ledger: every change applied, in order (read back by down, also after a crash). */
interface HostLedger {
  lab: string;
  changes: HostChange[];
}

async function readHostLedger(node: SshNode, path: string): Promise<HostLedger | undefined> {
  if (!(await node.exists(path))) return undefined;
  return JSON.parse((await node.readFile(path)).toString('utf8')) as HostLedger;
}

async function applyHost(t: Topology, node: SshNode, hp: HostPlan, progress: Progress, opts: { append?: boolean } = {}): Promise<void> {
  const r = remotePaths(t, hp.node);
  // append: more changes to a host that is up (the libvirt driver's setup, asked for after up)
  const ledger: HostLedger = (opts.append ? await readHostLedger(node, r.ledger) : undefined) ?? { lab: t.name, changes: [] };
  // The ledger and backups sit beside the lab's directory, which the plan's first change makes
  // (planned as missing: a directory that existed then is not in the plan, and never removed).
  const save = async () => {
    await node.mkdir(dirname(r.ledger));
    await node.writeFile(r.ledger, JSON.stringify(ledger, null, 2));
  };
  await save();
  await node.mkdir(r.backups);
  for (const c of hp.changes) {
    // recorded before it is made: down reverts what was half done
    const entry: HostChange = { ...c };
    if (entry.kind === 'file' && entry.existed) {
      // one backup per change: a file changed again (an appended plan after one that died halfway) keeps its first backup
      entry.backup = join(r.backups, `${entry.path.replace(/\//g, '%')}.${ledger.changes.length}`);
      await node.writeFile(entry.backup, entry.before, { mode: 0o600 });
    }
    ledger.changes.push(entry);
    await save();
    if (entry.kind === 'mkdir') await node.mkdir(entry.path, { mode: 0o755 });
    else if (entry.kind === 'file') {
      // the file's own mode is kept: write its content in place
      if (entry.existed) await node.run(['sh', '-c', 'cat >"$1"', 'sh', entry.path], { stdin: Buffer.from(entry.after) });
      else await node.writeFile(entry.path, entry.after, { mode: 0o644 });
    } else if (entry.kind === 'upload') await node.writeFile(entry.path, await readFile(entry.from), { mode: 0o644 });
    else if (entry.kind === 'command') await node.run(entry.argv);
    else if (entry.kind === 'mount') await node.run(['mount', '-t', 'nfs', '-o', entry.options, entry.source, entry.target], { timeoutMs: 30_000 });
    else if (entry.kind === 'service') {
      const proc = await node.spawn(entry.argv, { logFile: entry.logFile });
      entry.pid = proc.pid;
      entry.startTime = proc.startTime;
      await save();
      progress(`${hp.node}: started ${entry.name} (pid ${proc.pid})`);
    }
  }
  await save();
}

/** Destroys the running domains whose description marks them as this lab's (domainMark); returns them as name@node. */
async function destroyLabDomains(lab: string, node: SshNode): Promise<string[]> {
  const virsh = ['virsh', '-c', 'qemu:///system'];
  const names = (await node.run([...virsh, 'list', '--name'], { check: false, timeoutMs: 10_000 })).stdout.split('\n').map((l) => l.trim()).filter(Boolean);
  const out: string[] = [];
  for (const name of names) {
    const desc = (await node.run([...virsh, 'desc', name], { check: false, timeoutMs: 10_000 })).stdout.trim();
    if (desc !== domainMark(lab)) continue;
    await node.run([...virsh, 'destroy', name], { check: false, timeoutMs: 30_000 });
    out.push(`${name}@${node.name}`);
  }
  return out;
}

/** Reverts a host's ledger, newest first; returns what it had to kill. */
async function revertHost(t: Topology, node: SshNode, progress: Progress): Promise<string[]> {
  const r = remotePaths(t, node.name);
  const ledger = await readHostLedger(node, r.ledger);
  const killed: string[] = [];
  if (!ledger) return killed;
  for (const c of [...ledger.changes].reverse()) {
    try {
      if (c.kind === 'service' && c.pid !== undefined) {
        const p = node.process(c.pid, c.startTime);
        // the lab's guests under this libvirtd (a run that died left them): destroyed first, or their QEMUs outlive it
        if (c.name === 'libvirtd' && (await p.alive())) killed.push(...(await destroyLabDomains(t.name, node)));
        if (await p.alive()) {
          await p.signal('SIGTERM');
          const gone = await waitFor(`${c.name} to exit`, async () => !(await p.alive()), { timeoutMs: 2000, intervalMs: 50 }).then(() => true, () => false);
          if (!gone) {
            await p.signal('SIGKILL');
            killed.push(`${c.name}@${node.name}`);
            await waitFor(`${c.name} to die`, async () => !(await p.alive()), { timeoutMs: 5000, intervalMs: 50 }).catch(() => {});
          }
        }
      } else if (c.kind === 'mount') await node.run(['umount', c.target], { check: false, timeoutMs: 30_000 });
      else if (c.kind === 'file') {
        if (c.existed && c.backup) {
          const before = await node.readFile(c.backup);
          await node.run(['sh', '-c', 'cat >"$1"', 'sh', c.path], { stdin: before });
        } else await node.remove(c.path);
      } else if (c.kind === 'command' && c.revert) await node.run(c.revert, { check: false });
      else if (c.kind === 'mkdir') await node.run(['rm', '-rf', '--', c.container ? r.root : c.path], { check: false });
    } catch (e) {
      progress(`${node.name}: could not revert ${c.kind} ${'path' in c ? c.path : ''}: ${(e as Error).message}`);
      throw e;
    }
  }
  await node.remove(r.backups);
  await node.remove(r.ledger);
  for (const c of ledger.changes) if (c.kind === 'mkdir' && c.container) await node.run(['find', c.path, '-depth', '-type', 'd', '-empty', '-delete'], { check: false });
  return killed;
}

class SshLabNode implements LabNode {
  constructor(
    readonly plan: NodePlan,
    readonly transport: SshNode,
  ) {}
  get name(): string {
    return this.plan.name;
  }
  get address(): string {
    return this.plan.address;
  }
  /** The device this host reaches the other nodes through: its counters are the migration's bytes. */
  async txBytes(): Promise<number | null> {
    const r = await this.transport.run(['sh', '-c', 'dev=$(ip -o addr show | awk -v a="$1" \'index($4, a"/")==1 {print $2; exit}\'); cat /sys/class/net/$dev/statistics/tx_bytes', 'sh', this.plan.address], { check: false });
    const n = Number(r.stdout.trim());
    return r.exitCode === 0 && Number.isFinite(n) ? n : null;
  }
}

class SshLab implements StartedLab {
  readonly nodes: SshLabNode[];
  readonly computes: SshLabNode[];
  private readonly obs: NodeTransport;
  constructor(
    readonly plan: LabPlan,
    readonly info: LabInfo,
    readonly ledger: Ledger,
    readonly alreadyUp: boolean,
    private readonly topology: Topology,
  ) {
    this.nodes = plan.nodes.map((n) => new SshLabNode(n, sshNode(n)));
    this.computes = this.nodes.filter((n) => n.plan.roles.includes('compute'));
    this.obs = new LocalNode(plan.observer.name, topology.observer.netns ?? '');
  }
  node(name: string): LabNode {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new MigralabError('USAGE', `lab ${this.plan.lab} has no node ${name}`);
    return n;
  }
  observer(): NodeTransport {
    return this.obs;
  }
  /** The tutorial's libvirtd on every compute host: already there when up had it (up --driver libvirt), else planned and applied now, in the hosts' ledgers. */
  async ensureLibvirtd(progress: Progress = () => {}): Promise<void> {
    for (const n of this.computes) {
      const svc = await libvirtdEntry(this.topology, n.transport);
      if (svc) {
        if (svc.pid === undefined || !(await n.transport.process(svc.pid, svc.startTime).alive()))
          throw new MigralabError('LAB', `${n.name}: the libvirtd migralab started there is gone (see ${svc.logFile}): run migralab down, then up again`);
        await waitLibvirtd(this.topology, n.transport, n.address, svc);
        continue;
      }
      const hp: HostPlan = { node: n.name, login: `${n.plan.ssh!.user}@${n.plan.ssh!.host}:${n.plan.ssh!.port}`, changes: [], missing: [], notes: [] };
      hp.changes = await planLibvirt(this.topology, n.plan, n.transport, hp);
      if (hp.missing.length)
        throw new MigralabError('PREREQ', `${n.name} lacks ${hp.missing.map((m) => m.program).join(', ')} for the libvirt driver: apt-get install -y ${[...new Set(hp.missing.map((m) => m.pkg))].join(' ')} there, or run migralab up --driver libvirt --install`);
      for (const l of formatPlan([hp]).split('\n')) progress(`libvirt: ${l}`);
      await applyHost(this.topology, n.transport, hp, progress, { append: true });
      await waitLibvirtd(this.topology, n.transport, n.address);
    }
  }
  async down(progress?: Progress): Promise<DownReport> {
    this.release();
    return sshDown(this.topology, progress);
  }
  release(): void {
    for (const n of this.nodes) n.transport.close();
  }
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.alreadyUp) await this.down();
    this.release();
  }
}

async function hostEnvironment(node: SshNode, hp: HostPlan): Promise<Omit<Environment, 'nfsClientReason'> & { nfsClientReason: string }> {
  const q = await node.run(['qemu-system-x86_64', '--version']);
  const qemuVersion = /version\s+(\S+)/.exec(q.stdout)?.[1] ?? q.stdout.split('\n')[0]!;
  const kvm = (await node.run(['sh', '-c', 'test -e /dev/kvm && { test -d /sys/module/kvm_intel || test -d /sys/module/kvm_amd; }'], { check: false })).exitCode === 0;
  const accelerator = kvm ? 'kvm' : 'tcg';
  return {
    provider: 'ssh',
    accelerator,
    acceleratorReason: kvm ? 'a hardware KVM module is loaded on the host' : 'no hardware KVM module (kvm_intel/kvm_amd) is loaded on the host',
    qemuVersion,
    knownIssues: knownIssues({ qemuVersion, accelerator }),
    kernel: (await node.run(['uname', '-r'])).stdout.trim(),
    cpuModel: (await node.run(['sh', '-c', 'grep -m1 "^model name" /proc/cpuinfo | cut -d: -f2-'])).stdout.trim(),
    cpus: Number((await node.run(['nproc'])).stdout.trim()),
    nfsServer: 'ganesha',
    nfsClient: hp.nfsClient ?? 'qemu',
    nfsClientReason: hp.nfsClient === 'kernel' ? "the host's kernel mounts NFS: mount -t nfs, as the tutorial does" : "the host's kernel cannot mount NFS: QEMU nfs:// driver",
    node: process.version,
    migralab: '0.1.0',
  };
}

/** Plans every host (reads only). */
export async function sshPlan(t: Topology, progress: Progress = () => {}, opts: PlanOptions = {}): Promise<{ plan: LabPlan; hosts: HostPlan[]; image: Awaited<ReturnType<typeof buildGuestImage>> }> {
  const plan = planLab(t);
  const image = await buildGuestImage({ cacheDir: plan.imageCache, onProgress: progress });
  const hosts: HostPlan[] = [];
  for (const n of plan.nodes) {
    const node = sshNode(n);
    try {
      hosts.push(await planHost(t, plan, n, node, image, opts));
    } finally {
      node.close();
    }
  }
  return { plan, hosts, image };
}

async function sshUp(t: Topology, topologyFile: string, progress: Progress = () => {}, _signal?: AbortSignal, opts: { install?: boolean } & PlanOptions = {}): Promise<SshLab> {
  const plan = planLab(t);
  const existing = await Ledger.read(plan.ledgerFile);
  if (existing?.status === 'up') {
    const info = await readInfo(plan);
    if (info) return new SshLab(plan, info, await Ledger.open(plan.ledgerFile, plan.lab), true, t);
  }
  if (existing) await sshDown(t, progress);
  const t0 = performance.now();
  let { hosts, image } = await sshPlan(t, progress, opts);
  const missing = hosts.filter((h) => h.missing.length);
  if (missing.length && opts.install) {
    for (const h of missing) {
      const node = sshNode(plan.nodes.find((n) => n.name === h.node)!);
      const pkgs = [...new Set(h.missing.flatMap((m) => m.pkg.split(' ')))];
      progress(`${h.node}: apt-get install ${pkgs.join(' ')}`);
      await node.run(['env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', 'install', '-y', '-q', '--no-install-recommends', ...pkgs], { timeoutMs: 900_000 });
      node.close();
    }
    ({ hosts, image } = await sshPlan(t, progress, opts));
  }
  const still = hosts.filter((h) => h.missing.length);
  if (still.length)
    throw new MigralabError('PREREQ', still.map((h) => `${h.node} lacks ${h.missing.map((m) => m.program).join(', ')}: apt-get install -y ${[...new Set(h.missing.map((m) => m.pkg))].join(' ')} there, or run migralab up --install`).join('; '));
  const ledger = await Ledger.open(plan.ledgerFile, plan.lab);
  const nodes = plan.nodes.map((n) => ({ n, t: sshNode(n) }));
  try {
    for (const { n, t: node } of nodes) {
      await ledger.record({ kind: 'host', node: n.name });
      await applyHost(t, node, hosts.find((h) => h.node === n.name)!, progress);
    }
    // The export is there before anyone is told it is.
    const server = nodes.find((x) => x.n.roles.includes('nfs-server'))!;
    const serverPlan = hosts.find((h) => h.node === server.n.name)!;
    if (serverPlan.nfsServer === 'ganesha')
      await waitFor(`ganesha on ${server.n.name} to listen on :2049`, async () => (await server.t.run(['ss', '-Hltn', 'sport', '=', ':2049'], { check: false })).stdout.includes('2049'), { timeoutMs: 20_000, intervalMs: 100 });
    if (opts.libvirt) for (const { n, t: node } of nodes) if (n.roles.includes('compute')) await waitLibvirtd(t, node, n.address);
    const r = remotePaths(t, plan.nodes[0]!.name);
    const env = await hostEnvironment(nodes.find((x) => x.n.roles.includes('compute'))!.t, hosts.find((h) => h.nfsClient) ?? hosts[0]!);
    env.nfsServer = serverPlan.nfsServer ?? 'ganesha';
    const info: LabInfo = {
      lab: plan.lab,
      provider: 'ssh',
      topologyFile,
      upAt: new Date().toISOString(),
      upMs: performance.now() - t0,
      environment: env,
      image: { ...image, kernel: join(r.image, 'vmlinuz'), initrd: join(r.image, 'initrd.img') },
      nfs: { server: plan.nfsServer.name, exportPath: plan.nfsServer.instancesDir, version: plan.nfsVersion, client: env.nfsClient },
      nodes: plan.nodes.map((n) => ({ name: n.name, roles: [...n.roles], address: n.address, netns: '', instancesDir: n.instancesDir })),
      observer: { name: plan.observer.name, address: plan.observer.address, netns: t.observer.netns ?? '' },
    };
    await ledger.record({ kind: 'dir', path: plan.labDir });
    await mkdir(plan.labDir, { recursive: true, mode: 0o700 });
    await writeFile(plan.infoFile, JSON.stringify(info, null, 2), { mode: 0o600 });
    await ledger.setStatus('up');
    return new SshLab(plan, info, ledger, false, t);
  } catch (e) {
    progress(`up failed: ${(e as Error).message}; reverting what was applied`);
    await sshDown(t, () => {}).catch(() => {});
    throw e;
  } finally {
    for (const { t: node } of nodes) node.close();
  }
}

async function readInfo(plan: LabPlan): Promise<LabInfo | undefined> {
  try {
    return JSON.parse(await readFile(plan.infoFile, 'utf8')) as LabInfo;
  } catch {
    return undefined;
  }
}

/** Reverts every host, then forgets the lab here. Guests of a run that died are stopped first. */
async function sshDown(t: Topology, progress: Progress = () => {}, opts: { forget?: boolean } = {}): Promise<DownReport> {
  const plan = planLab(t);
  const data = await Ledger.read(plan.ledgerFile);
  if (!data) return { removed: 0, wasUp: false, killed: [] };
  if (opts.forget) {
    // The hosts are gone or rebuilt: only this machine's record of them is dropped.
    await rm(plan.labDir, { recursive: true, force: true });
    await rm(plan.ledgerFile, { force: true });
    progress(`down --forget: dropped the record of lab ${plan.lab}; nothing on its hosts was touched`);
    return { removed: 0, wasUp: true, killed: [] };
  }
  const killed: string[] = [];
  const unreachable: string[] = [];
  let removed = 0;
  const procs = data.resources.filter((r): r is Extract<Resource, { kind: 'process' }> => r.kind === 'process' && r.pid !== undefined);
  for (const n of plan.nodes) {
    const node = sshNode(n);
    try {
      await node.run(['true']);
    } catch (e) {
      unreachable.push(`${n.name}: ${(e as Error).message}`);
      node.close();
      continue;
    }
    try {
      for (const p of procs.filter((x) => x.node === n.name)) {
        const h = node.process(p.pid!, p.startTime);
        if (await h.alive()) {
          await h.signal('SIGKILL');
          killed.push(`${p.name}@${n.name}`);
        }
        removed++;
      }
      if (data.resources.some((r) => r.kind === 'host' && r.node === n.name)) {
        killed.push(...(await revertHost(t, node, progress)));
        removed++;
      }
    } finally {
      node.close();
    }
  }
  if (unreachable.length)
    // The record stays: what was applied on those hosts is still there, and a later down
    // (once they answer) reverts it from the hosts' own ledgers.
    throw new MigralabError(
      'LAB',
      `could not reach ${unreachable.length} host(s), their changes are not reverted: ${unreachable.join('; ')}. Run down again once they answer, or down --forget if they no longer exist`,
    );
  await rm(plan.labDir, { recursive: true, force: true });
  await rm(plan.ledgerFile, { force: true });
  progress(`down: reverted ${plan.nodes.length} hosts of lab ${plan.lab}${killed.length ? `; had to kill ${killed.join(', ')}` : ''}`);
  return { removed, wasUp: true, killed };
}

export const sshProvider: Provider & { plan: typeof sshPlan; upWith: typeof sshUp } = {
  name: 'ssh',
  up: (t, f, p, s) => sshUp(t, f, p, s),
  upWith: sshUp,
  down: (plan, progress, opts) => sshDown(plan.topology, progress, opts),
  async status(plan: LabPlan): Promise<LabStatus> {
    const ledger = await Ledger.read(plan.ledgerFile);
    if (!ledger) return { state: 'down', problems: [], info: undefined };
    const info = await readInfo(plan);
    return { state: ledger.status === 'up' && info ? 'up' : 'broken', problems: ledger.status === 'up' ? [] : ['an earlier up did not finish'], info };
  },
  async attach(plan: LabPlan) {
    const info = await readInfo(plan);
    if (!info) return undefined;
    return new SshLab(plan, info, await Ledger.open(plan.ledgerFile, plan.lab), true, plan.topology);
  },
  plan: sshPlan,
};
