/**
 * One iteration: one migration of one guest, watched by every observer and proven
 * afterwards. The guest's side first (a fresh probe MiB on its disk, its workload and
 * memory writer, its pause probe, its clock against ours), then ping from the observer,
 * then the driver's migration; right after it the memory writer is stopped (it checks its
 * working set), the destination, the source and the disk are checked. What was seen goes
 * to one pure function (lab/results/record.ts) that makes the record.
 */
import type { Settings } from '../config/settings.ts';
import { MigralabError } from '../errors.ts';
import { processCpuMs } from '../exec/proc.ts';
import { startWorkload, stopWorkload, type RunningWorkload, type WorkloadReport, type WorkloadSpec } from '../guest/workload.ts';
import { startPauseProbe, stopPauseProbe, clockOffset, type RunningPauseProbe } from '../guest/probe.ts';
import { PingProbe } from '../measure/ping.ts';
import { MigrationFailed, type Instance, type MigrationEvents, type MigrationOutcome } from '../migrate/types.ts';
import type { LabNode, StartedLab } from '../provision/provider.ts';
import { knownIssues } from '../provision/environment.ts';
import { GuestTimeout } from '../qemu/guest-shell.ts';
import { toIteration, type IterationObservation } from '../results/record.ts';
import type { IterationResult } from '../results/schema.ts';
import type { Cell } from './matrix.ts';
import { PROBE_AREA_MIB, type GuestSlot } from './guests.ts';
import { expectedOutcome, FaultInjection } from './faults.ts';

/** The in-guest pause probe's period. */
const GUEST_PROBE_PERIOD_US = 1000;

export interface IterationContext {
  lab: StartedLab;
  pingIntervalMs: number;
  timeoutMs: number;
  /** Give up on a migration that makes no progress for this long. */
  stallMs?: number;
  signal?: AbortSignal;
  events?: MigrationEvents;
  /** Awaited once the guest is prepared and pinged, right before the migration (a drain's N-at-a-time gate). */
  beforeMigrate?: () => Promise<void>;
  /** Called right before the driver's migrate and right after it returns or throws (a drain's timeline). */
  onMigrate?: (edge: 'start' | 'end') => void;
  /** Other migrations leave the same source node at the same time (a drain with concurrency > 1): its byte counters are theirs too. */
  concurrentFromSource?: string;
  /**
   * Awaited once this iteration's guest is prepared, right before its measurement window opens
   * (the ping starts): the previous iteration (another guest) runs its last checks meanwhile.
   */
  waitTurn?: () => Promise<void>;
  /**
   * Called once what this iteration measures in and around its guest is read (the ping gap
   * closed, the guest's clock and pause probe after the migration): from then on the next
   * iteration may prepare its guest. Called at the latest when the iteration returns.
   */
  measured?: () => void;
  /** Extra observers of the migration's events (tests). */
  hooks?: { migrationEvents?: MigrationEvents; afterMigration?(at: { index: number; instance: Instance }): Promise<void> };
}

export interface IterationPlace {
  index: number;
  repetition: number;
  cell: Cell;
  source: LabNode;
  destination: LabNode;
  /** The guest was replaced by a fresh boot before this iteration: why. */
  replaced?: string;
  /** placement { drain: NODE }: which drain, which guest. */
  drain?: { id: number; guest: string };
}

const isInterrupt = (e: unknown) => e instanceof MigralabError && e.code === 'INTERRUPTED';

/** What the guest runs during the migration: the cell's workload, and a memory writer whose check proves RAM (verify.ram). */
export function workloadFor(s: Settings, diskBytes: number): { spec: WorkloadSpec | undefined; ownMemory: boolean } {
  const mem = s.workload.memory;
  const disk = s.workload.disk;
  const ownMemory = mem.rateMiBs > 0;
  const memory = ownMemory
    ? { rateMiBs: mem.rateMiBs, workingSetBytes: mem.workingSet }
    : s.verify.ram
      ? { rateMiBs: s.verify.ramRateMiBs, workingSetBytes: s.verify.ramWorkingSet }
      : undefined;
  const diskMiB = Math.floor(diskBytes / 2 ** 20);
  const spec: WorkloadSpec = {
    ...(memory ? { memory } : {}),
    // Anywhere but the probe area at the end of the disk.
    ...(disk.rateMiBs > 0 ? { disk: { rateMiBs: disk.rateMiBs, offsetMiB: 0, sizeMiB: diskMiB - PROBE_AREA_MIB } } : {}),
  };
  return { spec: spec.memory || spec.disk ? spec : undefined, ownMemory };
}

/** Runs one iteration; an interrupt (Ctrl-C) still returns the record, marked interrupted. */
export async function runIteration(ctx: IterationContext, slot: GuestSlot, place: IterationPlace): Promise<{ result: IterationResult; interrupted: boolean }> {
  const { cell, source, destination } = place;
  const settings = cell.settings;
  const obs: IterationObservation = {
    index: place.index,
    repetition: place.repetition,
    strategy: cell.strategy,
    driver: cell.driver,
    cell: { label: cell.label, group: cell.group, params: cell.params },
    ...(place.drain ? { drain: place.drain } : {}),
    source: source.name,
    destination: destination.name,
    startedAt: new Date().toISOString(),
    settings,
    build: slot.spec.build,
    pingIntervalMs: ctx.pingIntervalMs,
    checks: {},
    guestView: {},
    scenarioMemoryWorkload: settings.workload.memory.rateMiBs > 0,
    notes: [],
  };
  const fault = cell.fault ? new FaultInjection(cell.fault, ctx.lab, destination, slot.name) : undefined;
  if (fault) {
    obs.fault = fault.record;
    obs.expectedOutcome = expectedOutcome(cell.fault!, ctx.stallMs ?? Infinity);
  }
  if (place.replaced) obs.notes.push(place.replaced);
  // A hypervisor with a known defect, run on purpose: the iteration may end as that defect.
  if (settings.hypervisor.allowKnownIssues) {
    const issue = knownIssues({ qemuVersion: slot.spec.build.version, accelerator: ctx.lab.info.environment.accelerator })[0];
    if (issue) obs.knownIssue = issue;
  }
  if (slot.broken) return { result: toIteration({ ...obs, skipped: slot.unreplaceable ?? slot.broken }), interrupted: false };

  let interrupted = false;
  const { spec: workloadSpec } = workloadFor(settings, slot.spec.diskBytes);
  let workload: RunningWorkload | undefined;
  let workloadReport: WorkloadReport | undefined;
  let pause: RunningPauseProbe | undefined;
  let probe: { offsetMiB: number; md5: string };
  const leftBehind = await slot.released;
  slot.released = Promise.resolve(undefined);
  if (leftBehind) obs.notes.push(leftBehind);
  try {
    probe = await slot.writeProbe(place.index);
    obs.checks.probe = { offsetMiB: probe.offsetMiB, before: probe.md5 };
    await using sh = await slot.shell(ctx.signal);
    if (workloadSpec) workload = await startWorkload(sh, workloadSpec);
    pause = await startPauseProbe(sh, { periodUs: GUEST_PROBE_PERIOD_US });
    obs.guestView.before = await clockOffset(sh);
  } catch (e) {
    const msg = (e as Error).message;
    // A shell that no longer answers means a hung guest: skip its later iterations. Anything
    // else (a workload that would not start, say) fails this iteration only.
    if (e instanceof GuestTimeout) {
      slot.broken = `guest ${slot.name} stopped answering on ${source.name} (iteration ${place.index + 1}): ${msg}`;
      obs.notes.push(`guest console (last lines): ${await slot.instance().consoleTail(15)}`);
    } else await stopGuestSide(slot, workload, pause);
    obs.guestOn = { node: source.name, status: await slot.instance().status().catch(() => 'unknown') };
    if (isInterrupt(e)) return { result: toIteration({ ...obs, failure: { message: 'interrupted before the migration', kind: 'interrupted', detectedAfterMs: null } }), interrupted: true };
    return { result: toIteration({ ...obs, notMigrated: slot.broken ?? `preparing the guest failed: ${msg}` }), interrupted: false };
  }

  // The guest's view, read wherever it runs now (destination, or source after a failure); this
  // also stops its pause probe (and a workload still running), so nothing runs on into the next
  // iteration. Once: after the ping gap closed, or at the end when the iteration failed.
  let viewed = false;
  const readGuestView = async (): Promise<void> => {
    if (viewed || slot.broken) return;
    viewed = true;
    try {
      await using sh = await slot.shell(ctx.signal);
      obs.guestView.after = await clockOffset(sh);
      if (pause) obs.guestView.pause = await stopPauseProbe(sh, pause);
      pause = undefined;
      if (workload) workloadReport = await stopWorkload(sh, workload);
      workload = undefined;
    } catch (e) {
      if (isInterrupt(e)) throw e;
      obs.notes.push(`guest view not measured: ${(e as Error).message}`);
      // a shell that no longer answers: no later check waits out another timeout on it
      if (e instanceof GuestTimeout) slot.broken ??= `guest ${slot.name} stopped answering after iteration ${place.index + 1}: ${(e as Error).message}`;
    }
  };
  try {
    await ctx.waitTurn?.();
  } catch (e) {
    await stopGuestSide(slot, workload, pause);
    if (isInterrupt(e)) return { result: toIteration({ ...obs, failure: { message: 'interrupted before the migration', kind: 'interrupted', detectedAfterMs: null } }), interrupted: true };
    throw e;
  }
  const windowStart = performance.now();
  const ping = PingProbe.start({ transport: ctx.lab.observer(), target: slot.spec.ip, intervalMs: ctx.pingIntervalMs });
  let outcome: MigrationOutcome | undefined;
  let before: Instance | undefined;
  let answeredBefore = false;
  try {
    await ping.waitForReply(10_000);
    answeredBefore = true;
    before = slot.instance();
    await fault?.prepare(slot.spec.diskBytes);
    const sourceDisk = await before.disk();
    await ctx.beforeMigrate?.();
    const tx0 = await source.txBytes();
    const cpu0 = process.cpuUsage();
    let tx1: number | null = null;
    let cpu: NodeJS.CpuUsage | undefined;
    ctx.onMigrate?.('start');
    try {
      outcome = await slot.driver.migrate(
        before,
        destination,
        { timeoutMs: ctx.timeoutMs, stallMs: ctx.stallMs, tunables: settings.tunables, copyMode: settings.mirror.copyMode, ramDump: settings.verify.ramDump, tls: settings.security.tls, signal: ctx.signal },
        mergeEvents(ctx.events, ctx.hooks?.migrationEvents, fault?.events()),
      );
    } catch (e) {
      if (!(e instanceof MigrationFailed)) throw e;
      obs.failure = { message: e.message, kind: e.kind, detectedAfterMs: e.detectedAfterMs };
      if (e.nova) obs.nova = e.nova;
      obs.guestOn = e.guestState;
      if (e.landed) {
        await before.stop().catch(() => {});
        slot.current = e.landed;
      }
    } finally {
      // the migration's own cost, read before a drain hands its turn to the next migration
      cpu = process.cpuUsage(cpu0);
      if (outcome) tx1 = await source.txBytes().catch(() => null);
      ctx.onMigrate?.('end');
    }
    // The link back up, the NFS server serving again: then the guest is checked wherever it is.
    await fault?.restore();
    // the harness's CPU is the process's: with other migrations at once it is theirs too
    if (ctx.concurrentFromSource) obs.harnessCpuMs = null;
    else obs.harnessCpuMs = (cpu.user + cpu.system) / 1000;
    if (outcome) {
      obs.figures = outcome.figures;
      if (ctx.concurrentFromSource) obs.notes.push(`link.wireBytes and harness.cpuMs not measured for this migration alone: ${ctx.concurrentFromSource}; the drain's wireBytes counts them together`);
      else if (tx0 !== null && tx1 !== null) obs.wireBytes = tx1 - tx0;
      const after = outcome.instance;
      slot.current = after;
      // Stop the memory writer first: the fewer pages it rewrites on the destination, the fewer lost writes it could hide.
      if (workload) {
        try {
          await using sh = await after.shell({ signal: ctx.signal });
          workloadReport = await stopWorkload(sh, workload);
          workload = undefined;
        } catch (e) {
          if (isInterrupt(e)) throw e;
          obs.notes.push(`guest workload not read: ${(e as Error).message}`);
          if (e instanceof GuestTimeout) slot.broken = `guest ${slot.name} stopped answering after iteration ${place.index + 1}: ${(e as Error).message}`;
        }
      }
      await ctx.hooks?.afterMigration?.({ index: place.index, instance: after });
      obs.disk = { source: sourceDisk, destination: await after.disk() };
      // Proof: the guest runs on the destination, the source is gone.
      obs.checks.destinationStatus = await after.status();
      await before.stop();
      obs.checks.sourceGone = await before.gone();
      obs.guestOn = { node: destination.name, status: obs.checks.destinationStatus };
      // in the background: awaited before this guest's next iteration (it may come back to this node)
      slot.released = slot.driver.releaseNode(slot.spec, source).then(
        () => undefined,
        (e: Error) => `the guest's disk copies left on ${source.name} by iteration ${place.index + 1} were not removed: ${e.message}`,
      );
    } else if (workload) {
      // Failed: the guest stayed on the source; its writer's check proves the source's RAM.
      try {
        await using sh = await slot.instance().shell({ signal: ctx.signal });
        workloadReport = await stopWorkload(sh, workload);
        workload = undefined;
      } catch (e) {
        if (isInterrupt(e)) throw e;
        obs.notes.push(`guest workload not read on the source: ${(e as Error).message}`);
      }
    }
    // The guest answers ping after the switchover (or after the failure, on the source).
    const since = outcome?.figures.completedAt ?? Date.now();
    obs.checks.answersPing = await ping.waitForReply(10_000, { sinceMs: since }).then(
      () => true,
      () => false,
    );
    // The guest's own view of the migration, read wherever it runs now, while the ping goes on.
    await readGuestView();
    ctx.measured?.();
    // Data written before the migration reads back identical (not asked of a guest that already stopped answering: that would only wait out another timeout).
    if (slot.broken) obs.notes.push(`disk probe not read back: ${slot.broken}`);
    else obs.checks.probe!.after = await slot.readProbe(probe.offsetMiB);
    // Let a few more replies arrive so the gap is closed on both sides.
    await new Promise((res) => setTimeout(res, Math.max(100, 5 * ctx.pingIntervalMs)));
  } catch (e) {
    if (isInterrupt(e)) {
      interrupted = true;
      obs.failure ??= { message: 'interrupted (Ctrl-C) during the iteration', kind: 'interrupted', detectedAfterMs: null };
    } else if (outcome) {
      obs.checksFailed = (e as Error).message;
      // The guest went over: its paused source must not outlive the iteration (it holds the guest's tap on the source node).
      await before?.stop().catch(() => {});
      if (e instanceof GuestTimeout) slot.broken = `guest ${slot.name} stopped answering after iteration ${place.index + 1}: ${(e as Error).message}`;
    } else if (!obs.failure) {
      // Before the migration started: the guest did not answer ping, or its hypervisor did not answer.
      obs.notMigrated = (e as Error).message;
      obs.guestOn = { node: source.name, status: await slot.instance().status().catch(() => 'unknown') };
      // Its shell answered but its network did not: measuring it again would only fail again.
      if (!answeredBefore && !isInterrupt(e)) slot.broken = `guest ${slot.name} did not answer ping on ${source.name} before iteration ${place.index + 1}`;
    }
  } finally {
    await fault?.restore().catch((e) => obs.notes.push(`undoing the fault failed: ${(e as Error).message}`));
    const pingCpu = ping.pid !== undefined ? processCpuMs(ping.pid) : undefined;
    obs.ping = await ping.stop();
    obs.windowMs = performance.now() - windowStart;
    obs.pingCpuMs = pingCpu ?? null;
  }

  // Not read yet when the migration failed or the checks threw: read now (on the source after a failure).
  if (!interrupted)
    await readGuestView().catch((e) => {
      if (!isInterrupt(e)) throw e;
      interrupted = true;
      obs.failure ??= { message: 'interrupted (Ctrl-C) during the iteration', kind: 'interrupted', detectedAfterMs: null };
    });
  ctx.measured?.();
  await stopGuestSide(slot, workload, pause);
  obs.guestView.workload = workloadReport;
  if (settings.verify.ram) obs.checks.ram = workloadReport?.memory?.ram ?? null;
  // A guest whose hypervisor exited or reports a crash is as broken as one that stopped answering: it is replaced before its next iteration.
  if (!slot.broken && !interrupted && slot.current) {
    const inst = slot.current;
    const gone = await inst.gone().catch(() => true);
    const status = gone ? 'gone' : await inst.status().catch((e: Error) => `unknown (${e.message})`);
    if (gone || /panicked|internal-error|shutdown/.test(status))
    {
      slot.broken = `guest ${slot.name} ${gone ? `is gone from ${inst.node.name} (its hypervisor exited)` : `is ${status} on ${inst.node.name}`} after iteration ${place.index + 1}`;
      obs.notes.push(slot.broken);
    }
  }
  if (slot.broken && !obs.notes.some((n) => n.startsWith('guest console'))) obs.notes.push(`guest console (last lines): ${await slot.instance().consoleTail(15)}`);
  if (slot.broken) obs.stoppedAnswering = slot.broken;
  const result = toIteration(obs);
  // A guest that came out of a migration without its network or with wrong RAM (QEMU 7.2's lost
  // writes, say) still answers its shell but cannot be measured again: it is replaced too.
  const damage = outcome ? damageOf(result.verified) : undefined;
  if (!slot.broken && !interrupted && damage) slot.broken = `guest ${slot.name} came out of iteration ${place.index + 1} damaged (${damage})`;
  return { result, interrupted };
}

/** What makes a guest that came out of a migration unfit to be measured again, if anything. */
export function damageOf(verified: Pick<IterationResult['verified'], 'answersPing' | 'ramIntact'>): string | undefined {
  if (verified.ramIntact === false) return 'guest RAM wrong';
  if (verified.answersPing === false) return 'no ping reply';
  return undefined;
}

function mergeEvents(...all: (MigrationEvents | undefined)[]): MigrationEvents {
  return {
    progress: (p) => all.forEach((x) => x?.progress?.(p)),
    phase: (ph, t) => all.forEach((x) => x?.phase?.(ph, t)),
    destination: (d) => all.forEach((x) => x?.destination?.(d)),
    request: (text) => all.forEach((x) => x?.request?.(text)),
  };
}

/** Best effort: stop a workload and a pause probe in the guest after something went wrong. */
async function stopGuestSide(slot: GuestSlot, workload: RunningWorkload | undefined, pause: RunningPauseProbe | undefined): Promise<void> {
  if (!workload && !pause) return;
  try {
    await using sh = await slot.shell();
    if (workload) await stopWorkload(sh, workload).catch(() => {});
    if (pause) await stopPauseProbe(sh, pause).catch(() => {});
  } catch {
    /* the guest is gone or hung: nothing left to stop */
  }
}
