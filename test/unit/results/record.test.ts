import { describe, it, expect } from 'vitest';
import { toIteration, type IterationObservation } from '../../../lab/results/record.ts';
import type { MigrationFigures } from '../../../lab/migrate/types.ts';
import type { PingResult } from '../../../lab/measure/ping.ts';

const figures = (over: Partial<MigrationFigures['qemu']> = {}): MigrationFigures => ({
  durationMs: 620,
  prepareMs: 80,
  mirrorMs: null,
  startedAt: 1_700_000_000_000,
  completedAt: 1_700_000_000_620,
  samples: [],
  marks: { mirrorReady: null, ramStart: 0, postcopyStart: null, completed: 620, destRunning: 628, cleanedUp: 630 },
  tunables: { maxBandwidthBytesPerSec: 134217728, downtimeLimitMs: 300, multifdChannels: 0, autoConverge: false, postcopy: false, tls: false },
  qemu: { totalTimeMs: 612, downtimeMs: 9, setupTimeMs: 3, ramBytes: 88e6, diskBytes: 0, iterations: 3, dirtyBytesPerSecMax: null, eventDowntimeMs: 14.2, ...over },
  notes: [],
});

const ping = (times: number[]): PingResult => ({
  target: '10.77.0.100', intervalMs: 10, argv: [], noAnswer: [], errors: [], transmitted: undefined, rtt: undefined, sentFrom: 'ping', exitCode: 0, signal: undefined, stderr: '',
  replies: times.map((t, i) => ({ kind: 'reply', epochMs: 1_700_000_000_000 + t, epochUs: (1_700_000_000_000 + t) * 1000, from: 'x', bytes: 64, seq: i + 1, ttl: 64, rttMs: 0.3, dup: false })),
  summary: { sent: times.length + 2, received: times.length, lost: 2, maxGapMs: 60, maxGapStartMs: 1_700_000_000_600, maxGapEndMs: 1_700_000_000_660, maxRttMs: 0.3, medianGapMs: 10, gapCount: 1 } as unknown as PingResult['summary'],
});

const base = (o: Partial<IterationObservation> = {}): IterationObservation => ({
  index: 0, repetition: 1, strategy: 'shared', driver: 'qemu', cell: { label: 'shared', group: '', params: {} }, source: 'controller', destination: 'compute1', startedAt: '2026-12-01T00:00:00Z',
  settings: { link: { rate: null, lossPct: 0, delayMs: 0 }, mirror: { copyMode: 'background' } },
  build: { id: 'system', binary: 'qemu-system-x86_64', version: '10.0.2', firmwareDirs: [] },
  pingIntervalMs: 10, figures: figures(), ping: ping([0, 10, 20, 600, 660, 670]), wireBytes: 90e6,
  checks: { destinationStatus: 'running', sourceGone: true, answersPing: true, probe: { offsetMiB: 500, before: 'a'.repeat(32), after: 'a'.repeat(32) }, ram: { pagesChecked: 4096, pagesBad: 0, firstBad: null } },
  guestView: { before: { offsetMs: 100, uncertaintyMs: 1 }, after: { offsetMs: 125, uncertaintyMs: 1 } },
  scenarioMemoryWorkload: false, notes: [], ...o,
});

describe('an iteration record from what was observed', () => {
  it('is ok only when every check holds, RAM included, and carries every view', () => {
    const r = toIteration(base());
    expect(r.ok).toBe(true);
    expect(r.verified).toEqual({ onDestination: true, sourceGone: true, diskIntact: true, ramIntact: true, answersPing: true });
    expect(r.ram).toEqual({ pagesChecked: 4096, pagesBad: 0, firstBad: null });
    expect(r.qemu).toMatchObject({ totalTimeMs: 612, downtimeMs: 9, eventDowntimeMs: 14.2 });
    expect(r.guest!.clockLossMs).toBe(25);
    expect(r.hypervisor).toEqual({ build: 'system', binary: 'qemu-system-x86_64', version: '10.0.2', firmwareDirs: [] });
    expect(r.timeline!.ping.map((p) => p[0])).toEqual([0, 10, 20, 600, 660, 670]);
    expect(r.crossCheck).toEqual([]);
  });

  it('a lost guest write fails the iteration and names the page', () => {
    const r = toIteration(base({ checks: { ...base().checks, ram: { pagesChecked: 4096, pagesBad: 3, firstBad: { index: 17, expected: 9, found: 8, kind: 'stale' } } } }));
    expect(r.ok).toBe(false);
    expect(r.verified.ramIntact).toBe(false);
    expect(r.error).toMatch(/page 17 holds generation 8, expected 9 \(a lost write\)/);
  });

  it('a RAM check that did not come back is not a pass; verify.ram off is neither pass nor fail', () => {
    expect(toIteration(base({ checks: { ...base().checks, ram: null } })).ok).toBe(false);
    const off = toIteration(base({ checks: { ...base().checks, ram: undefined } }));
    expect(off.verified.ramIntact).toBeNull();
    expect(off.ok).toBe(true);
  });

  it('never turns a figure QEMU did not give into 0, and flags a 0 that cannot be', () => {
    const r = toIteration(base({ figures: figures({ totalTimeMs: 0, downtimeMs: 0 }) }));
    expect(r.crossCheck!.join(' ')).toMatch(/total time is 0 ms/);
    expect(r.crossCheck!.join(' ')).toMatch(/downtime is 0 ms but its own STOP and RESUME events are 14\.200 ms apart/);
    const missing = toIteration(base({ figures: figures({ totalTimeMs: null, downtimeMs: null }) }));
    expect(missing.qemu.totalTimeMs).toBeNull();
    expect(missing.qemu.downtimeMs).toBeNull();
  });

  it('flags event downtime shorter than QEMU\'s downtime', () => {
    expect(toIteration(base({ figures: figures({ downtimeMs: 30, eventDowntimeMs: 12 }) })).crossCheck!.join(' ')).toMatch(/STOP and RESUME events are 12\.000 ms apart, less than the 30 ms/);
  });

  it('a failed migration: not ok, the failure classified, the guest where the hypervisor says, no QEMU figures', () => {
    const r = toIteration(base({ figures: undefined, failure: { message: 'migration failed: boom; the guest is still running on controller (status running)', kind: 'destination-died', detectedAfterMs: 310 }, guestOn: { node: 'controller', status: 'running' }, checks: { answersPing: true, probe: { offsetMiB: 1, before: 'b'.repeat(32), after: 'b'.repeat(32) }, ram: { pagesChecked: 4096, pagesBad: 0, firstBad: null } } }));
    expect(r.ok).toBe(false);
    expect(r.failure).toEqual({ kind: 'destination-died', detectedAfterMs: 310, message: expect.stringMatching(/still running on controller/) });
    expect(r.guestOn).toEqual({ node: 'controller', status: 'running' });
    expect(r.durationMs).toBeNull();
    expect(r.qemu.downtimeMs).toBeNull();
    expect(r.verified).toMatchObject({ onDestination: false, sourceGone: false, diskIntact: true, ramIntact: true });
  });

  it('a skipped iteration says why and claims nothing', () => {
    const r = toIteration(base({ skipped: 'guest block-vm stopped answering', figures: undefined, ping: undefined }));
    expect(r.ok).toBe(false);
    expect(r.error).toBe('skipped: guest block-vm stopped answering');
    expect(r.ping.maxGapMs).toBeNull();
  });
});

describe('a hypervisor with a known defect, run on purpose', () => {
  const issue = { id: 'qemu-tcg-lost-writes', text: 'loses writes', reference: 'QEMU commit 03bfc2188f06' };
  const stale = { pagesChecked: 4096, pagesBad: 3, firstBad: { index: 17, expected: 9, found: 8, kind: 'stale' as const } };

  it('a completed migration with lost guest writes is the defect reproduced: expected, met, with the evidence', () => {
    const r = toIteration(base({ knownIssue: issue, checks: { ...base().checks, ram: stale } }));
    expect(r.ok).toBe(false);
    expect(r.knownIssue).toEqual({ id: 'qemu-tcg-lost-writes', reference: 'QEMU commit 03bfc2188f06', reproduced: true, evidence: '3 of 4096 guest pages wrong after the migration' });
    expect(r.expected).toEqual({ outcome: 'known-issue', met: true });
    expect(r.notes.at(-1)).toMatch(/^known issue qemu-tcg-lost-writes reproduced \(QEMU commit 03bfc2188f06\)/);
  });

  it('a guest that panicked on the destination after the migration is the defect too, and the console line is quoted', () => {
    const r = toIteration(
      base({
        knownIssue: issue,
        checksFailed: 'guest shared-q72-vm: dd timed out after 30000 ms',
        stoppedAnswering: 'guest shared-q72-vm stopped answering after iteration 1',
        notes: ['guest console (last lines): [ 12.3] list_del corruption. prev->next should be ffff\n[ 12.4] Kernel panic - not syncing: Fatal exception in interrupt'],
        checks: { ...base().checks, answersPing: false, ram: undefined },
      }),
    );
    expect(r.expected).toEqual({ outcome: 'known-issue', met: true });
    expect(r.knownIssue!.evidence).toMatch(/console shows (list_del corruption|Kernel panic)/);
    expect(r.knownIssue!.evidence).toMatch(/stopped answering on compute1/);
  });

  it('a clean iteration meets the expectation without reproducing; a failed migration or a failure before it is not the defect', () => {
    const clean = toIteration(base({ knownIssue: issue }));
    expect(clean.ok).toBe(true);
    expect(clean.knownIssue).toMatchObject({ reproduced: false, evidence: null });
    expect(clean.expected).toEqual({ outcome: 'known-issue', met: true });

    const failed = toIteration(base({ knownIssue: issue, figures: undefined, failure: { message: 'boom', kind: 'timeout', detectedAfterMs: 90_000 }, guestOn: { node: 'controller', status: 'running' } }));
    expect(failed.expected).toEqual({ outcome: 'known-issue', met: false });
    const before = toIteration(base({ knownIssue: issue, figures: undefined, notMigrated: 'the guest did not answer ping' }));
    expect(before.expected).toEqual({ outcome: 'known-issue', met: false });
    const sourceLeft = toIteration(base({ knownIssue: issue, checks: { ...base().checks, sourceGone: false } }));
    expect(sourceLeft.expected!.met).toBe(false);
  });

  it('without the defect nothing is expected of the iteration beyond success', () => {
    const r = toIteration(base({ checks: { ...base().checks, ram: stale } }));
    expect(r.expected).toBeUndefined();
    expect(r.knownIssue).toBeUndefined();
  });
});
