import { mkdir, readFile, rm, writeFile, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Topology } from '../config/topology.ts';
import { MigralabError } from '../errors.ts';
import { LocalNode, type NodeTransport } from '../exec/node.ts';
import { run } from '../exec/run.ts';
import { terminate } from '../exec/kill.ts';
import { processAlive, processStartTime } from '../exec/proc.ts';
import { Ledger, type Resource } from '../state/ledger.ts';
import { startGanesha } from '../nfs/ganesha.ts';
import { buildGuestImage, type GuestImage } from '../image/build.ts';
import { planLab, hostsFile, type LabPlan, type NodePlan } from './plan.ts';
import { detectNfsClient, hostFacts, kvmModuleLoaded, qemuVersion, type Environment } from './environment.ts';
import { probeAccelerator } from './accel.ts';

/** What `up` leaves in <labDir>/lab.json for `run`, `status` and `down`. */
export interface LabInfo {
  lab: string;
  topologyFile: string;
  upAt: string;
  upMs: number;
  environment: Environment;
  image: GuestImage;
  nfs: { server: string; exportPath: string; version: 3 | 4; client: Environment['nfsClient']; mountPoint?: string };
  nodes: { name: string; roles: string[]; address: string; netns: string; instancesDir: string }[];
  observer: { name: string; address: string; netns: string };
}

export type Progress = (msg: string) => void;

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
    throw new MigralabError('PREREQ', `missing programs: ${missing.join(', ')}. Install them with: npm run setup (or apt-get install the packages named)`);
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

/** Is every namespace and daemon of a lab that says it is up really there? */
export async function labHealthy(plan: LabPlan): Promise<{ healthy: boolean; problems: string[] }> {
  const data = await Ledger.read(plan.ledgerFile);
  const problems: string[] = [];
  if (!data) return { healthy: false, problems: ['no ledger'] };
  if (data.status !== 'up') problems.push(`ledger status is ${data.status} (an earlier up did not finish)`);
  const netns = new Set((await run(['ip', 'netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0]));
  for (const r of data.resources) {
    if (r.kind === 'netns' && !netns.has(r.name)) problems.push(`namespace ${r.name} is missing`);
    if (r.kind === 'process' && r.node === 'lab' && (r.pid === undefined || processStartTime(r.pid) !== r.startTime))
      problems.push(`${r.name} is not running`);
  }
  if (!(await readLabInfo(plan))) problems.push('lab.json is missing');
  return { healthy: problems.length === 0, problems };
}

/**
 * Raises the lab: namespaces, bridges, veths, per-node mount/UTS namespaces and
 * /etc/hosts, the NFS server, the guest image. Idempotent: a healthy lab is left as
 * it is; leftovers of a broken one are removed first.
 */
export async function up(topology: Topology, topologyFile: string, progress: Progress = () => {}): Promise<{ info: LabInfo; alreadyUp: boolean }> {
  await checkPrerequisites();
  const plan = planLab(topology);
  const existing = await Ledger.read(plan.ledgerFile);
  if (existing) {
    const { healthy, problems } = await labHealthy(plan);
    const info = await readLabInfo(plan);
    if (healthy && info) return { info, alreadyUp: true };
    progress(`lab ${plan.lab} is half up (${problems.join('; ')}): removing what is left`);
    await down(plan, progress);
  }
  const t0 = performance.now();
  const ledger = await Ledger.open(plan.ledgerFile, plan.lab);
  try {
    const info = await raise(plan, topologyFile, ledger, progress);
    info.upMs = performance.now() - t0;
    await writeFile(plan.infoFile, JSON.stringify(info, null, 2));
    await ledger.setStatus('up');
    return { info, alreadyUp: false };
  } catch (e) {
    progress(`up failed: ${(e as Error).message}; removing what was created`);
    await down(plan, () => {});
    throw e instanceof MigralabError ? e : new MigralabError('LAB', `up failed: ${(e as Error).message}`, { cause: e });
  }
}

async function raise(plan: LabPlan, topologyFile: string, ledger: Ledger, progress: Progress): Promise<LabInfo> {
  const mkdirs = async (path: string) => {
    await ledger.record({ kind: 'dir', path });
    await mkdir(path, { recursive: true });
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
  for (const n of plan.nodes) for (const d of [n.dir, n.instancesDir]) await mkdir(d, { recursive: true });

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

  for (const n of plan.nodes) {
    await addNetns(n.netns);
    await attach(n.netns, n.switchPort, 'uplink');
    const ns = (...a: string[]) => run(['ip', '-n', n.netns, ...a]);
    await ns('link', 'add', 'br0', 'type', 'bridge');
    await ns('link', 'set', 'uplink', 'master', 'br0', 'up');
    await ns('addr', 'add', `${n.address}/${plan.prefix}`, 'dev', 'br0');
    await ns('link', 'set', 'br0', 'up');
    await ns('link', 'set', 'lo', 'up');

    await writeFile(n.hostsFile, hostsFile(plan, n.name));
    for (const f of [n.mountNsFile, n.utsNsFile]) {
      await ledger.record({ kind: 'mount', target: f });
      await writeFile(f, '');
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
  }

  progress(`nfs: ganesha on ${plan.nfsServer.name} exporting ${plan.nfsServer.instancesDir} to ${plan.cidr}`);
  const server = nodeTransport(plan.nfsServer);
  const versions: (3 | 4)[] = plan.nfsVersion === 3 ? [3, 4] : [4];
  await startGanesha(server, { path: plan.nfsServer.instancesDir, clients: plan.cidr, bindAddress: plan.nfsServer.address, versions }, plan.nfsServer.dir, {
    beforeStart: (name) => ledger.record({ kind: 'process', name, node: 'lab' }),
    started: (entry, pid) => ledger.update(entry as Extract<Resource, { kind: 'process' }>, { pid, startTime: processStartTime(pid) }),
  });

  const nfs = await detectNfsClient();
  const clients = plan.nodes.filter((n) => n.roles.includes('nfs-client'));
  let mountPoint: string | undefined;
  for (const c of clients) {
    const node = nodeTransport(c);
    if (nfs.client === 'kernel') {
      // As the tutorial does it; the mount lives in the node's own mount namespace.
      mountPoint = join(c.dir, 'shared');
      await mkdir(mountPoint, { recursive: true });
      await node.run(['mount', '-t', 'nfs', '-o', `vers=${plan.nfsVersion},proto=tcp,nolock`, `${plan.nfsServer.name}:${plan.nfsServer.instancesDir}`, mountPoint], {
        timeoutMs: 20_000,
      });
    }
    await touchTest(node, c, plan, nfs.client, mountPoint);
  }

  const image = await imageP;
  progress(`image: ${image.cached ? 'cached' : 'built'} ${image.hash.slice(0, 12)} (kernel ${image.kernelVersion})`);
  const accel = await probeAccelerator(image, kvmModuleLoaded());

  return {
    lab: plan.lab,
    topologyFile,
    upAt: new Date().toISOString(),
    upMs: 0,
    environment: {
      accelerator: accel.accelerator,
      acceleratorReason: accel.reason,
      qemuVersion: await qemuVersion(),
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
  };
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
 * Removes everything the ledger lists, newest first: processes (by recorded PID and
 * start time, then every PID left in our namespaces), mounts, namespaces, directories.
 * Works after the harness was SIGKILLed; tolerant of things already gone.
 */
export async function down(plan: LabPlan, progress: Progress = () => {}): Promise<{ removed: number; wasUp: boolean }> {
  const data = await Ledger.read(plan.ledgerFile);
  if (!data) {
    // No ledger: only a directory could be left from a crash before the first record.
    return { removed: 0, wasUp: false };
  }
  const resources = [...data.resources].reverse();
  const procs = resources.filter((r): r is Extract<Resource, { kind: 'process' }> => r.kind === 'process');
  await Promise.all(procs.filter((p) => p.pid !== undefined).map((p) => terminate(p.pid!, { startTime: p.startTime, graceMs: 300 })));
  const netnsList = resources.filter((r): r is Extract<Resource, { kind: 'netns' }> => r.kind === 'netns');
  // Anything else still running inside our namespaces was started by the lab (a PID not yet recorded).
  const strays: number[] = [];
  for (const ns of netnsList) {
    const r = await run(['ip', 'netns', 'pids', ns.name], { check: false });
    if (r.exitCode === 0) strays.push(...r.stdout.split('\n').filter(Boolean).map(Number));
  }
  await Promise.all(strays.filter((p) => p !== process.pid && processAlive(p)).map((p) => terminate(p, { graceMs: 300 })));
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
  await rm(plan.ledgerFile, { force: true });
  await rm(`${plan.ledgerFile}.tmp`, { force: true });
  // The state root is ours too when nothing else is in it.
  try {
    if ((await readdir(plan.stateRoot)).length === 0) await rm(plan.stateRoot, { recursive: true });
  } catch {
    /* not there */
  }
  progress(`down: removed ${removed} resources of lab ${plan.lab}`);
  return { removed, wasUp: true };
}
