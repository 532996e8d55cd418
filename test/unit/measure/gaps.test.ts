import { describe, it, expect } from 'vitest';
import { gapsBetween, largestGap, topGaps } from '../../../lab/measure/gaps.ts';

describe('largest gaps', () => {
  it('finds the n largest silences, largest first, wherever they are', () => {
    // replies every 10 ms, a 190 ms stall at 0 ms and an 80 ms one at 700 ms
    const every10 = (a: number, b: number) => Array.from({ length: (b - a) / 10 + 1 }, (_, k) => a + 10 * k);
    const t = [...every10(-30, 0), ...every10(190, 700), ...every10(780, 800)];
    expect(topGaps(t, 2)).toEqual([
      { startMs: 0, endMs: 190, ms: 190 },
      { startMs: 700, endMs: 780, ms: 80 },
    ]);
    expect(topGaps([5, 1, 3], 5).map((g) => g.ms)).toEqual([2, 2]);
    expect(topGaps([1], 3)).toEqual([]);
  });

  it('finds the largest one, the earliest of equal ones, among the gaps that count', () => {
    expect(gapsBetween([30, 0, 10])).toEqual([
      { startMs: 0, endMs: 10, ms: 10 },
      { startMs: 10, endMs: 30, ms: 20 },
    ]);
    expect(largestGap([0, 50, 60, 110])).toEqual({ startMs: 0, endMs: 50, ms: 50 });
    expect(largestGap([0, 50, 60, 110], (g) => g.startMs >= 60)).toEqual({ startMs: 60, endMs: 110, ms: 50 });
    expect(largestGap([0, 50], (g) => g.ms > 50)).toBeUndefined();
    expect(largestGap([7])).toBeUndefined();
  });
});
