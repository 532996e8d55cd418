import { join } from 'node:path';
import type { Strategy } from '../config/scenario.ts';
import type { LabPlan, NodePlan } from '../provision/plan.ts';
import type { LabInfo } from '../provision/provider.ts';
import type { DiskSpec } from '../qemu/argv.ts';

/** The two disks of every instance: its data disk and its vfat config drive (both move in block migration). */
export const diskNames = ['disk0', 'config0'] as const;
export const diskFiles: Record<(typeof diskNames)[number], { file: string; format: 'qcow2' | 'raw' }> = {
  disk0: { file: 'disk.qcow2', format: 'qcow2' },
  config0: { file: 'disk.config', format: 'raw' },
};

/** Directory of an instance's disks as the host (and that node) sees it. */
export function instanceDir(plan: LabPlan, strategy: Strategy, node: NodePlan, instance: string): string {
  // shared: on the controller's exported instances directory, like nova's instances dir on NFS.
  // block: on the node's own local disk, outside the export.
  return strategy === 'shared' ? join(plan.nfsServer.instancesDir, instance) : join(node.dir, 'local', instance);
}

/** How QEMU on `node` opens the instance's disks. */
export function diskSpecs(plan: LabPlan, info: LabInfo, strategy: Strategy, node: NodePlan, instance: string): DiskSpec[] {
  const dir = instanceDir(plan, strategy, node, instance);
  return diskNames.map((nodeName) => {
    const { file, format } = diskFiles[nodeName];
    if (strategy === 'block' || node.name === plan.nfsServer.name)
      return { nodeName, format, source: { driver: 'file', filename: join(dir, file) } } satisfies DiskSpec;
    if (info.nfs.client === 'kernel')
      return { nodeName, format, source: { driver: 'file', filename: join(info.nfs.mountPoint!, instance, file) } } satisfies DiskSpec;
    return { nodeName, format, source: { driver: 'nfs', server: plan.nfsServer.address, path: join(dir, file) } } satisfies DiskSpec;
  });
}
