/**
 * The local provider: the lab's nodes as network namespaces on this host (plus a mount
 * and UTS namespace per node), a switch namespace with a bridge, an observer namespace,
 * ganesha + rpcbind on the controller. Every resource goes into the ledger before it is
 * created; `down` replays it.
 */
import { mkdir, readFile, rm, rmdir, writeFile, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Topology } from '../config/topology.ts';
import { MigralabError } from '../errors.ts';
import { LocalNode, LocalProcess } from '../exec/local.ts';
import type { NodeTransport } from '../exec/transport.ts';
import { run } from '../exec/run.ts';
import { bridgeMacFor } from '../net/address.ts';
import { descendsFrom, processAlive, processStartTime } from '../exec/proc.ts';
import { Ledger, type Resource } from '../state/ledger.ts';
import { spawnGanesha, startGanesha } from '../nfs/ganesha.ts';
import { buildGuestImage } from '../image/build.ts';
import { planLab, hostsFile, TUTORIAL_INSTANCES_DIR, type LabPlan, type NodePlan } from './plan.ts';
import { detectNfsClient, hostFacts, kvmModuleLoaded, qemuVersion, knownIssues, type Environment } from './environment.ts';
import { probeAccelerator } from './accel.ts';
import { privateMountPoint, withLibvirtAccounts } from '../migrate/libvirt/daemon.ts';
import { waitFor } from '../time/wait.ts';
import { checkOpenstackPackages } from '../stack/openstack/packages.ts';
import { startOpenstack } from '../stack/openstack/stack.ts';
import type { DownReport, LabInfo, LabNode, LabStatus, NfsServerControl, Progress, Provider, StartedLab } from './provider.ts';

export type { LabInfo } from './provider.ts';

export const requiredPrograms: Record<string, string> = {
  ip: 'iproute2',
  ss: 'iproute2',
  nsenter: 'util-linux',
  unshare: 'util-linux',
  mount: 'mount',
  'qemu-system-x86_64': 'qemu-system-x86',
  'qemu-img': 'qemu-utils',
  'ganesha.nfsd': 'nfs-ganesha nfs-ganesha-vfs',
  rpcbind: 'rpcbind',
  rpcinfo: 'rpcbind',
  ping: 'iputils-ping',
  'mkfs.vfat': 'dosfstools',
  mcopy: 'mtools',
};

export async function checkPrerequisites(): Promise<void> {
  if (process.getuid?.() !== 0)
    throw new MigralabError('PREREQ', 'migralab needs root: it creates network namespaces, bridges and mounts (run it with sudo)');
  const missing: string[] = [];
  for (const [prog, pkg] of Object.entries(requiredPrograms)) {
    const r = await run(['sh', '-c', 'command -v "$1"', 'sh', prog], { check: false });
    if (r.exitCode !== 0) missing.push(`${prog} (Debian package ${pkg})`);
  }
  if (!existsSync('/usr/lib/x86_64-linux-gnu/qemu/block-nfs.so') && !existsSync('/usr/lib/qemu/block-nfs.so'))
    missing.push("QEMU's nfs block driver (Debian package qemu-block-extra)");
  if (missing.length)
    throw new MigralabError('PREREQ', `missing programs: ${missing.join(', ')}. Install them with: bash scripts/setup.sh (or apt-get install the packages named)`);
}

export function nodeTransport(n: NodePlan): LocalNode {
  return new LocalNode(n.name, n.netns, { mount: n.mountNsFile, uts: n.utsNsFile });
}

export function observerTransport(plan: LabPlan): LocalNode {
  return new LocalNode(plan.observer.name, plan.observer.netns);
}

export async function readLabInfo(plan: LabPlan): Promise<LabInfo | undefined> {
  try {
    return JSON.parse(await readFile(plan.infoFile, 'utf8')) as LabInfo;
  } catch {
    return undefined;
  }
}

/** Bytes a node sent on its uplink (interface counters), or null if unreadable. */
export async function uplinkTxBytes(t: NodeTransport, device = 'uplink'): Promise<number | null> {
  const r = await t.run(['ip', '-j', '-s', 'link', 'show', 'dev', device], { check: false });
  try {
    return (JSON.parse(r.stdout) as { stats64: { tx: { bytes: number } } }[])[0]!.stats64.tx.bytes;
  } catch {
    return null;
  }
}

class LocalLabNode implements LabNode {
  readonly transport: LocalNode;
  constructor(readonly plan: NodePlan) {
    this.transport = nodeTransport(plan);
  }
  get name(): string {
    return this.plan.name;
  }
  get address(): string {
    return this.plan.address;
  }
  txBytes(): Promise<number | null> {
    return uplinkTxBytes(this.transport);
  }
}

function exportSpec(plan: LabPlan) {
  return { path: plan.nfsServer.instancesDir, clients: plan.cidr, bindAddress: plan.nfsServer.address, versions: [plan.nfsVersion] };
}

/** Every daemon is in the ledger before it starts, with its PID once it runs. */
function ledgerHooks(ledger: Ledger) {
  return {
    beforeStart: (name: string) => ledger.record({ kind: 'process', name, node: 'lab' }),
    started: (entry: unknown, proc: { pid: number; startTime?: string }) => ledger.update(entry as Extract<Resource, { kind: 'process' }>, { pid: proc.pid, startTime: proc.startTime }),
  };
}

/** ganesha of a local lab, killed and started again by fault injection (its ledger entry follows). */
class LocalNfsServer implements NfsServerControl {
  constructor(
    private readonly plan: LabPlan,
    private readonly ledger: Ledger,
  ) {}
  get node(): string {
    return this.plan.nfsServer.name;
  }
  private entry() {
    return this.ledger.resources.find((r): r is Extract<Resource, { kind: 'process' }> => r.kind === 'process' && r.name === 'ganesha' && r.pid !== undefined);
  }
  async kill(): Promise<void> {
    const e = this.entry();
    if (!e?.pid) throw new MigralabError('LAB', `lab ${this.plan.lab} has no running ganesha in its ledger`);
    // the ledger's start time makes sure the PID is still our ganesha
    const proc = nodeTransport(this.plan.nfsServer).process(e.pid, e.startTime);
    await proc.signal('SIGKILL');
    await waitFor(`ganesha (pid ${e.pid}) to die`, async () => !(await proc.alive()), { timeoutMs: 5000, intervalMs: 10 });
    await this.ledger.forget((r) => r === e);
  }
  async restart(): Promise<void> {
    if (this.entry()) return;
    await spawnGanesha(nodeTransport(this.plan.nfsServer), exportSpec(this.plan), this.plan.nfsServer.dir, ledgerHooks(this.ledger));
  }
}

/** A lab of namespaces on this host that is up. */
export class LocalLab implements StartedLab {
  readonly nodes: LocalLabNode[];
  readonly computes: LocalLabNode[];
  private readonly obs: LocalNode;

  constructor(
    readonly plan: LabPlan,
    readonly info: LabInfo,
    readonly ledger: Ledger,
    readonly alreadyUp: boolean,
  ) {
    this.nodes = plan.nodes.map((n) => new LocalLabNode(n));
    this.computes = this.nodes.filter((n) => n.plan.roles.includes('compute'));
    this.obs = observerTransport(plan);
    if (plan.nfsService) this.nfsServer = new LocalNfsServer(plan, ledger);
  }

  readonly nfsServer?: NfsServerControl;

  node(name: string): LabNode {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new MigralabError('USAGE', `lab ${this.plan.lab} has no node ${name} (nodes: ${this.nodes.map((x) => x.name).join(', ')})`);
    return n;
  }

  observer(): NodeTransport {
    return this.obs;
  }

  down(progress?: Progress): Promise<DownReport> {
    return localDown(this.plan, progress);
  }

  release(): void {}

  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.alreadyUp) await this.down();
  }
}

const isProcess = (r: Resource): r is Extract<Resource, { kind: 'process' }> => r.kind === 'process';
const isUser = (r: Resource): r is Extract<Resource, { kind: 'user' }> => r.kind === 'user';
const ownerAlive = (o: { pid: number; startTime: string | undefined } | undefined) =>
  o !== undefined && processAlive(o.pid) && (o.startTime === undefined || processStartTime(o.pid) === o.startTime);

/**
 * Is every namespace and daemon of a lab that says it is up really there, and is nothing
 * left of a run that died (a guest whose run is gone is an orphan, never adopted)?
 */
export async function labHealth(plan: LabPlan): Promise<{ healthy: boolean; problems: string[]; orphans: Extract<Resource, { kind: 'process' }>[] }> {
  const data = await Ledger.read(plan.ledgerFile);
  const problems: string[] = [];
  const orphans: Extract<Resource, { kind: 'process' }>[] = [];
  if (!data) return { healthy: false, problems: ['no ledger'], orphans };
  if (data.status !== 'up') problems.push(`ledger status is ${data.status} (an earlier up did not finish)`);
  const netns = new Set((await run(['ip', 'netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0]));
  for (const r of data.resources) {
    if (r.kind === 'netns' && !netns.has(r.name)) problems.push(`namespace ${r.name} is missing`);
    if (isProcess(r) && r.node === 'lab' && (r.pid === undefined || processStartTime(r.pid) !== r.startTime)) problems.push(`${r.name} is not running`);
    if (isProcess(r) && r.node !== 'lab' && !ownerAlive(r.owner)) orphans.push(r);
  }
  if (!(await readLabInfo(plan))) problems.push('lab.json is missing');
  return { healthy: problems.length === 0, problems, orphans };
}

/** PIDs running in the lab's namespaces that the ledger does not list as lab daemons (nor their children: a service's workers). */
async function straysIn(plan: LabPlan, resources: readonly Resource[]): Promise<number[]> {
  // only daemons that are still themselves (a reused PID must not shelter a process and its children)
  const daemons = new Set(
    resources
      .filter(isProcess)
      .filter((p) => p.node === 'lab' && p.pid !== undefined && (p.startTime === undefined || processStartTime(p.pid) === p.startTime))
      .map((p) => p.pid!),
  );
  const out: number[] = [];
  for (const ns of resources.filter((r): r is Extract<Resource, { kind: 'netns' }> => r.kind === 'netns')) {
    const r = await run(['ip', 'netns', 'pids', ns.name], { check: false });
    if (r.exitCode === 0) out.push(...r.stdout.split('\n').filter(Boolean).map(Number).filter((p) => !descendsFrom(p, daemons) && p !== process.pid));
  }
  return out;
}

export const localProvider: Provider = {
  name: 'local',
  up: localUp,
  down: localDown,
  async status(plan: LabPlan): Promise<LabStatus> {
    const ledger = await Ledger.read(plan.ledgerFile);
    if (!ledger) return { state: 'down', problems: [], info: undefined };
    const h = await labHealth(plan);
    return { state: h.healthy ? 'up' : 'broken', problems: h.problems, info: await readLabInfo(plan) };
  },
  async attach(plan: LabPlan): Promise<LocalLab | undefined> {
    const info = await readLabInfo(plan);
    if (!info || !(await Ledger.read(plan.ledgerFile))) return undefined;
    return new LocalLab(plan, info, await Ledger.open(plan.ledgerFile, plan.lab), true);
  },
};

/**
 * Raises the lab: namespaces, bridges, veths, per-node mount/UTS namespaces and
 * /etc/hosts, the NFS server, the guest image. Idempotent: a healthy lab is left as
 * it is (orphaned guests of a run that died are removed); leftovers of a broken one
 * are removed first.
 */
async function localUp(topology: Topology, topologyFile: string, progress: Progress = () => {}, signal?: AbortSignal): Promise<LocalLab> {
  await checkPrerequisites();
  const plan = planLab(topology);
  if (plan.stack === 'openstack') await checkOpenstackPackages();
  const existing = await Ledger.read(plan.ledgerFile);
  if (existing) {
    const { healthy, problems, orphans } = await labHealth(plan);
    const info = await readLabInfo(plan);
    if (healthy && info) {
      const ledger = await Ledger.open(plan.ledgerFile, plan.lab);
      const users = ledger.resources.filter(isUser);
      if (orphans.length > 0 || users.some((u) => !ownerAlive(u))) await removeOrphans(plan, ledger, orphans, progress);
      return new LocalLab(plan, info, ledger, true);
    }
    progress(`lab ${plan.lab} is half up (${problems.join('; ')}): removing what is left`);
    await localDown(plan, progress);
  }
  const t0 = performance.now();
  const ledger = await Ledger.open(plan.ledgerFile, plan.lab);
  try {
    const info = await raise(plan, topologyFile, ledger, progress, signal);
    info.upMs = performance.now() - t0;
    await writeFile(plan.infoFile, JSON.stringify(info, null, 2), { mode: 0o600 });
    await ledger.setStatus('up');
    return new LocalLab(plan, info, ledger, false);
  } catch (e) {
    progress(`up failed: ${(e as Error).message}; removing what was created`);
    await localDown(plan, () => {});
    throw e instanceof MigralabError ? e : new MigralabError('LAB', `up failed: ${(e as Error).message}`, { cause: e });
  }
}

/** Guests (and anything else) a dead run left in a healthy lab: stopped, forgotten, their files removed. */
async function removeOrphans(plan: LabPlan, ledger: Ledger, orphans: Extract<Resource, { kind: 'process' }>[], progress: Progress): Promise<void> {
  const liveUsers = ledger.resources.filter(isUser).filter((u) => ownerAlive(u));
  const names = orphans.map((o) => `${o.name} on ${o.node}${o.pid ? ` (pid ${o.pid})` : ''}`);
  for (const o of orphans) if (o.pid !== undefined) await new LocalProcess(o.pid, o.startTime).signal('SIGKILL');
  // A process whose PID never reached the ledger is found in the namespaces, when no live run owns them.
  // (not in the openstack profile: its guests are nova's, started by libvirtd and daemonized, and stay)
  const strays = liveUsers.length === 0 && plan.stack === 'none' ? await straysIn(plan, ledger.resources) : [];
  for (const pid of strays) await new LocalProcess(pid).signal('SIGKILL');
  await waitGone([...orphans.filter((o) => o.pid !== undefined).map((o) => new LocalProcess(o.pid!, o.startTime)), ...strays.map((p) => new LocalProcess(p))], 5000);
  await ledger.forget((r) => orphans.includes(r as Extract<Resource, { kind: 'process' }>) || (isUser(r) && !ownerAlive(r)));
  if (liveUsers.length === 0 && plan.stack === 'none')
    for (const n of plan.nodes) {
      await rm(join(n.dir, 'run'), { recursive: true, force: true });
      await rm(join(n.dir, 'local'), { recursive: true, force: true });
      for (const e of await readdir(n.instancesDir).catch(() => [])) if (!e.startsWith('.')) await rm(join(n.instancesDir, e), { recursive: true, force: true });
    }
  if (names.length || strays.length) progress(`lab ${plan.lab}: removed what a run that died left behind: ${[...names, ...strays.map((p) => `pid ${p}`)].join(', ')}`);
}

async function waitGone(procs: LocalProcess[], timeoutMs: number): Promise<LocalProcess[]> {
  const end = performance.now() + timeoutMs;
  let left = procs.filter((p) => p.aliveNow());
  while (left.length && performance.now() < end) {
    await new Promise((r) => setTimeout(r, 10));
    left = left.filter((p) => p.aliveNow());
  }
  return left;
}

async function raise(plan: LabPlan, topologyFile: string, ledger: Ledger, progress: Progress, signal?: AbortSignal): Promise<LabInfo> {
  const interrupted = () => {
    if (signal?.aborted) throw new MigralabError('INTERRUPTED', 'interrupted while the lab came up');
  };
  const mkdirs = async (path: string) => {
    await ledger.record({ kind: 'dir', path });
    await mkdir(path, { recursive: true, mode: 0o700 });
  };
  const addNetns = async (name: string) => {
    await ledger.record({ kind: 'netns', name });
    await run(['ip', 'netns', 'add', name]);
  };
  const mountRes = async (target: string, argv: string[]) => {
    await ledger.record({ kind: 'mount', target });
    await run(argv);
  };

  progress('image: building the guest image (cached by content hash)');
  const imageP = buildGuestImage({ cacheDir: plan.imageCache, onProgress: progress });
  // Don't leave an unobserved rejection while the network comes up.
  imageP.catch(() => {});

  await mkdirs(plan.labDir);
  // the node's own directory too: a topology may put its instances directory elsewhere
  for (const n of plan.nodes) for (const d of [n.dir, n.instancesDir]) await mkdir(d, { recursive: true, mode: 0o700 });

  progress('network: namespaces, switch bridge, uplinks');
  await addNetns(plan.switchNetns);
  const sw = (...a: string[]) => run(['ip', '-n', plan.switchNetns, ...a]);
  await sw('link', 'add', 'br0', 'type', 'bridge');
  await sw('link', 'set', 'br0', 'up');
  await sw('link', 'set', 'lo', 'up');

  const attach = async (netns: string, port: string, ifname: string) => {
    await sw('link', 'add', port, 'type', 'veth', 'peer', 'name', ifname, 'netns', netns);
    await sw('link', 'set', port, 'master', 'br0', 'up');
  };

  await addNetns(plan.observer.netns);
  await attach(plan.observer.netns, plan.observer.switchPort, 'eth0');
  const obs = (...a: string[]) => run(['ip', '-n', plan.observer.netns, ...a]);
  await obs('addr', 'add', `${plan.observer.address}/${plan.prefix}`, 'dev', 'eth0');
  await obs('link', 'set', 'eth0', 'up');
  await obs('link', 'set', 'lo', 'up');

  // Persistent mount + UTS namespaces live as bind mounts in a private directory.
  await mkdirs(plan.nsDir);
  await mountRes(plan.nsDir, ['mount', '--bind', plan.nsDir, plan.nsDir]);
  await run(['mount', '--make-private', plan.nsDir]);

  /** Nodes that have the tutorial's instances path (below). */
  const tutorialPath = new Set<string>();
  for (const n of plan.nodes) {
    interrupted();
    await addNetns(n.netns);
    await attach(n.netns, n.switchPort, 'uplink');
    const ns = (...a: string[]) => run(['ip', '-n', n.netns, ...a]);
    await ns('link', 'add', 'br0', 'address', bridgeMacFor(n.address), 'type', 'bridge');
    await ns('link', 'set', 'uplink', 'master', 'br0', 'up');
    await ns('addr', 'add', `${n.address}/${plan.prefix}`, 'dev', 'br0');
    await ns('link', 'set', 'br0', 'up');
    await ns('link', 'set', 'lo', 'up');

    await writeFile(n.hostsFile, hostsFile(plan, n.name), { mode: 0o644 });
    for (const f of [n.mountNsFile, n.utsNsFile]) {
      await ledger.record({ kind: 'mount', target: f });
      await writeFile(f, '', { mode: 0o600 });
    }
    await run(['unshare', `--mount=${n.mountNsFile}`, `--uts=${n.utsNsFile}`, '--propagation', 'private', 'true']);
    const node = nodeTransport(n);
    await node.run(['hostname', n.name]);
    await node.run(['mount', '--bind', n.hostsFile, '/etc/hosts']);
    // A private /run and /var/lib/nfs: rpcbind's socket and ganesha's state never meet the host's.
    await node.run(['mount', '-t', 'tmpfs', '-o', 'mode=755', 'migralab-run', '/run']);
    if (existsSync('/var/lib/nfs')) await node.run(['mount', '-t', 'tmpfs', 'migralab-nfs', '/var/lib/nfs']);
    // /sys as seen from this network namespace.
    await node.run(['mount', '-t', 'sysfs', 'sysfs', '/sys']);
    // The tutorial's path, so a learner finds the instances where devstack keeps them: the node's
    // /opt is an overlay on the host's (which stays as it is; its files stay readable inside the
    // node, mounts below it do not) holding /opt/stack/data/nova/instances, bound to the node's
    // instances directory (on the NFS server, the export; a kernel NFS client binds its mount
    // there below). Skipped when the lab's own files live under /opt: writes there would land in the overlay.
    const underOpt = [n.dir, n.instancesDir, plan.imageCache, plan.labDir].some((p) => p === '/opt' || p.startsWith('/opt/'));
    if (!underOpt) {
      const upper = join(n.dir, 'opt-overlay');
      // opt-overlay itself is 0700 (others on the host cannot reach in); upper/ is the node's /opt, so 0755 as /opt is
      await mkdir(upper, { mode: 0o700 });
      await mkdir(join(upper, 'upper'), { mode: 0o755 });
      await mkdir(join(upper, 'work'), { mode: 0o700 });
      const overlay = await node.run(['mount', '-t', 'overlay', 'migralab-opt', '-o', `lowerdir=/opt,upperdir=${join(upper, 'upper')},workdir=${join(upper, 'work')}`, '/opt'], { check: false });
      if (overlay.exitCode === 0) {
        await node.run(['mkdir', '-p', TUTORIAL_INSTANCES_DIR]);
        await node.run(['mount', '--bind', n.instancesDir, TUTORIAL_INSTANCES_DIR]);
        tutorialPath.add(n.name);
      } else progress(`${n.name}: no ${TUTORIAL_INSTANCES_DIR} (the instances are at ${n.instancesDir}): overlay on /opt failed: ${overlay.stderr.trim()}`);
    }
    if (plan.sshd) await privateHostState(n, node, ledger);
  }

  interrupted();
  const nfs = await detectNfsClient();
  let mountPoint: string | undefined;
  if (plan.nfsService) {
    progress(`nfs: ganesha on ${plan.nfsServer.name} exporting ${plan.nfsServer.instancesDir} to ${plan.cidr}`);
    const server = nodeTransport(plan.nfsServer);
    await startGanesha(server, exportSpec(plan), plan.nfsServer.dir, ledgerHooks(ledger));
    for (const c of plan.nodes.filter((n) => n.roles.includes('nfs-client'))) {
      const node = nodeTransport(c);
      if (nfs.client === 'kernel') {
        // As the tutorial does it; the mount lives in the node's own mount namespace.
        mountPoint = join(c.dir, 'shared');
        await mkdir(mountPoint, { recursive: true });
        await node.run(['mount', '-t', 'nfs', '-o', `vers=${plan.nfsVersion},proto=tcp,nolock`, `${plan.nfsServer.name}:${plan.nfsServer.instancesDir}`, mountPoint], {
          timeoutMs: 20_000,
        });
        // The tutorial's path on the client is then the share itself, as on real hosts.
        if (tutorialPath.has(c.name)) await node.run(['mount', '--bind', mountPoint, TUTORIAL_INSTANCES_DIR]);
      }
      await touchTest(node, c, plan, nfs.client, mountPoint);
    }
  }
  if (plan.sshd) await startSshds(plan, ledger, progress);

  const image = await imageP;
  interrupted();
  const stack = plan.stack === 'openstack' ? await startOpenstack({ plan, ledger, transport: nodeTransport, labNode: (n) => new LocalLabNode(n), progress, signal, image, tutorialPath }) : undefined;
  progress(`image: ${image.cached ? 'cached' : 'built'} ${image.hash.slice(0, 12)} (kernel ${image.kernelVersion})`);
  const accel = await probeAccelerator(image, kvmModuleLoaded());
  const qemu = await qemuVersion();

  return {
    lab: plan.lab,
    provider: 'local',
    topologyFile,
    upAt: new Date().toISOString(),
    upMs: 0,
    environment: {
      provider: 'local',
      accelerator: accel.accelerator,
      acceleratorReason: accel.reason,
      qemuVersion: qemu,
      knownIssues: knownIssues({ qemuVersion: qemu, accelerator: accel.accelerator }),
      ...hostFacts(),
      nfsServer: 'ganesha',
      nfsClient: nfs.client,
      nfsClientReason: nfs.reason,
      migralab: '0.1.0',
    },
    image,
    nfs: { server: plan.nfsServer.name, exportPath: plan.nfsServer.instancesDir, version: plan.nfsVersion, client: nfs.client, mountPoint },
    nodes: plan.nodes.map((n) => ({ name: n.name, roles: [...n.roles], address: n.address, netns: n.netns, instancesDir: n.instancesDir })),
    observer: { name: plan.observer.name, address: plan.observer.address, netns: plan.observer.netns },
    ...(stack ? { stack } : {}),
  };
}

/** The unprivileged user of a bare host (plan.sshd): logs in with the lab's client key, root through password-less sudo. */
export const SUDO_USER = { name: 'migralab', uid: 64210 } as const;
/** A second one, who may log in but not sudo (the ssh provider refuses it). */
export const PLAIN_USER = { name: 'migralab-nosudo', uid: 64211 } as const;

/**
 * What makes a bare host (a stand-in for a real one, reached by the ssh provider) its own
 * machine beyond its network: what the ssh provider changes there must not be another
 * node's or this machine's.
 *   - /etc/libvirt is an overlay on the host's: the node sees the host's files, its changes
 *     stay in the node (upper/ is empty again once the ssh provider has reverted them);
 *   - /var/lib/libvirt, /var/log/libvirt, /var/cache/libvirt are the node's own directories;
 *   - /etc/passwd, /etc/group and /etc/shadow are private copies with libvirt's accounts (as
 *     Debian's libvirt-daemon-system makes them) and two unprivileged users: SUDO_USER, whom
 *     a private /etc/sudoers.d lets run anything as root without a password, and PLAIN_USER,
 *     who may not sudo.
 */
async function privateHostState(n: NodePlan, node: NodeTransport, ledger: Ledger): Promise<void> {
  const dir = join(n.dir, 'host');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if (existsSync('/etc/libvirt')) {
    for (const d of ['upper', 'work']) await mkdir(join(dir, 'etc-libvirt', d), { recursive: true, mode: 0o755 });
    await node.run(['mount', '-t', 'overlay', 'migralab-etc-libvirt', '-o', `lowerdir=/etc/libvirt,upperdir=${join(dir, 'etc-libvirt', 'upper')},workdir=${join(dir, 'etc-libvirt', 'work')}`, '/etc/libvirt']);
  }
  for (const mp of ['/var/lib/libvirt', '/var/log/libvirt', '/var/cache/libvirt']) {
    await privateMountPoint(ledger, mp);
    const own = join(dir, mp.replace(/^\//, '').replace(/\//g, '-'));
    await mkdir(own, { recursive: true, mode: 0o755 });
    await node.run(['mount', '--bind', own, mp]);
  }
  const accounts = withLibvirtAccounts(await readFile('/etc/passwd', 'utf8'), await readFile('/etc/group', 'utf8'));
  const users = [SUDO_USER, PLAIN_USER];
  /** text with a line per user who has none yet (pure). */
  const add = (text: string, line: (u: { name: string; uid: number }) => string) =>
    users.reduce((t, u) => (t.split('\n').some((l) => l.startsWith(`${u.name}:`)) ? t : `${t === '' || t.endsWith('\n') ? t : `${t}\n`}${line(u)}\n`), text);
  const files: [string, string, number][] = [
    ['passwd', add(accounts.passwd, (u) => `${u.name}:x:${u.uid}:${u.uid}:migralab bare-host user:/:/bin/sh`), 0o644],
    ['group', add(accounts.group, (u) => `${u.name}:x:${u.uid}:`), 0o644],
  ];
  // '*': no password to log in with (keys only), and not locked ('!'), which sshd would refuse
  if (existsSync('/etc/shadow')) files.push(['shadow', add(await readFile('/etc/shadow', 'utf8'), (u) => `${u.name}:*:20000:0:99999:7:::`), 0o640]);
  for (const [name, text, mode] of files) {
    await writeFile(join(dir, name), text, { mode });
    await node.run(['mount', '--bind', join(dir, name), `/etc/${name}`]);
  }
  if (existsSync('/etc/sudoers.d')) {
    const sudoers = join(dir, 'sudoers.d');
    await mkdir(sudoers, { recursive: true, mode: 0o750 });
    await writeFile(join(sudoers, 'migralab'), `# migralab bare host: the ssh provider's non-root user\n${SUDO_USER.name} ALL=(ALL:ALL) NOPASSWD: ALL\n`, { mode: 0o440 });
    await node.run(['mount', '--bind', sudoers, '/etc/sudoers.d']);
  }
}

/** Where a lab's ssh keys live: a client key, one host key per node, known_hosts, authorized_keys. */
export function sshFiles(plan: LabPlan) {
  const dir = join(plan.labDir, 'ssh');
  return {
    dir,
    clientKey: join(dir, 'id_ed25519'),
    knownHosts: join(dir, 'known_hosts'),
    authorizedKeys: join(dir, 'authorized_keys'),
    hostKey: (node: string) => join(dir, `host-${node}`),
    config: (node: string) => join(dir, `sshd_config-${node}`),
  };
}

/** authorized_keys of a bare host's sshd, in its private /run. */
const NODE_AUTHORIZED_KEYS = '/run/migralab-sshd/authorized_keys';

/** The sshd_config of a lab node: keys only, the lab address only, Unix-socket forwarding for QMP (pure). */
export function sshdConfig(p: { address: string; hostKey: string; authorizedKeys: string }): string {
  return [
    '# written by migralab: sshd of a lab node (bare hosts for the ssh provider)',
    `ListenAddress ${p.address}`,
    'Port 22',
    `HostKey ${p.hostKey}`,
    'PidFile /run/migralab-sshd.pid',
    'PermitRootLogin prohibit-password',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PubkeyAuthentication yes',
    `AuthorizedKeysFile ${p.authorizedKeys}`,
    'StrictModes no',
    'UsePAM no',
    'AllowStreamLocalForwarding yes',
    // OpenSSH refuses Unix-socket forwarding ("the request was denied") unless TCP forwarding is allowed too
    'AllowTcpForwarding local',
    'X11Forwarding no',
    'PrintMotd no',
    'PrintLastLog no',
    'UseDNS no',
    'Subsystem sftp /usr/lib/openssh/sftp-server',
    '',
  ].join('\n');
}

/** An OpenSSH server in every node, with a per-lab client key and a host key per node. */
async function startSshds(plan: LabPlan, ledger: Ledger, progress: Progress): Promise<void> {
  const f = sshFiles(plan);
  await mkdir(f.dir, { recursive: true, mode: 0o700 });
  await run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', `migralab-${plan.lab}`, '-f', f.clientKey]);
  await writeFile(f.authorizedKeys, await readFile(`${f.clientKey}.pub`), { mode: 0o600 });
  const known: string[] = [];
  for (const n of plan.nodes) {
    await run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', `${n.name}@${plan.lab}`, '-f', f.hostKey(n.name)]);
    const pub = (await readFile(`${f.hostKey(n.name)}.pub`, 'utf8')).trim().split(' ');
    known.push(`${n.address} ${pub[0]} ${pub[1]}`);
    await writeFile(f.config(n.name), sshdConfig({ address: n.address, hostKey: f.hostKey(n.name), authorizedKeys: NODE_AUTHORIZED_KEYS }), { mode: 0o600 });
    const node = nodeTransport(n);
    await node.run(['mkdir', '-p', '-m', '0755', '/run/sshd']);
    // sshd reads authorized_keys as the user logging in: a copy in the node's private /run that SUDO_USER can read too
    await node.run(['install', '-D', '-m', '0644', f.authorizedKeys, NODE_AUTHORIZED_KEYS]);
    const slot = await ledger.record({ kind: 'process', name: `sshd@${n.name}`, node: 'lab' });
    const proc = await node.spawn(['/usr/sbin/sshd', '-D', '-e', '-f', f.config(n.name)], { logFile: join(n.dir, 'sshd.log') });
    await ledger.update(slot, { pid: proc.pid, startTime: proc.startTime });
    await waitFor(`sshd on ${n.name} to listen on ${n.address}:22 (see ${join(n.dir, 'sshd.log')})`, async () => (await node.run(['ss', '-Hltn', 'sport', '=', ':22'], { check: false })).stdout.includes(`${n.address}:22`), {
      timeoutMs: 10_000,
      intervalMs: 25,
    });
  }
  await writeFile(f.knownHosts, `${known.join('\n')}\n`, { mode: 0o600 });
  progress(`sshd: on ${plan.nodes.map((n) => `${n.name} (${n.address}:22)`).join(', ')}; client key ${f.clientKey}, known hosts ${f.knownHosts}`);
}

/** Nova CI's touch test: the client writes a file through NFS and the server sees it, and the other way round. */
async function touchTest(node: NodeTransport, c: NodePlan, plan: LabPlan, client: Environment['nfsClient'], mountPoint?: string): Promise<void> {
  const name = `.touch-${c.name}`;
  const onServer = join(plan.nfsServer.instancesDir, name);
  if (client === 'kernel') {
    await node.run(['touch', join(mountPoint!, name)]);
  } else {
    // By host name, as the tutorial's nodes do: proves /etc/hosts too.
    await node.run(['qemu-img', 'create', '-q', '-f', 'raw', `nfs://${plan.nfsServer.name}${onServer}`, '1M'], { timeoutMs: 20_000 });
  }
  if (!existsSync(onServer)) throw new MigralabError('LAB', `NFS touch test: ${c.name} wrote ${name} but ${plan.nfsServer.name} does not see it`);
  await rm(onServer);
  await writeFile(join(plan.nfsServer.instancesDir, `${name}-back`), 'x');
  const back = client === 'kernel' ? await node.run(['cat', join(mountPoint!, `${name}-back`)], { check: false }) : await node.run(['qemu-img', 'info', `nfs://${plan.nfsServer.name}${onServer}-back`], { check: false });
  await rm(`${onServer}-back`);
  if (back.exitCode !== 0) throw new MigralabError('LAB', `NFS touch test: ${c.name} cannot read a file ${plan.nfsServer.name} wrote: ${back.stderr}`);
}

/**
 * Lab processes that get SIGKILL at once on down. ganesha answers SIGTERM with its own shutdown
 * grace (it always outlived our 800 ms here) and its state is the lab's throwaway exports: down
 * is 0.8 s faster without the wait.
 */
const KILL_AT_ONCE = new Set(['ganesha']);

/**
 * Removes everything the ledger lists, newest first: processes (by recorded PID and
 * start time, then every PID left in our namespaces), mounts, namespaces, directories.
 * Returns only once every process of the lab has exited (SIGTERM, SIGKILL after a grace
 * period, then checked), and says which ones it had to kill. Works after the harness was
 * SIGKILLed; tolerant of things already gone.
 */
async function localDown(plan: LabPlan, progress: Progress = () => {}): Promise<DownReport> {
  const data = await Ledger.read(plan.ledgerFile);
  if (!data) return { removed: 0, wasUp: false, killed: [] };
  const resources = [...data.resources].reverse();
  const procs = resources.filter(isProcess).filter((p) => p.pid !== undefined);
  const handles = procs.map((p) => ({ name: `${p.name}@${p.node} (pid ${p.pid})`, h: new LocalProcess(p.pid!, p.startTime), killAtOnce: KILL_AT_ONCE.has(p.name) }));
  // Anything else still running inside our namespaces was started by the lab (a PID not yet recorded).
  for (const pid of await straysIn(plan, resources)) if (!handles.some((x) => x.h.pid === pid)) handles.push({ name: `pid ${pid}`, h: new LocalProcess(pid), killAtOnce: false });
  const live = handles.filter((x) => x.h.aliveNow());
  for (const x of live) await x.h.signal(x.killAtOnce ? 'SIGKILL' : 'SIGTERM');
  const stubborn = await waitGone(live.map((x) => x.h), 800);
  const killed = live.filter((x) => stubborn.includes(x.h)).map((x) => x.name);
  for (const h of stubborn) await h.signal('SIGKILL');
  const left = await waitGone(stubborn, 5000);
  // The namespaces themselves must be empty before they go: check, kill what is still there.
  for (let i = 0; i < 50; i++) {
    const more = await straysIn(plan, resources.filter((r) => r.kind === 'netns'));
    if (more.length === 0 && left.every((h) => !h.aliveNow())) break;
    for (const pid of more) {
      killed.push(`pid ${pid}`);
      await new LocalProcess(pid).signal('SIGKILL');
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  let removed = procs.length;
  for (const r of resources) {
    if (r.kind === 'mount') {
      const res = await run(['umount', '--lazy', r.target], { check: false });
      if (res.exitCode === 0) removed++;
    } else if (r.kind === 'netns') {
      const res = await run(['ip', 'netns', 'del', r.name], { check: false });
      if (res.exitCode === 0) removed++;
    } else if (r.kind === 'dir') {
      if (existsSync(r.path)) {
        await rm(r.path, { recursive: true, force: true });
        removed++;
      }
    }
  }
  // Empty mount points made on the host (libvirt's /var/lib/libvirt, ...): removed once no
  // other migralab lab is up here (its nodes may mount over the same directories).
  const others = (await run(['ip', 'netns', 'list'], { check: false })).stdout.split('\n').some((l) => l.startsWith('mlab-'));
  if (!others)
    for (const r of resources)
      if (r.kind === 'mountpoint' && existsSync(r.path)) {
        await rm(join(r.path, '.migralab-mountpoint'), { force: true });
        if (await rmdir(r.path).then(() => true, () => false)) removed++;
      }
  await rm(plan.ledgerFile, { force: true });
  await rm(`${plan.ledgerFile}.tmp`, { force: true });
  // The state root is ours too when nothing else is in it.
  try {
    if ((await readdir(plan.stateRoot)).length === 0) await rm(plan.stateRoot, { recursive: true });
  } catch {
    /* not there */
  }
  progress(`down: removed ${removed} resources of lab ${plan.lab}${killed.length ? `; had to kill ${killed.join(', ')}` : ''}`);
  return { removed, wasUp: true, killed };
}
