/**
 * Fault injection: a scenario's `faults:` entries, done for real to one migration of a cell.
 *
 *   kill-destination       SIGKILL of the destination's QEMU
 *   stop-destination       SIGSTOP of the destination's QEMU (a destination that hangs)
 *   cut-link               the destination node's uplink down for forMs, then up again
 *   kill-nfs-server        SIGKILL of ganesha (shared storage vanishes); started again after
 *   fill-destination-disk  the destination's block-migration directory is a small tmpfs in the
 *                          node's own mount namespace, filled up while the disk is copied
 *
 * `during` fires when the driver says the phase began (mirror, ram, switchover-near);
 * `afterMs` that long after the request. restore() undoes what can be undone (link up,
 * NFS server started again, the tmpfs gone) before the guest is checked.
 */
import type { FaultSpec } from '../config/scenario.ts';
import { MigralabError } from '../errors.ts';
import type { DestinationControl, MigrationEvents, MigrationPhase } from '../migrate/types.ts';
import { instanceDir } from '../migrate/storage.ts';
import type { LabNode, StartedLab } from '../provision/provider.ts';

export interface FaultRecord {
  kind: string;
  during: string;
  /** ms after the request it was done; null: the moment never came (or doing it failed: see detail). */
  injectedAtMs: number | null;
  detail?: string;
}

/** What a faulted iteration should end as: a cut link shorter than the stall limit is ridden out. */
export function expectedOutcome(f: FaultSpec, stallMs: number): 'completes' | 'stays-on-source' {
  return f.kind === 'cut-link' && (f.forMs ?? 0) < stallMs ? 'completes' : 'stays-on-source';
}

export class FaultInjection {
  private dest: DestinationControl | undefined;
  private t0: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private linkTimer: NodeJS.Timeout | undefined;
  private linkDown = false;
  private nfsKilled = false;
  private tmpfs: string | undefined;
  private pending: Promise<void> | undefined;
  private doneAt: number | undefined;
  readonly record: FaultRecord;

  constructor(
    readonly spec: FaultSpec,
    private readonly lab: StartedLab,
    private readonly destination: LabNode,
    private readonly guestName: string,
  ) {
    this.record = { kind: spec.kind, during: spec.during ?? `afterMs=${spec.afterMs}`, injectedAtMs: null };
  }

  /** Refuses faults a provider cannot do, before the lab is raised. */
  static checkProvider(provider: string, faults: readonly FaultSpec[]): void {
    if (faults.length && provider !== 'local')
      throw new MigralabError('PREREQ', `faults are injected on the local lab only (this topology's provider is ${provider}): cutting a real host's link or killing its NFS server is not done`);
  }

  /** Refuses what this lab cannot do, before the guests boot (the provider was checked before up). */
  static check(lab: StartedLab, faults: readonly FaultSpec[]): void {
    if (faults.some((f) => f.kind === 'kill-nfs-server') && !lab.nfsServer) throw new MigralabError('PREREQ', `kill-nfs-server: lab ${lab.plan.lab} runs no NFS server of its own`);
  }

  /** Before the migration: what must be in place for the fault (the tmpfs of fill-destination-disk). */
  async prepare(diskBytes: number): Promise<void> {
    if (this.spec.kind !== 'fill-destination-disk') return;
    const dir = instanceDir(this.lab.plan, 'block', this.destination.plan, this.guestName);
    const t = this.destination.transport;
    await t.run(['mkdir', '-p', '-m', '0700', dir]);
    // Room for the disks' metadata and a little more, not for their data: the filler takes the rest.
    await t.run(['mount', '-t', 'tmpfs', '-o', `size=${diskBytes + 8 * 2 ** 20},mode=0700`, 'migralab-fault', dir]);
    this.tmpfs = dir;
  }

  /** The migration events that trigger the fault. */
  events(): MigrationEvents {
    return {
      destination: (d) => (this.dest = d),
      phase: (phase, atMs) => {
        if (this.t0 === undefined) {
          this.t0 = performance.now() - atMs;
          if (this.spec.afterMs !== undefined) {
            const wait = Math.max(0, this.spec.afterMs - atMs);
            this.timer = setTimeout(() => this.fire(), wait);
          }
        }
        if (this.spec.during === phase) this.fire(phase);
      },
    };
  }

  private fire(phase?: MigrationPhase): void {
    if (this.record.injectedAtMs !== null || this.pending) return;
    this.pending = this.inject().then(
      () => {
        // when it was done (the signal sent, the link down, the disk full), ms after the request
        this.record.injectedAtMs = this.t0 !== undefined && this.doneAt !== undefined ? this.doneAt - this.t0 : null;
      },
      (e) => {
        this.record.detail = `injecting failed${phase ? ` (${phase})` : ''}: ${(e as Error).message}`;
      },
    );
  }

  private async inject(): Promise<void> {
    const t = this.destination.transport;
    switch (this.spec.kind) {
      case 'kill-destination':
        if (!this.dest) throw new Error('the destination QEMU was not started yet');
        await this.dest.kill();
        this.doneAt = performance.now();
        this.record.detail = `SIGKILL of the destination QEMU on ${this.dest.node}`;
        return;
      case 'stop-destination':
        if (!this.dest) throw new Error('the destination QEMU was not started yet');
        await this.dest.freeze(true);
        this.doneAt = performance.now();
        this.record.detail = `SIGSTOP of the destination QEMU on ${this.dest.node}`;
        return;
      case 'cut-link': {
        await t.run(['ip', 'link', 'set', 'uplink', 'down']);
        this.doneAt = performance.now();
        this.linkDown = true;
        const forMs = this.spec.forMs!;
        this.linkTimer = setTimeout(() => void this.linkUp(), forMs);
        this.record.detail = `${this.destination.name}'s uplink down for ${forMs} ms`;
        return;
      }
      case 'kill-nfs-server':
        this.doneAt = performance.now();
        this.nfsKilled = true;
        await this.lab.nfsServer!.kill();
        this.record.detail = `SIGKILL of ganesha on ${this.lab.nfsServer!.node}`;
        return;
      case 'fill-destination-disk': {
        if (!this.tmpfs) throw new Error('no tmpfs was prepared');
        // Written until the filesystem says no (dd's own ENOSPC is the point, not an error).
        await t.run(['dd', 'if=/dev/zero', `of=${this.tmpfs}/.migralab-filler`, 'bs=64k'], { check: false });
        this.doneAt = performance.now();
        const avail = Number((await t.run(['df', '--output=avail', '-B1', this.tmpfs])).stdout.trim().split('\n').pop());
        if (!(avail < 64 * 1024)) throw new Error(`${this.tmpfs} still has ${avail} bytes free after the filler`);
        this.record.detail = `${this.destination.name}'s ${this.tmpfs} filled up (${avail} bytes left)`;
        return;
      }
    }
  }

  private async linkUp(): Promise<void> {
    if (!this.linkDown) return;
    this.linkDown = false;
    await this.destination.transport.run(['ip', 'link', 'set', 'uplink', 'up'], { check: false });
  }

  /**
   * After the migration ended (either way): undoes what the fault did, so the guest can be
   * checked and the next iteration runs on a whole lab. A cut link that is still down comes up.
   */
  async restore(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    await this.pending?.catch(() => {});
    if (this.linkTimer) clearTimeout(this.linkTimer);
    await this.linkUp();
    if (this.nfsKilled) {
      this.nfsKilled = false;
      await this.lab.nfsServer!.restart();
    }
    if (this.tmpfs) {
      const t = this.destination.transport;
      await t.run(['rm', '-f', `${this.tmpfs}/.migralab-filler`], { check: false });
      // The driver removed its disk copies after the failure; a completed migration would hold them open.
      const u = await t.run(['umount', this.tmpfs], { check: false });
      if (u.exitCode !== 0) await t.run(['umount', '-l', this.tmpfs], { check: false });
      this.tmpfs = undefined;
    }
  }
}
