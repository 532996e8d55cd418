/**
 * An instance's disks, whichever driver runs it: a qcow2 data disk holding `diskData`
 * bytes of random data and a vfat config drive (OpenStack's `config-2` layout), made on
 * the node through its transport, in the instance's directory (lab/migrate/storage.ts).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeConfigDrive, CONFIG_DRIVE_BYTES } from '../image/configdrive.ts';
import type { LabNode } from '../provision/provider.ts';
import type { LabInfo } from '../provision/provider.ts';
import type { LabPlan } from '../provision/plan.ts';
import { diskFiles, instanceDir } from './storage.ts';
import type { GuestSpec } from './types.ts';

/** Virtual size of each disk by block node name (block migration pre-creates them on the destination). */
export function diskSizes(guest: GuestSpec): Record<string, number> {
  return { disk0: guest.diskBytes, config0: CONFIG_DRIVE_BYTES };
}

export async function createDisks(guest: GuestSpec, node: LabNode, plan: LabPlan): Promise<void> {
  const t = node.transport;
  const dir = instanceDir(plan, guest.strategy, node.plan, guest.name);
  await t.remove(dir);
  await t.mkdir(dir);
  const disk = join(dir, diskFiles.disk0.file);
  if (guest.diskDataBytes > 0) {
    const raw = join(dir, 'data.raw');
    await t.run(['sh', '-c', 'head -c "$1" /dev/urandom >"$2"', 'sh', String(guest.diskDataBytes), raw], { timeoutMs: 300_000 });
    await t.run(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', raw, disk], { timeoutMs: 300_000 });
    await t.remove(raw);
    await t.run(['qemu-img', 'resize', '-q', '-f', 'qcow2', disk, String(guest.diskBytes)]);
  } else {
    await t.run(['qemu-img', 'create', '-q', '-f', 'qcow2', disk, String(guest.diskBytes)]);
  }
  // The config drive is built here and copied to the node (mkfs.vfat and mtools need not be there).
  const tmp = await mkdtemp(join(tmpdir(), 'migralab-config-'));
  try {
    const file = join(tmp, diskFiles.config0.file);
    await makeConfigDrive(file, { name: guest.name, uuid: guest.uuid, ip: guest.ip, prefix: guest.prefix, mac: guest.mac });
    await t.writeFile(join(dir, diskFiles.config0.file), await readFile(file));
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** Removes the guest's directories on every node (block: its local copies; shared: the export's). */
export async function removeDisks(guest: GuestSpec, nodes: readonly LabNode[], plan: LabPlan): Promise<void> {
  for (const n of nodes) await n.transport.remove(instanceDir(plan, guest.strategy, n.plan, guest.name));
}

/** Block migration leaves the source's local copies behind: removed once the guest runs elsewhere (shared: nothing, the export is the guest's). */
export async function releaseLocalDisks(guest: GuestSpec, node: LabNode, plan: LabPlan): Promise<void> {
  if (guest.strategy === 'block') await node.transport.remove(instanceDir(plan, 'block', node.plan, guest.name));
}

/** Where the data disk of an instance is, from the hypervisor's own list of block nodes. */
export function locateDataDisk(info: LabInfo, nodes: { drv: string; file: string }[]): { driver: string; filename: string; onExport: boolean } {
  const proto = nodes.find((n) => (n.drv === 'file' || n.drv === 'nfs') && n.file.endsWith(`/${diskFiles.disk0.file}`));
  if (!proto) return { driver: 'unknown', filename: '', onExport: false };
  const path = proto.drv === 'nfs' ? proto.file.replace(/^nfs:\/\/[^/]+/, '') : proto.file;
  const exportRoots = [info.nfs.exportPath, info.nfs.mountPoint].filter((x): x is string => !!x);
  return { driver: proto.drv, filename: proto.file, onExport: exportRoots.some((root) => path.startsWith(root + '/')) };
}
