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
  instanceAddress(index: number): string;
}

export function planLab(t: Topology): LabPlan {
  const cidr = parseCidr(t.cidr)!;
  const labDir = join(t.paths.state, t.name);
  const nsDir = join(labDir, 'ns');
  const netns = (n: string) => `mlab-${t.name}-${n}`;
  const nodes: NodePlan[] = t.nodes.map((n, i) => {
    const dir = join(labDir, 'nodes', n.name);
    return {
      name: n.name,
      roles: n.roles,
      address: n.address,
      netns: netns(n.name),
      mountNsFile: join(nsDir, `${n.name}.mnt`),
      utsNsFile: join(nsDir, `${n.name}.uts`),
      dir,
      instancesDir: n.instancesDir ?? join(dir, 'instances'),
      hostsFile: join(dir, 'hosts'),
      switchPort: `p${i}`,
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
    observer: { name: t.observer.name, address: t.observer.address, netns: netns(t.observer.name), switchPort: 'pobs' },
    nodes,
    nfsServer: nodes.find((n) => n.roles.includes('nfs-server'))!,
    nfsVersion: t.nfs.version,
    instanceAddress: (index) => hostAt(cidr, t.instanceAddressStart + index),
  };
}

/** /etc/hosts for a node: every lab host by name, as the tutorial's nodes have it. */
export function hostsFile(plan: LabPlan, self: string): string {
  const lines = ['127.0.0.1\tlocalhost', ...plan.nodes.map((n) => `${n.address}\t${n.name}`), `${plan.observer.address}\t${plan.observer.name}`];
  return [`# migralab: /etc/hosts of ${self}`, ...lines, ''].join('\n');
}
