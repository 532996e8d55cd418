import { describe, it, expect } from 'vitest';
import { derivePhases } from '../../../lab/measure/phases.ts';
import { crossCheck, type Views } from '../../../lab/measure/crosscheck.ts';

describe('phase derivation', () => {
  it('block: mirror, then pre-copy without the downtime, then switchover and clean-up', () => {
    const p = derivePhases({ mirrorReady: 250, ramStart: 252, postcopyStart: null, completed: 760, destRunning: 765, cleanedUp: 790 }, { setupTimeMs: 1, downtimeMs: 15, iterations: 3 });
    expect(p).toEqual({ setupMs: 1, mirrorMs: 250, precopyMs: 760 - 252 - 15, ramIterations: 3, postcopyMs: null, switchoverMs: 15, resumeMs: 5, cleanupMs: 25 });
  });
  it('shared: no mirror', () => {
    const p = derivePhases({ mirrorReady: null, ramStart: 0, postcopyStart: null, completed: 500, destRunning: null, cleanedUp: 501 }, { setupTimeMs: 0, downtimeMs: 8, iterations: 2 });
    expect(p.mirrorMs).toBeNull();
    expect(p.precopyMs).toBe(492);
  });
  it('post-copy: pre-copy ends where post-copy starts', () => {
    const p = derivePhases({ mirrorReady: null, ramStart: 0, postcopyStart: 300, completed: 900, destRunning: 900, cleanedUp: 900 }, { downtimeMs: 20 });
    expect(p).toMatchObject({ precopyMs: 300, postcopyMs: 600, switchoverMs: 20 });
  });
  it('a migration that never completed has no phase durations it cannot know', () => {
    const p = derivePhases({ mirrorReady: 100, ramStart: null, postcopyStart: null, completed: null, destRunning: null, cleanedUp: null }, {});
    expect(p).toMatchObject({ mirrorMs: 100, precopyMs: null, cleanupMs: null, switchoverMs: null });
  });
});

describe('cross-checks between the three views', () => {
  const ok: Views = {
    networkGapMs: 60, pingIntervalMs: 10, qemuDowntimeMs: 20, guestPauseMs: 22, guestUncertaintyMs: 3,
    durationMs: 600, qemuTotalMs: 590, bytesMoved: 80e6, linkRateBitsPerSec: null,
  };
  it('agreeing views raise nothing', () => expect(crossCheck(ok)).toEqual([]));
  it('a network gap shorter than the downtime is a contradiction', () => {
    expect(crossCheck({ ...ok, networkGapMs: 12, qemuDowntimeMs: 40 })[0]).toMatch(/shorter than QEMU's downtime/);
    // QEMU's whole milliseconds are allowed for
    expect(crossCheck({ ...ok, networkGapMs: 19.5, qemuDowntimeMs: 20 })).toEqual([]);
  });
  it('the guest cannot lose more time than the network saw, nor much less than QEMU stopped it', () => {
    expect(crossCheck({ ...ok, guestPauseMs: 200 })[0]).toMatch(/network saw at most/);
    expect(crossCheck({ ...ok, guestPauseMs: 5, guestUncertaintyMs: 2 })[0]).toMatch(/QEMU says it was stopped 20 ms/);
  });
  it('the harness cannot be faster than QEMU, nor the bytes faster than the link', () => {
    expect(crossCheck({ ...ok, durationMs: 500 })[0]).toMatch(/less than QEMU's total time/);
    // 80 MB over 100 Mbit/s takes 6.4 s at least
    expect(crossCheck({ ...ok, linkRateBitsPerSec: 100e6, durationMs: 5000 })[0]).toMatch(/faster than the 100 Mbit\/s link allows \(6400 ms\)/);
    expect(crossCheck({ ...ok, linkRateBitsPerSec: 100e6, durationMs: 6500 })).toEqual([]);
  });
});
