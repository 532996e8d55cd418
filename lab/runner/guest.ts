import { randomUUID, randomFillSync } from 'node:crypto';
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Strategy } from '../config/scenario.ts';
import type { LabPlan, NodePlan } from '../provision/plan.ts';
import { nodeTransport, type LabInfo } from '../provision/local.ts';
import type { Ledger } from '../state/ledger.ts';
import { run } from '../exec/run.ts';
import { macFor } from '../net/address.ts';
import { kernelCmdline } from '../image/build.ts';
import { makeConfigDrive, CONFIG_DRIVE_BYTES } from '../image/configdrive.ts';
import { waitForGuestReady, GuestShell } from '../qemu/guest-shell.ts';
import type { GuestLaunch } from '../qemu/argv.ts';
import { QemuProcess, runFiles, type Placement } from '../qemu/instance.ts';
import { diskSpecs, instanceDir, diskFiles } from '../migrate/storage.ts';
import { MigralabError } from '../errors.ts';

export interface GuestDef {
  name: string;
  strategy: Strategy;
  ip: string;
  memoryBytes: number;
  diskBytes: number;
  diskDataBytes: number;
}

export interface LabContext {
  plan: LabPlan;
  info: LabInfo;
  ledger: Ledger;
}

const MiB = 1024 ** 2;
/** The last 8 MiB of the data disk are the probe area: one fresh random MiB per migration. */
export const PROBE_AREA_MIB = 8;

/** One guest that moves between compute nodes for the whole run. */
export class Guest {
  current!: QemuProcess;
  readonly mac: string;
  readonly tap: string;
  readonly uuid = randomUUID();
  /** Set when the guest stopped answering its control shell: later iterations are skipped, saying why. */
  broken: string | undefined;

  constructor(
    readonly def: GuestDef,
    private readonly ctx: LabContext,
  ) {
    this.mac = macFor(def.ip);
    this.tap = `tap-${def.name}`.slice(0, 15);
  }

  placement(node: NodePlan): Placement {
    return { node, transport: nodeTransport(node) };
  }

  launchOn(node: NodePlan, incoming: boolean): GuestLaunch {
    const files = runFiles(node, this.def.name);
    return {
      name: this.def.name,
      memoryBytes: this.def.memoryBytes,
      accelerator: this.ctx.info.environment.accelerator,
      kernel: this.ctx.info.image.kernel,
      initrd: this.ctx.info.image.initrd,
      append: kernelCmdline(),
      disks: diskSpecs(this.ctx.plan, this.ctx.info, this.def.strategy, node, this.def.name),
      mac: this.mac,
      tap: this.tap,
      qmpSocket: files.qmpSocket,
      ctlSocket: files.ctlSocket,
      consoleLog: files.consoleLog,
      pidFile: files.pidFile,
      incoming,
    };
  }

  diskSizes(): Record<string, number> {
    return { disk0: this.def.diskBytes, config0: CONFIG_DRIVE_BYTES };
  }

  /** Disks (data disk holding `diskDataBytes` of random data + config drive), then boot and wait for the guest's init. */
  async create(node: NodePlan, bootTimeoutMs = 90_000): Promise<void> {
    const dir = instanceDir(this.ctx.plan, this.def.strategy, node, this.def.name);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    const disk = join(dir, diskFiles.disk0.file);
    if (this.def.diskDataBytes > 0) {
      const raw = join(dir, 'data.raw');
      await writeRandom(raw, this.def.diskDataBytes);
      await run(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', raw, disk]);
      await rm(raw);
      await run(['qemu-img', 'resize', '-q', '-f', 'qcow2', disk, String(this.def.diskBytes)]);
    } else {
      await run(['qemu-img', 'create', '-q', '-f', 'qcow2', disk, String(this.def.diskBytes)]);
    }
    await makeConfigDrive(join(dir, diskFiles.config0.file), {
      name: this.def.name,
      uuid: this.uuid,
      ip: this.def.ip,
      prefix: this.ctx.plan.prefix,
      mac: this.mac,
    });
    this.current = await QemuProcess.start(this.placement(node), this.launchOn(node, false), this.ctx.ledger);
    const shell = await waitForGuestReady(runFiles(node, this.def.name).ctlSocket, { timeoutMs: bootTimeoutMs }).catch(async (e) => {
      await this.current.quit();
      throw new MigralabError('LAB', `guest ${this.def.name} did not come up on ${node.name}: ${(e as Error).message}`);
    });
    shell.close();
  }

  async shell(): Promise<GuestShell> {
    return GuestShell.connect(runFiles(this.current.placement.node, this.def.name).ctlSocket, { timeoutMs: 10_000 });
  }

  /** Writes one fresh random MiB into the probe area, flushed past every cache, and returns its md5 as the guest reads it back. */
  async writeProbe(slot: number): Promise<{ offsetMiB: number; md5: string }> {
    const offsetMiB = Math.floor(this.def.diskBytes / MiB) - PROBE_AREA_MIB + (slot % PROBE_AREA_MIB);
    await using sh = await this.shell();
    const w = await sh.exec(`dd if=/dev/urandom of=/dev/vda bs=1M count=1 seek=${offsetMiB} oflag=direct conv=fsync 2>&1 && sync`, { timeoutMs: 30_000 });
    if (w.status !== 0) throw new MigralabError('LAB', `guest ${this.def.name}: probe write failed: ${w.output.trim()}`);
    return { offsetMiB, md5: await this.readProbe(offsetMiB, sh) };
  }

  async readProbe(offsetMiB: number, sh?: GuestShell): Promise<string> {
    const own = sh ? undefined : await this.shell();
    try {
      const s = sh ?? own!;
      const r = await s.exec(`echo 3 >/proc/sys/vm/drop_caches; dd if=/dev/vda bs=1M count=1 skip=${offsetMiB} iflag=direct 2>/dev/null | md5sum`, { timeoutMs: 30_000 });
      const md5 = /^([0-9a-f]{32})\b/.exec(r.output.trim())?.[1];
      if (r.status !== 0 || !md5) throw new MigralabError('LAB', `guest ${this.def.name}: probe read failed: ${r.output.trim()}`);
      return md5;
    } finally {
      own?.close();
    }
  }

  /** The last lines the guest printed on its console (ttyS0), for a report on a guest in trouble. */
  async consoleTail(lines: number): Promise<string> {
    try {
      const text = await readFile(runFiles(this.current.placement.node, this.def.name).consoleLog, 'utf8');
      return text.replace(/\r/g, '').trimEnd().split('\n').slice(-lines).join(' | ') || '(empty)';
    } catch (e) {
      return `(unreadable: ${(e as Error).message})`;
    }
  }

  /** Stops the guest wherever it runs and removes its disks on every node. */
  async destroy(): Promise<void> {
    await this.current?.quit().catch(() => {});
    for (const n of this.ctx.plan.nodes) await rm(instanceDir(this.ctx.plan, this.def.strategy, n, this.def.name), { recursive: true, force: true });
  }
}

async function writeRandom(path: string, bytes: number): Promise<void> {
  const fh = await open(path, 'w');
  try {
    const chunk = Buffer.alloc(4 * MiB);
    for (let done = 0; done < bytes; ) {
      const n = Math.min(chunk.length, bytes - done);
      randomFillSync(chunk, 0, n);
      await fh.write(chunk, 0, n);
      done += n;
    }
  } finally {
    await fh.close();
  }
}
