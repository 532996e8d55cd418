import { describe, it, expect } from 'vitest';
import { oneAxisRatios } from '../../../../lab/results/reporters/console.ts';
import type { StrategySummary } from '../../../../lab/results/schema.ts';

const stats = (median: number) => ({ n: 3, median, min: median, max: median });
const cell = (strategy: 'block' | 'shared', group: string, duration: number, downtime: number, gap: number): StrategySummary => ({
  strategy,
  cell: `${strategy}, ${group}`,
  group,
  iterations: 3,
  failed: 0,
  durationMs: stats(duration),
  downtimeMs: stats(downtime),
  maxGapMs: stats(gap),
  lost: stats(2),
});

describe('console: what one axis costs', () => {
  it('each value against the first, per strategy, as ratios of the medians', () => {
    const lines = oneAxisRatios([
      cell('block', 'security.tls=none', 1000, 20, 100),
      cell('shared', 'security.tls=none', 500, 10, 100),
      cell('block', 'security.tls=psk', 1750, 120, 200),
      cell('shared', 'security.tls=psk', 1000, 80, 150),
    ]);
    expect(lines).toEqual([
      'security.tls psk/none (ratio of medians), block: duration 1.75x, qemu downtime 6.00x, ping interruption 2.00x',
      'security.tls psk/none (ratio of medians), shared: duration 2.00x, qemu downtime 8.00x, ping interruption 1.50x',
    ]);
  });
  it('nothing for two axes, for cells without an axis, or for one value', () => {
    expect(oneAxisRatios([cell('block', 'a=1, b=2', 1, 1, 1), cell('block', 'a=2, b=2', 1, 1, 1)])).toEqual([]);
    expect(oneAxisRatios([cell('block', '', 1, 1, 1), cell('shared', '', 1, 1, 1)])).toEqual([]);
    expect(oneAxisRatios([cell('block', 'security.tls=psk', 1, 1, 1)])).toEqual([]);
  });
});

describe('console: sizing', () => {
  it('the harness CPU, each guest\'s QEMU peak and how many such QEMUs fit in the memory available', async () => {
    const { sizingOf } = await import('../../../../lab/runner/run.ts');
    const { sizingLine } = await import('../../../../lab/results/reporters/console.ts');
    const s = sizingOf({ user: 1_500_000, system: 500_000 }, 20_000, [
      { guest: 'block-vm', node: 'controller', peakRssBytes: 300 * 2 ** 20 },
      { guest: 'block-vm', node: 'compute1', peakRssBytes: 320 * 2 ** 20 },
      { guest: 'shared-vm', node: 'controller', peakRssBytes: 290 * 2 ** 20 },
      // a snapshot's template, booted through once: measured, but not a guest the host runs beside the others
      { guest: 'ml-snapshot', node: 'controller', peakRssBytes: 900 * 2 ** 20 },
    ], 4 * 2 ** 30);
    expect(s.peakRssBytesByGuest).toEqual({ 'block-vm': 320 * 2 ** 20, 'shared-vm': 290 * 2 ** 20 });
    expect(s.qemu.map((q) => q.guest)).toContain('ml-snapshot');
    expect(s.harnessCpuMs).toBe(2000);
    expect(sizingLine(s)).toBe('sizing: harness CPU 2.0 s over 20.0 s; QEMU peak RSS block-vm 320.0 MiB, shared-vm 290.0 MiB; this host had 4.0 GiB available at the start: room for 12 QEMUs of 320.0 MiB by memory alone');
    expect(sizingLine(undefined)).toBeUndefined();
    const boot = (guest: string, mode: 'snapshot' | 'cold', ms: number) => ({ guest, node: 'controller', mode, ms, snapshotMadeMs: null, note: null });
    expect(sizingLine({ ...s, boot: [boot('block-vm', 'snapshot', 1400), boot('shared-vm', 'snapshot', 1650)] })).toMatch(/by memory alone; guests: 2 restored from a booted snapshot \(slowest 1\.6 s\)$/);
    expect(sizingLine({ ...s, boot: [boot('block-vm', 'snapshot', 1400), boot('shared-vm', 'cold', 9000)] })).toMatch(/; guests: 1 restored from a booted snapshot \(slowest 1\.4 s\), 1 booted cold \(slowest 9\.0 s\)$/);
  });
});
