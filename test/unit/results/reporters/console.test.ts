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
