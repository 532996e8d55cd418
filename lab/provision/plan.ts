import { join } from 'node:path';
import type { Topology, TopologyNode } from '../config/topology.ts';
import { parseCidr, hostAt } from '../net/address.ts';

/** Where everything of one lab lives: pure, derived from the topology alone. */
export interface NodePlan {
  name: string;
  roles: TopologyNode['roles'];
  address: string;
  netns: string;
  mountNsFile: string;
  utsNsFile: string;
  dir: string;
  instancesDir: string;
  hostsFile: string;
  /** veth end in the switch namespace. */
  switchPort: string;
  /** The bridge guests' taps join on this node. */
  bridge: string;
  /** provider ssh: how to reach the host. */
  ssh?: { host: string; port: number; user: string; identityFile?: string; knownHosts?: string; hostKey?: string; viaNetns?: string };
}

export interface LabPlan {
  lab: string;
  cidr: string;
  prefix: number;
  stateRoot: string;
  labDir: string;
  ledgerFile: string;
  infoFile: string;
  nsDir: string;
  imageCache: string;
  switchNetns: string;
  observer: { name: string; address: string; netns: string; switchPort: string };
  nodes: NodePlan[];
  nfsServer: NodePlan;
  nfsVersion: 3 | 4;
  provider: 'local' | 'ssh';
  /** local: an sshd in every node (bare hosts for the ssh provider's tests). */
  sshd: boolean;
  /** local: the NFS server runs (false: bare hosts). */
  nfsService: boolean;
  /** local: what else runs (openstack: the devstack-style profile, lab/stack/openstack). */
  stack: 'none' | 'openstack';
  exportOptions: string;
  /** The topology this plan was made from. */
  topology: Topology;
  instanceAddress(index: number): string;
}

/** The tutorial's instances directory: where nova keeps instance disks on a devstack host. */
export const TUTORIAL_INSTANCES_DIR = '/opt/stack/data/nova/instances';

export function planLab(t: Topology): LabPlan {
  const cidr = parseCidr(t.cidr)!;
  const labDir = join(t.paths.state, t.name);
  // On ssh hosts migralab's files live in its own directory there, per node (hosts may share a file system).
  const nodeRoot = t.provider === 'ssh' ? join(t.paths.remoteState, t.name, 'nodes') : join(labDir, 'nodes');
  const nsDir = join(labDir, 'ns');
  const netns = (n: string) => `mlab-${t.name}-${n}`;
  const nodes: NodePlan[] = t.nodes.map((n, i) => {
    const dir = join(nodeRoot, n.name);
    const ssh = t.provider === 'ssh' ? { ...t.ssh, ...n.ssh } : undefined;
    return {
      name: n.name,
      roles: n.roles,
      address: n.address,
      netns: netns(n.name),
      mountNsFile: join(nsDir, `${n.name}.mnt`),
      utsNsFile: join(nsDir, `${n.name}.uts`),
      dir,
      instancesDir: n.instancesDir ?? (t.provider === 'ssh' ? TUTORIAL_INSTANCES_DIR : join(dir, 'instances')),
      hostsFile: join(dir, 'hosts'),
      switchPort: `p${i}`,
      bridge: n.bridge,
      ...(ssh
        ? {
            ssh: {
              host: ssh.host ?? n.address,
              port: ssh.port ?? 22,
              user: ssh.user ?? 'root',
              ...(ssh.identityFile ? { identityFile: ssh.identityFile } : {}),
              ...(ssh.knownHosts ? { knownHosts: ssh.knownHosts } : {}),
              ...(ssh.hostKey ? { hostKey: ssh.hostKey } : {}),
              ...(ssh.viaNetns ? { viaNetns: ssh.viaNetns } : {}),
            },
          }
        : {}),
    };
  });
  return {
    lab: t.name,
    cidr: t.cidr,
    prefix: cidr.prefix,
    stateRoot: t.paths.state,
    labDir,
    ledgerFile: join(t.paths.state, `${t.name}.ledger.json`),
    infoFile: join(labDir, 'lab.json'),
    nsDir,
    imageCache: t.paths.imageCache,
    switchNetns: netns(t.switch.name),
    observer: { name: t.observer.name, address: t.observer.address, netns: t.observer.netns ?? netns(t.observer.name), switchPort: 'pobs' },
    provider: t.provider,
    sshd: t.services.sshd,
    nfsService: t.services.nfs,
    stack: t.stack,
    exportOptions: t.nfs.exportOptions,
    topology: t,
    nodes,
    nfsServer: nodes.find((n) => n.roles.includes('nfs-server'))!,
    nfsVersion: t.nfs.version,
    instanceAddress: (index) => hostAt(cidr, t.instanceAddressStart + index),
  };
}

/** /etc/hosts for a node: every lab host by name, as the tutorial's nodes have it. */
export function hostsFile(plan: LabPlan, self: string): string {
  // Bare hosts (for the ssh provider) know only themselves, like fresh machines: the ssh provider adds the rest.
  if (!plan.nfsService) {
    const me = plan.nodes.find((n) => n.name === self)!;
    return [`# migralab: /etc/hosts of ${self}`, '127.0.0.1\tlocalhost', `${me.address}\t${me.name}`, ''].join('\n');
  }
  const lines = ['127.0.0.1\tlocalhost', ...plan.nodes.map((n) => `${n.address}\t${n.name}`), `${plan.observer.address}\t${plan.observer.name}`];
  return [`# migralab: /etc/hosts of ${self}`, ...lines, ''].join('\n');
}
