/**
 * An instance's disks, whichever driver runs it: a qcow2 data disk holding `diskData`
 * bytes of random data (a copy of one made once per size: dataDisk) and a vfat config
 * drive (OpenStack's `config-2` layout), made on the node through its transport, in the
 * instance's directory (lab/migrate/storage.ts).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { makeConfigDrive, CONFIG_DRIVE_BYTES } from '../image/configdrive.ts';
import type { LabNode } from '../provision/provider.ts';
import type { LabInfo } from '../provision/provider.ts';
import type { LabPlan } from '../provision/plan.ts';
import { diskFiles, instanceDir } from './storage.ts';
import { cachedFile, once, pruneCache } from './cache.ts';
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
  if (guest.diskDataBytes > 0) await t.run(['cp', '--', await dataDisk(guest, node), disk], { timeoutMs: 300_000 });
  else await t.run(['qemu-img', 'create', '-q', '-f', 'qcow2', disk, String(guest.diskBytes)]);
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

/** Data disks being made by this process, by node and file: guests created at once wait for the same one. */
const making = new Map<string, Promise<string>>();
/** Data disks kept per image directory on a node; the least recently used go first. */
const KEEP_DATA_DISKS = 4;

/**
 * A qcow2 data disk of the guest's size holding `diskData` bytes of random data, made once per
 * node and size beside the guest image, then copied for every guest: writing hundreds of MiB
 * from /dev/urandom took most of a guest's start (0.9 s for 200 MiB, twice that with two guests
 * at once). The bytes are random either way, so nothing a migration does with them changes;
 * guests of a run share them.
 */
function dataDisk(guest: GuestSpec, node: LabNode): Promise<string> {
  const dir = join(dirname(guest.image.kernel), 'disks');
  const file = join(dir, `data-${guest.diskDataBytes}-${guest.diskBytes}.qcow2`);
  return once(making, `${node.name}:${file}`, async () => {
    if (await cachedFile(node, file)) return file;
    const t = node.transport;
    await t.mkdir(dir);
    const tmp = `${file}.tmp-${process.pid}-${randomBytes(3).toString('hex')}`;
    try {
      await t.run(['sh', '-c', 'head -c "$1" /dev/urandom >"$2.raw" && qemu-img convert -f raw -O qcow2 "$2.raw" "$2" && rm -f "$2.raw" && qemu-img resize -q -f qcow2 "$2" "$3"', 'sh', String(guest.diskDataBytes), tmp, String(guest.diskBytes)], { timeoutMs: 300_000 });
      await t.run(['mv', '-f', tmp, file]);
    } finally {
      await t.run(['rm', '-f', tmp, `${tmp}.raw`], { check: false });
    }
    await pruneCache(node, dir, 'data-*.qcow2', KEEP_DATA_DISKS);
    return file;
  });
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
