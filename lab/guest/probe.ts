/**
 * The guest's own view of a migration's blackout, from `/bin/mlprobe`
 * (lab/image/guest-programs/mlprobe.c). Two methods, because which one sees the pause
 * depends on the accelerator:
 *
 * - the pause probe: a loop in the guest sleeping `periodUs` and reporting the largest
 *   gap between two rounds on the guest's CLOCK_MONOTONIC: stalls the guest's own clocks
 *   saw (under KVM with a TSC clocksource, a paused VM's too: its TSC ran on).
 * - the clock offset: host wall clock minus guest CLOCK_REALTIME, sampled from the host
 *   before and after. Under TCG the guest's clocks are QEMU's virtual clock, which stops
 *   while the VM is stopped: the loop sees no gap, but the guest's clock falls behind the
 *   host's by the pause, so `after.offsetMs - before.offsetMs` is the time the guest did
 *   not see (± the two uncertainties).
 *
 * Like the workload (workload.ts), a running probe is found again from the value
 * startPauseProbe returned plus its status file in the guest's /run, on any connection.
 */
import { MigralabError } from '../errors.ts';
import type { GuestShell } from '../qemu/guest-shell.ts';
import {
  finalStatus,
  guestFiles,
  newGuestRunId,
  numberField,
  parseStatusFields,
  startGuestProgram,
  stopGuestPrograms,
  type GuestProcess,
} from './workload.ts';

export interface RunningPauseProbe extends GuestProcess {
  periodUs: number;
}

export interface PauseProbeReport {
  /** Largest time between two consecutive rounds on the guest's CLOCK_MONOTONIC (raw: includes the period). */
  maxGapMs: number;
  /** Guest CLOCK_REALTIME (epoch ms) of the round before the largest gap. */
  maxGapStart: number;
  /** Guest CLOCK_REALTIME (epoch ms) of the round after the largest gap. */
  maxGapEnd: number;
  /** Largest time between two consecutive rounds on the guest's CLOCK_REALTIME. */
  maxRealtimeGapMs: number;
  rounds: number;
  /** Rounds there would have been without any wake-up latency: elapsed / period. */
  expectedRounds: number;
  periodUs: number;
  /** Time the loop ran, on the guest's CLOCK_MONOTONIC. */
  elapsedMs: number;
  /** Guest CLOCK_REALTIME (epoch ms) of the loop's start and of its last round. */
  start: number;
  end: number;
}

/** A guest CLOCK_REALTIME in ns (decimal string, beyond 2^53) → epoch ms with µs precision. */
export function nsToEpochMs(ns: string): number {
  if (!/^-?\d+$/.test(ns)) throw new MigralabError('LAB', `guest clock: not an integer count of ns: ${JSON.stringify(ns)}`);
  return Number(BigInt(ns) / 1000n) / 1000;
}

/** Parses mlprobe's status line (pure). */
export function parsePauseProbeStatus(text: string): PauseProbeReport & { state: string; pid: number } {
  const f = parseStatusFields(text);
  const ns = (key: string) => {
    const v = f[key];
    if (v === undefined) throw new MigralabError('LAB', `mlprobe status: field ${key} missing`);
    return nsToEpochMs(v);
  };
  return {
    state: f.state ?? '',
    pid: numberField(f, 'pid'),
    maxGapMs: numberField(f, 'maxGapUs') / 1000,
    maxGapStart: ns('maxGapStartRealtimeNs'),
    maxGapEnd: ns('maxGapEndRealtimeNs'),
    maxRealtimeGapMs: numberField(f, 'maxRealtimeGapUs') / 1000,
    rounds: numberField(f, 'rounds'),
    expectedRounds: numberField(f, 'expectedRounds'),
    periodUs: numberField(f, 'periodUs'),
    elapsedMs: numberField(f, 'elapsedUs') / 1000,
    start: ns('startRealtimeNs'),
    end: ns('lastRealtimeNs'),
  };
}

/** Starts the pause probe loop in the guest's background; resolves once its first round ran. */
export async function startPauseProbe(shell: GuestShell, opts: { periodUs?: number } = {}): Promise<RunningPauseProbe> {
  const periodUs = opts.periodUs ?? 1000;
  if (!Number.isInteger(periodUs) || periodUs < 1 || periodUs > 10_000_000) {
    throw new MigralabError('USAGE', `pause probe: periodUs must be an integer from 1 to 10000000, got ${periodUs}`);
  }
  const files = guestFiles('mlprobe', newGuestRunId(), 'pause');
  const proc = await startGuestProgram(shell, ['mlprobe', '-o', files.statusFile, '-p', String(periodUs)], files);
  return { ...proc, periodUs };
}

/** Stops the probe and returns what it saw (any connection to the same guest). */
export async function stopPauseProbe(shell: GuestShell, running: RunningPauseProbe): Promise<PauseProbeReport> {
  const [got] = await stopGuestPrograms(shell, [running], { remove: true });
  const { state: _state, pid: _pid, ...report } = parsePauseProbeStatus(finalStatus(running, got!));
  return report;
}

/** One clock read: host wall clock (epoch ms) just before and just after the guest read its CLOCK_REALTIME. */
export interface ClockSample {
  hostBeforeMs: number;
  guestMs: number;
  hostAfterMs: number;
}

export interface ClockOffset {
  /** Host wall clock minus guest CLOCK_REALTIME, ms. Grows by the time a paused guest did not see. */
  offsetMs: number;
  /** Half the round trip of the sample used: the guest read its clock somewhere inside it. */
  uncertaintyMs: number;
}

/**
 * The offset from the sample with the shortest round trip (pure):
 * offset = (hostBefore + hostAfter) / 2 - guest, uncertainty = (hostAfter - hostBefore) / 2.
 */
export function offsetFromSamples(samples: readonly ClockSample[]): ClockOffset {
  let best: ClockSample | undefined;
  for (const s of samples) {
    if (!(s.hostAfterMs >= s.hostBeforeMs)) throw new MigralabError('LAB', `clock sample: host clock went backwards (${s.hostBeforeMs} → ${s.hostAfterMs})`);
    if (!best || s.hostAfterMs - s.hostBeforeMs < best.hostAfterMs - best.hostBeforeMs) best = s;
  }
  if (!best) throw new MigralabError('LAB', 'clock offset: no samples');
  return {
    offsetMs: (best.hostBeforeMs + best.hostAfterMs) / 2 - best.guestMs,
    uncertaintyMs: (best.hostAfterMs - best.hostBeforeMs) / 2,
  };
}

/**
 * Host wall clock in epoch ms with sub-ms resolution (Date.now() is whole ms). It follows
 * CLOCK_MONOTONIC from the process start, so a step of the host clock does not show up as
 * a guest pause (NTP slewing affects both alike).
 */
export function hostNowMs(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * Host wall clock minus guest CLOCK_REALTIME, from `samples` round trips of
 * `mlprobe clock` through the control shell (the shortest round trip wins). Take one
 * before and one after a migration: after.offsetMs - before.offsetMs is how long the
 * guest's clock stood still.
 */
export async function clockOffset(shell: GuestShell, samples = 5, opts: { now?: () => number } = {}): Promise<ClockOffset> {
  const now = opts.now ?? hostNowMs;
  if (!Number.isInteger(samples) || samples < 1) throw new MigralabError('USAGE', `clockOffset: samples must be a positive integer, got ${samples}`);
  const taken: ClockSample[] = [];
  for (let i = 0; i < samples; i++) {
    const hostBeforeMs = now();
    const r = await shell.exec('mlprobe clock', { timeoutMs: 10_000 });
    const hostAfterMs = now();
    const out = r.output.trim();
    if (r.status !== 0 || !/^\d+$/.test(out)) throw new MigralabError('LAB', `mlprobe clock in the guest: exit ${r.status}: ${out}`);
    taken.push({ hostBeforeMs, guestMs: nsToEpochMs(out), hostAfterMs });
  }
  return offsetFromSamples(taken);
}
