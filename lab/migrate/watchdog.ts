/**
 * The migration watchdog: notices a migration that stopped making progress and finds out
 * why, so a failure is given up on in seconds and named (a dead destination, a dead NFS
 * server) instead of waiting for the timeout. It costs nothing while the migration moves:
 * the health checks run only after STALL_PROBE_MS without progress.
 *
 * - a fatal finding (destination-died, storage-lost) seen twice in a row fails at once;
 * - a transient one (link-lost, destination-hung) fails only after stallMs without
 *   progress: a link that comes back in time lets the migration complete;
 * - stallMs without progress and no finding fails as a timeout.
 */
import type { FailureKind } from './types.ts';

/** Progress must stand still this long before the health checks run. */
export const STALL_PROBE_MS = 2000;
const TICK_MS = 500;

export interface Finding {
  kind: FailureKind;
  message: string;
  /** Fails the migration at once (confirmed by a second look); otherwise only after stallMs. */
  fatal: boolean;
}

export type HealthCheck = () => Promise<Finding | undefined>;

export class Watchdog {
  private lastValue: number | undefined;
  private lastAt = 0;
  private armed = false;
  private busy = false;
  private timer: NodeJS.Timeout | undefined;
  private seen: Finding | undefined;
  private repeats = 0;
  private reject!: (f: Finding & { stalledMs: number }) => void;
  /** Rejects with the finding when the watchdog gives up on the migration; never resolves. */
  readonly failed: Promise<never>;
  fired: (Finding & { stalledMs: number }) | undefined;

  constructor(
    private readonly health: HealthCheck | undefined,
    private readonly stallMs: number | undefined,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.failed = new Promise<never>((_, reject) => (this.reject = reject));
    this.failed.catch(() => {});
  }

  /** Starts watching (at the migration request); `ticking: false` leaves tick() to the caller (tests). */
  arm({ ticking = true } = {}): void {
    this.armed = true;
    this.lastAt = this.now();
    if (!ticking) return;
    this.timer = setInterval(() => void this.tick(), TICK_MS);
    this.timer.unref?.();
  }

  /** A progress figure (bytes copied so far): a change resets the stall clock. */
  progressed(value: number): void {
    if (value !== this.lastValue) {
      this.lastValue = value;
      this.lastAt = this.now();
      this.repeats = 0;
      this.seen = undefined;
    }
  }

  /** A watcher's confirmed finding (the NFS server's connection dropped and a new one is refused): fails at once. */
  trip(f: Finding): void {
    if (!this.armed || this.fired) return;
    this.fire(f, this.now() - this.lastAt);
  }

  stop(): void {
    this.armed = false;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One look (exported for tests: the interval calls it). */
  async tick(): Promise<void> {
    if (!this.armed || this.busy || this.fired) return;
    const stalledMs = this.now() - this.lastAt;
    if (stalledMs < STALL_PROBE_MS) return;
    this.busy = true;
    let finding: Finding | undefined;
    try {
      finding = await this.health?.().catch(() => undefined);
    } finally {
      this.busy = false;
    }
    if (!this.armed || this.now() - this.lastAt < STALL_PROBE_MS) return; // it moved meanwhile
    if (finding) {
      this.repeats = this.seen?.kind === finding.kind ? this.repeats + 1 : 1;
      this.seen = finding;
      if (finding.fatal && this.repeats >= 2) return this.fire(finding, stalledMs);
    } else {
      this.repeats = 0;
      this.seen = undefined;
    }
    if (this.stallMs !== undefined && stalledMs >= this.stallMs) {
      this.fire(
        this.seen
          ? { ...this.seen, message: `${this.seen.message}; no progress for ${Math.round(stalledMs)} ms` }
          : { kind: 'timeout', fatal: true, message: `no progress for ${Math.round(stalledMs)} ms (the limit is ${this.stallMs} ms)` },
        stalledMs,
      );
    }
  }

  private fire(f: Finding, stalledMs: number): void {
    this.fired = { ...f, stalledMs };
    this.stop();
    this.reject(this.fired);
  }
}
