/** Following a libvirt migration job from its statistics: the timeline, the phases, the progress (libvirt and nova drivers). */
import { SWITCHOVER_NEAR_BYTES } from '../qemu/driver.ts';
import type { MigrationEvents, MigrationSample } from '../types.ts';
import { jobSample } from './config.ts';

export class JobWatch {
  readonly samples: MigrationSample[] = [];
  /** Block: when libvirt first reported memory processed (the disk copy done), ms after the request. */
  mirrorReady: number | null = null;
  private phase: 'mirror' | 'ram' | undefined;
  private near = false;

  constructor(
    private readonly block: boolean,
    private readonly events: MigrationEvents,
    /** Progress bars from libvirt's counters (false: the driver has its own, nova's). */
    private readonly progress: boolean,
  ) {}

  /** One look at `virsh domjobinfo --rawstats` at t ms after the request; null when no job runs. */
  see(raw: Record<string, string>, t: number): ReturnType<typeof jobSample> {
    const js = jobSample(raw, t, this.block);
    if (!js) return null;
    const { sample, memProcessed } = js;
    const inMirror = sample.phase === 'mirror';
    if (inMirror && this.phase !== 'mirror') this.events.phase?.((this.phase = 'mirror'), t);
    if (!inMirror && this.phase !== 'ram') {
      if (this.block) this.mirrorReady = t;
      this.events.phase?.((this.phase = 'ram'), t);
    }
    this.samples.push(sample);
    if (this.progress) {
      if (inMirror && js.diskTotal !== null) this.events.progress?.({ phase: 'mirror', done: sample.diskDone ?? 0, total: js.diskTotal });
      else if (js.memTotal !== null) this.events.progress?.({ phase: 'ram', done: memProcessed, total: memProcessed + (sample.ramRemaining ?? 0) });
    }
    const rem = sample.ramRemaining;
    if (!this.near && !inMirror && memProcessed > 0 && rem !== null && rem < SWITCHOVER_NEAR_BYTES) {
      this.near = true;
      this.events.phase?.('switchover-near', t);
    }
    return js;
  }
}
