/**
 * The guests of a run: one per identity (strategy x driver x hypervisor build), booted
 * once and migrated back and forth for the whole run. A guest's probe area (the last
 * 8 MiB of its data disk) gets one fresh random MiB before every migration; the same MiB
 * is read back after it.
 */
import { randomUUID } from 'node:crypto';
import type { Strategy, DriverName } from '../config/scenario.ts';
import { MigralabError } from '../errors.ts';
import type { GuestShell } from '../qemu/guest-shell.ts';
import type { QemuBuild } from '../qemu/builds.ts';
import { macFor } from '../net/address.ts';
import type { BootRecord, GuestSpec, Instance, MigrationDriver } from '../migrate/types.ts';
import type { LabNode, StartedLab } from '../provision/provider.ts';

const MiB = 1024 ** 2;
/** The last 8 MiB of the data disk are the probe area: one fresh random MiB per migration. */
export const PROBE_AREA_MIB = 8;

/** The name of a guest: `block-vm`, or with the driver and build when a run has several. */
export function guestName(strategy: Strategy, driver: DriverName, buildId: string, opts: { manyDrivers: boolean; manyBuilds: boolean }): string {
  const parts: string[] = [strategy];
  if (opts.manyDrivers) parts.push(driver);
  if (opts.manyBuilds) parts.push(buildId.startsWith('/') ? `b${Math.abs(hash(buildId)) % 1000}` : buildId.replace(/^debian-/, 'q').replace(/\./g, ''));
  return `${parts.join('-')}-vm`.replace(/[^A-Za-z0-9-]/g, '-');
}

function hash(s: string): number {
  let h = 0;
  for (const c of s) h = (h * 31 + c.charCodeAt(0)) | 0;
  return h;
}

export function guestSpec(p: {
  name: string;
  strategy: Strategy;
  index: number;
  ip: string;
  prefix: number;
  memoryBytes: number;
  diskBytes: number;
  diskDataBytes: number;
  accelerator: 'kvm' | 'tcg';
  image: GuestSpec['image'];
  build: QemuBuild;
}): GuestSpec {
  return {
    name: p.name,
    strategy: p.strategy,
    uuid: randomUUID(),
    ip: p.ip,
    prefix: p.prefix,
    mac: macFor(p.ip),
    tap: `mltap${p.index}`,
    memoryBytes: p.memoryBytes,
    diskBytes: p.diskBytes,
    diskDataBytes: p.diskDataBytes,
    accelerator: p.accelerator,
    image: p.image,
    build: p.build,
  };
}

/** Guest `index` of a lab: its address (and from it the MAC and tap) by index, the lab's prefix, accelerator and image. */
export function labGuestSpec(lab: StartedLab, p: { name: string; strategy: Strategy; index: number; memoryBytes: number; diskBytes: number; diskDataBytes: number; build: QemuBuild }): GuestSpec {
  return guestSpec({ ...p, ip: lab.plan.instanceAddress(p.index), prefix: lab.plan.prefix, accelerator: lab.info.environment.accelerator, image: lab.info.image });
}

/** How one guest of a run was started (results.sizing.boot.guests). */
export type GuestBoot = BootRecord & { guest: string; node: string };

/**
 * Boots every slot on `node` at once and returns how long that took (ms) and how each guest
 * was started. allSettled: when one guest fails to boot, the others still finish starting
 * (the caller destroys them all).
 */
export async function bootAll(slots: readonly GuestSlot[], node: LabNode, signal?: AbortSignal): Promise<{ wallMs: number; guests: GuestBoot[] }> {
  const t0 = performance.now();
  const boots = await Promise.allSettled(slots.map(async (g) => (g.current = await g.driver.launch(g.spec, node, { signal }))));
  const failure = boots.find((b): b is PromiseRejectedResult => b.status === 'rejected');
  if (failure) throw failure.reason;
  const wallMs = performance.now() - t0;
  const guests = slots.map((g): GuestBoot => ({ guest: g.name, node: node.name, ...(g.current!.boot ?? { mode: 'cold', ms: wallMs, snapshotMadeMs: null, note: null }) }));
  return { wallMs, guests };
}

/** "guests up in 1.4 s (restored from a snapshot)" and the like: how a bootAll went, for the progress line. */
export function bootSummary(b: { wallMs: number; guests: readonly GuestBoot[] }): string {
  const restored = b.guests.filter((g) => g.mode === 'snapshot').length;
  const made = b.guests.map((g) => g.snapshotMadeMs).find((x): x is number => x !== null);
  const how =
    restored === 0 ? 'booted cold' : restored === b.guests.length ? 'restored from a booted snapshot' : `${restored} of ${b.guests.length} restored from a booted snapshot, the others booted cold`;
  return `guests up in ${(b.wallMs / 1000).toFixed(1)} s (${how}${made !== undefined ? `; the snapshot was made first, in ${(made / 1000).toFixed(1)} s` : ''})`;
}

/** One guest of a run: which driver runs it, where it is now, and whether it still answers. */
export class GuestSlot {
  current: Instance | undefined;
  /** Set when the guest stopped answering its control shell: it is replaced before its next iteration, or that iteration is skipped, saying why. */
  broken: string | undefined;
  /** Set when replacing a broken guest failed: its later iterations are skipped. */
  unreplaceable: string | undefined;
  /** How many times a broken guest was replaced by a fresh boot in this run. */
  replaced = 0;
  /** The source's disk copies of the last migration being removed: what went wrong, if anything. */
  released: Promise<string | undefined> = Promise.resolve(undefined);

  constructor(
    readonly spec: GuestSpec,
    readonly driver: MigrationDriver,
  ) {}

  get name(): string {
    return this.spec.name;
  }

  instance(): Instance {
    if (!this.current) throw new MigralabError('LAB', `guest ${this.spec.name} is not running`);
    return this.current;
  }

  shell(signal?: AbortSignal): Promise<GuestShell> {
    return this.instance().shell({ signal });
  }

  /** Writes one fresh random MiB into the probe area, flushed past every cache, and returns its md5 as the guest reads it back. */
  async writeProbe(slot: number): Promise<{ offsetMiB: number; md5: string }> {
    const offsetMiB = Math.floor(this.spec.diskBytes / MiB) - PROBE_AREA_MIB + (slot % PROBE_AREA_MIB);
    await using sh = await this.shell();
    const w = await sh.exec(`dd if=/dev/urandom of=/dev/vda bs=1M count=1 seek=${offsetMiB} oflag=direct conv=fsync 2>&1 && sync`, { timeoutMs: 30_000 });
    if (w.status !== 0) throw new MigralabError('LAB', `guest ${this.spec.name}: probe write failed: ${w.output.trim()}`);
    return { offsetMiB, md5: await this.readProbe(offsetMiB, sh) };
  }

  async readProbe(offsetMiB: number, sh?: GuestShell): Promise<string> {
    const own = sh ? undefined : await this.shell();
    try {
      const s = sh ?? own!;
      const r = await s.exec(`echo 3 >/proc/sys/vm/drop_caches; dd if=/dev/vda bs=1M count=1 skip=${offsetMiB} iflag=direct 2>/dev/null | md5sum`, { timeoutMs: 30_000 });
      const md5 = /^([0-9a-f]{32})\b/.exec(r.output.trim())?.[1];
      if (r.status !== 0 || !md5) throw new MigralabError('LAB', `guest ${this.spec.name}: probe read failed: ${r.output.trim()}`);
      return md5;
    } finally {
      own?.close();
    }
  }

  /**
   * A guest that stopped answering (a panic on the destination, say) is stopped and a fresh one
   * booted on `node` from the same spec, so the cell's later iterations still measure.
   * Returns what to note in the next iteration; on failure the slot stays broken for good.
   */
  async replace(node: LabNode, opts: { signal?: AbortSignal } = {}): Promise<string> {
    const why = this.broken!;
    await this.destroy();
    try {
      this.current = await this.driver.launch(this.spec, node, opts);
    } catch (e) {
      this.unreplaceable = `${why}; booting a fresh ${this.spec.name} failed: ${(e as Error).message}`;
      throw e;
    }
    this.broken = undefined;
    this.replaced++;
    return `a fresh ${this.spec.name} was booted on ${node.name} before this iteration (replacement ${this.replaced}), because ${why}`;
  }

  /** Stops the guest wherever it runs and removes its disks on every node. */
  async destroy(): Promise<void> {
    await this.released;
    await this.current?.stop().catch(() => {});
    this.current = undefined;
    await this.driver.destroy(this.spec).catch(() => {});
  }
}
