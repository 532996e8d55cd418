/**
 * One iteration's record from what was observed (pure: unit-tested without a lab): the
 * driver's figures, the observers' data (ping, the guest's clock, probe and workload) and
 * the checks. Every figure here was measured in that iteration; one that was not is null,
 * and `notes` says why.
 */
import type { Strategy, DriverName } from '../config/scenario.ts';
import type { Settings } from '../config/settings.ts';
import type { RamCheck, WorkloadReport } from '../guest/workload.ts';
import type { ClockOffset, PauseProbeReport } from '../guest/probe.ts';
import { pingIntervalNote, type PingResult } from '../measure/ping.ts';
import { topGaps } from '../measure/gaps.ts';
import { derivePhases } from '../measure/phases.ts';
import { crossCheck } from '../measure/crosscheck.ts';
import type { DiskLocation, FailureKind, MigrationFigures, NovaMigrationRecord } from '../migrate/types.ts';
import type { QemuBuild } from '../qemu/builds.ts';
import type { KnownIssue } from '../provision/environment.ts';
import type { IterationResult } from './schema.ts';

export interface IterationObservation {
  index: number;
  repetition: number;
  strategy: Strategy;
  driver: DriverName;
  cell: { label: string; group: string; params: Record<string, unknown> };
  drain?: { id: number; guest: string };
  source: string;
  destination: string;
  startedAt: string;
  settings: Pick<Settings, 'link' | 'mirror'>;
  build: Pick<QemuBuild, 'id' | 'binary' | 'version' | 'firmwareDirs'>;
  pingIntervalMs: number;
  /** Not run at all: why (a guest that stopped answering earlier). */
  skipped?: string;
  /** Not migrated: preparing the guest or the observers failed. */
  notMigrated?: string;
  figures?: MigrationFigures;
  failure?: { message: string; kind: FailureKind; detectedAfterMs: number | null };
  /** nova's account of a migration that failed (the nova driver); a completed one's is in figures.nova. */
  nova?: NovaMigrationRecord;
  /** Where the guest ran afterwards, as the hypervisor said. */
  guestOn?: { node: string; status: string };
  /** The migration completed, but the checks after it did not finish: why. */
  checksFailed?: string;
  ping?: PingResult;
  /** ms the ping observer ran, and its CPU time. */
  windowMs?: number | null;
  pingCpuMs?: number | null;
  harnessCpuMs?: number | null;
  /** Bytes the source node sent on its uplink during the migration. */
  wireBytes?: number | null;
  disk?: { source?: DiskLocation; destination?: DiskLocation };
  checks: {
    destinationStatus?: string;
    sourceGone?: boolean;
    answersPing?: boolean;
    probe?: { offsetMiB: number; before: string; after?: string };
    /** The memory writer's own check of its working set (null: it was on, but no check came back). */
    ram?: RamCheck | null;
  };
  guestView: { before?: ClockOffset; after?: ClockOffset; pause?: PauseProbeReport; workload?: WorkloadReport };
  /** The cell's own memory workload (false: the check ran a small writer of its own). */
  scenarioMemoryWorkload: boolean;
  notes: string[];
  /** The fault injected into this iteration, and what it should end as. */
  fault?: { kind: string; during: string; injectedAtMs: number | null; detail?: string };
  expectedOutcome?: 'completes' | 'stays-on-source';
  /** A known defect of this hypervisor, run on purpose (hypervisor.allowKnownIssues): the iteration may end as it. */
  knownIssue?: KnownIssue;
  /** The guest stopped answering its control shell during or after this iteration: why. */
  stoppedAnswering?: string;
}

/** Microsecond resolution is what ping -D gives; more digits would be noise in the file. */
function round3(v: number): number {
  return Math.round(v * 1000) / 1000;
}

export function toIteration(o: IterationObservation): IterationResult {
  const r = record(o);
  if (o.fault) r.fault = { ...o.fault };
  if (o.expectedOutcome) {
    const injected = o.fault?.injectedAtMs !== null && o.fault?.injectedAtMs !== undefined;
    const v = r.verified;
    const stayed = !!r.failure && o.guestOn?.node === o.source && o.guestOn.status === 'running' && v.answersPing && v.diskIntact && v.ramIntact !== false;
    const met = injected && (o.expectedOutcome === 'completes' ? r.ok : stayed);
    if (!injected) r.notes.push(`the fault was not injected: ${o.fault?.detail ?? 'its moment never came'}`);
    else if (!met)
      r.notes.push(
        o.expectedOutcome === 'completes' ? 'expected the migration to complete despite the fault' : 'expected the migration to fail with the guest running on the source, its disk and RAM intact',
      );
    r.expected = { outcome: o.expectedOutcome, met };
  } else if (o.knownIssue) {
    const evidence = knownIssueEvidence(o, r);
    r.knownIssue = { id: o.knownIssue.id, reference: o.knownIssue.reference, reproduced: evidence !== null, evidence };
    r.expected = { outcome: 'known-issue', met: r.ok || evidence !== null };
    if (evidence) r.notes.push(`known issue ${o.knownIssue.id} reproduced (${o.knownIssue.reference}): ${evidence}`);
  }
  return r;
}

/** A line of a guest console that says the guest kernel crashed, from its first such words on. */
const GUEST_CRASH = /(Kernel panic|Fatal exception|BUG:|Oops|list_(add|del) corruption)[^\n|]*/i;

/**
 * What, in a failed iteration, is the known lost-writes defect at work: the migration completed
 * and then the guest's memory was found wrong, or the guest stopped answering or panicked on
 * the destination. A migration that failed, or a guest broken before it, is not that defect.
 */
export function knownIssueEvidence(o: IterationObservation, r: IterationResult): string | null {
  if (r.ok || o.failure || !o.figures || o.skipped || o.notMigrated) return null;
  const found: string[] = [];
  if (r.ram && r.ram.pagesBad > 0) found.push(`${r.ram.pagesBad} of ${r.ram.pagesChecked} guest pages wrong after the migration`);
  if (o.checks.destinationStatus && /panic|internal-error/.test(o.checks.destinationStatus)) found.push(`the destination reports ${o.checks.destinationStatus}`);
  const panic = o.notes.map((n) => (n.startsWith('guest console') ? GUEST_CRASH.exec(n)?.[0] : undefined)).find((line) => line !== undefined);
  if (panic) found.push(`the guest's console shows ${panic.slice(0, 120).trim()}`);
  if (o.stoppedAnswering) found.push(`the guest stopped answering on ${o.destination}`);
  else if (o.checks.answersPing === false) found.push(`the guest stopped answering ping on ${o.destination}`);
  return found.length ? found.join('; ') : null;
}

function record(o: IterationObservation): IterationResult {
  const f = o.figures;
  const notes = [...o.notes];
  const link = o.settings.link;
  const r: IterationResult = {
    index: o.index,
    strategy: o.strategy,
    driver: o.driver,
    cell: o.cell,
    ...(o.drain ? { drain: o.drain } : {}),
    repetition: o.repetition,
    source: o.source,
    destination: o.destination,
    ok: false,
    startedAt: o.startedAt,
    hypervisor: { build: o.build.id, binary: o.build.binary, version: o.build.version, firmwareDirs: [...o.build.firmwareDirs] },
    durationMs: f?.durationMs ?? null,
    prepareMs: f?.prepareMs ?? null,
    mirrorMs: f?.mirrorMs ?? null,
    qemu: {
      totalTimeMs: f?.qemu.totalTimeMs ?? null,
      downtimeMs: f?.qemu.downtimeMs ?? null,
      setupTimeMs: f?.qemu.setupTimeMs ?? null,
      ramBytes: f?.qemu.ramBytes ?? null,
      diskBytes: f?.qemu.diskBytes ?? null,
      dirtyBytesPerSecMax: f?.qemu.dirtyBytesPerSecMax ?? null,
      eventDowntimeMs: f?.qemu.eventDowntimeMs ?? null,
    },
    ping: { intervalMs: o.pingIntervalMs, sent: null, received: null, lost: null, maxGapMs: null, maxGapStart: null, maxGapEnd: null, maxRttMs: null, medianGapMs: null },
    link: { rateBitsPerSec: link.rate, lossPct: link.lossPct, delayMs: link.delayMs, wireBytes: o.wireBytes ?? null, efficiency: null },
    guest: { clockLossMs: null, clockUncertaintyMs: null, probeMaxGapMs: null, probePeriodMs: null },
    harness: { cpuMs: o.harnessCpuMs ?? null, pingCpuMs: o.pingCpuMs ?? null, windowMs: o.windowMs ?? null },
    verified: { onDestination: false, sourceGone: false, diskIntact: false, ramIntact: false, answersPing: false },
    ram: null,
    notes,
  };
  if (o.guestOn) r.guestOn = o.guestOn;
  if (f?.libvirt) r.libvirt = f.libvirt;
  const nova = f?.nova ?? o.nova;
  if (nova) r.nova = nova;
  if (f?.ramDump) r.ramDump = f.ramDump;
  if (f) {
    notes.push(...f.notes);
    r.phases = derivePhases(f.marks, { setupTimeMs: f.qemu.setupTimeMs, downtimeMs: f.qemu.downtimeMs, iterations: f.qemu.iterations });
    r.tunables = { ...f.tunables, mirrorCopyMode: o.settings.mirror.copyMode };
    if (r.link!.wireBytes !== null && link.rate !== null && f.durationMs > 0) r.link!.efficiency = (r.link!.wireBytes * 8) / ((f.durationMs / 1000) * link.rate);
  }
  if (o.disk?.destination) r.disk = { ...(o.disk.source ? { source: o.disk.source } : {}), destination: o.disk.destination };

  // The network's view.
  const requestAt = f?.startedAt;
  if (o.ping) {
    const s = o.ping.summary;
    const t0 = requestAt ?? o.ping.replies[0]?.epochMs ?? 0;
    const replies = o.ping.replies.filter((x) => !x.dup);
    r.timeline = {
      t0,
      ping: replies.map((x) => [round3(x.epochMs - t0), x.rttMs ?? null, x.seq]),
      marks: f ? f.marks : { mirrorReady: null, completed: null },
      samples: f ? f.samples : [],
    };
    if (o.ping.sentFrom !== 'ping') notes.push('ping printed no summary: ping.sent is the highest sequence number seen (a lower bound)');
    r.ping = {
      intervalMs: o.pingIntervalMs,
      sent: s.sent,
      received: s.received,
      lost: s.lost,
      maxGapMs: s.maxGapMs ?? null,
      maxGapStart: s.maxGapStartMs !== undefined ? new Date(s.maxGapStartMs).toISOString() : null,
      maxGapEnd: s.maxGapEndMs !== undefined ? new Date(s.maxGapEndMs).toISOString() : null,
      maxRttMs: s.maxRttMs ?? null,
      medianGapMs: s.medianGapMs ?? null,
      gaps: topGaps(r.timeline.ping.map((p) => p[0]), 3),
    };
    const note = pingIntervalNote(s.medianGapMs, o.pingIntervalMs);
    if (note) notes.push(note);
  }

  // The guest's view.
  const g = o.guestView;
  if (g.before && g.after) {
    r.guest!.clockLossMs = g.after.offsetMs - g.before.offsetMs;
    r.guest!.clockUncertaintyMs = g.before.uncertaintyMs + g.after.uncertaintyMs;
  }
  if (g.pause) {
    r.guest!.probeMaxGapMs = g.pause.maxGapMs;
    r.guest!.probePeriodMs = g.pause.periodUs / 1000;
  }
  if (g.workload && o.scenarioMemoryWorkload) r.guest!.workload = g.workload;
  else if (g.workload?.disk) r.guest!.workload = { disk: g.workload.disk };

  if (o.skipped) {
    r.error = `skipped: ${o.skipped}`;
    notes.push('not run: the guest stopped answering its control shell in an earlier iteration');
    return r;
  }
  if (o.notMigrated) {
    r.error = `not migrated: ${o.notMigrated}`;
    return r;
  }

  // Checks: on the destination after a migration, on the source after a failure.
  const c = o.checks;
  r.verified.onDestination = !o.failure && c.destinationStatus === 'running';
  if (!o.failure && c.destinationStatus !== undefined && c.destinationStatus !== 'running') notes.push(`destination status is ${c.destinationStatus}, expected running`);
  r.verified.sourceGone = !o.failure && c.sourceGone === true;
  r.verified.answersPing = c.answersPing === true;
  if (c.answersPing === false) notes.push(`no ping reply within 10 s after the migration ${o.failure ? 'failed' : 'completed'}`);
  if (c.probe) {
    r.verified.diskIntact = c.probe.after !== undefined && c.probe.after === c.probe.before;
    if (c.probe.after !== undefined && !r.verified.diskIntact) notes.push(`probe MiB ${c.probe.offsetMiB}: md5 ${c.probe.after} after, ${c.probe.before} before`);
  }
  if (c.ram) {
    r.ram = c.ram;
    r.verified.ramIntact = c.ram.pagesBad === 0 && c.ram.pagesChecked > 0;
    if (c.ram.firstBad)
      notes.push(
        `guest RAM: ${c.ram.pagesBad} of ${c.ram.pagesChecked} pages wrong; first: page ${c.ram.firstBad.index} holds generation ${c.ram.firstBad.found}, expected ${c.ram.firstBad.expected} (${c.ram.firstBad.kind === 'stale' ? 'a lost write' : 'corrupted'})`,
      );
  } else if (c.ram === null) notes.push('guest RAM was not checked: the memory writer gave no check');
  else r.verified.ramIntact = null; // verify.ram: false
  if (f?.ramDump && f.ramDump.pagesDiffering > 0) {
    r.verified.ramIntact = false;
    notes.push(`RAM dump: ${f.ramDump.pagesDiffering} pages differ between source and destination (first: ${f.ramDump.firstPages.join(', ')})`);
  }

  if (o.failure) {
    r.error = o.failure.message;
    r.failure = { kind: o.failure.kind, detectedAfterMs: o.failure.detectedAfterMs, message: o.failure.message };
    notes.push("QEMU's figures are missing because the migration did not complete");
    return r;
  }
  if (o.checksFailed) {
    r.error = `migrated, but the checks after it did not finish: ${o.checksFailed}`;
    return r;
  }
  const v = r.verified;
  r.ok = v.onDestination && v.sourceGone && v.answersPing && v.diskIntact && v.ramIntact !== false;
  if (!r.ok) r.error = `verification failed: ${notes.join('; ')}`;
  if (r.ok)
    r.crossCheck = crossCheck({
      networkGapMs: r.ping.maxGapMs,
      pingIntervalMs: r.ping.medianGapMs ?? r.ping.intervalMs,
      qemuDowntimeMs: r.qemu.downtimeMs,
      qemuEventDowntimeMs: r.qemu.eventDowntimeMs ?? null,
      guestPauseMs: r.guest!.clockLossMs,
      guestUncertaintyMs: r.guest!.clockUncertaintyMs,
      durationMs: r.durationMs,
      qemuTotalMs: r.qemu.totalTimeMs,
      completed: true,
      bytesMoved: r.link!.wireBytes,
      linkRateBitsPerSec: r.link!.rateBitsPerSec,
      libvirtDowntimeMs: r.libvirt?.downtimeMs ?? null,
      libvirtElapsedMs: r.libvirt?.timeElapsedMs ?? null,
    });
  return r;
}
