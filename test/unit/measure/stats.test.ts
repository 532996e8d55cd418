import { describe, it, expect } from 'vitest';
import { describe as describeValues, max, median, min, ratio } from '../../../lab/measure/stats.ts';

describe('median/min/max', () => {
  it('takes the middle value of an odd count, the mean of the middle two of an even count', () => {
    expect(median([5, 1, 3])).toBe(3);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([7])).toBe(7);
  });

  it('does not reorder the caller array', () => {
    const v = [3, 1, 2];
    median(v);
    expect(v).toEqual([3, 1, 2]);
  });

  it('ignores undefined, null and NaN but keeps 0 and negatives', () => {
    expect(median([undefined, 0, null, NaN, 10])).toBe(5);
    expect(min([undefined, -2, 0, NaN])).toBe(-2);
    expect(max([null, -2, -7])).toBe(-2);
  });

  it('gives undefined for nothing to measure', () => {
    expect(median([])).toBeUndefined();
    expect(min([NaN, undefined])).toBeUndefined();
    expect(max([null])).toBeUndefined();
  });
});

describe('describe', () => {
  it('counts only the values used', () => {
    expect(describeValues([1.6, undefined, 0.6, NaN, 5, null])).toEqual({ n: 3, median: 1.6, min: 0.6, max: 5 });
  });

  it('has n = 0 and undefined fields when empty', () => {
    expect(describeValues([])).toEqual({ n: 0, median: undefined, min: undefined, max: undefined });
    expect(describeValues([undefined, NaN])).toEqual({ n: 0, median: undefined, min: undefined, max: undefined });
  });
});

describe('ratio', () => {
  it('divides', () => {
    expect(ratio(1.6, 0.6)).toBeCloseTo(2.6667, 4);
    expect(ratio(0, 4)).toBe(0);
  });

  it('is undefined when the divisor is 0 or anything is missing', () => {
    expect(ratio(3, 0)).toBeUndefined();
    expect(ratio(3, undefined)).toBeUndefined();
    expect(ratio(undefined, 3)).toBeUndefined();
    expect(ratio(null, 3)).toBeUndefined();
    expect(ratio(3, NaN)).toBeUndefined();
  });
});

import { percentile, mean, stddev, stats, bootstrapMedianDiff, seededRandom } from '../../../lab/measure/stats.ts';

describe('percentiles, mean, sd', () => {
  it('matches numpy (linear interpolation)', () => {
    const v = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    expect(percentile(v, 90)).toBeCloseTo(9.1, 12);
    expect(percentile(v, 95)).toBeCloseTo(9.55, 12);
    expect(percentile(v, 50)).toBe(5.5);
    expect(percentile([7], 95)).toBe(7);
    expect(mean([2, 4, 4, 4, 5, 5, 7, 9])).toBe(5);
    expect(stddev([2, 4, 4, 4, 5, 5, 7, 9])).toBeCloseTo(2.138089935299395, 12);
    expect(stddev([3])).toBeUndefined();
    expect(stats([null, 1, 3])).toMatchObject({ n: 2, median: 2, min: 1, max: 3, mean: 2 });
  });
});

describe('bootstrap interval of a difference of medians', () => {
  const a = [10, 11, 12, 13, 14, 15, 16, 17];
  const b = [1, 2, 3, 4, 5, 6, 7, 8];
  it('is repeatable from its seed and brackets the observed difference', () => {
    const x = bootstrapMedianDiff(a, b, { seed: 42 })!;
    const y = bootstrapMedianDiff(a, b, { seed: 42 })!;
    expect(x).toEqual(y);
    expect(x.diff).toBe(9);
    expect(x.low).toBeLessThanOrEqual(9);
    expect(x.high).toBeGreaterThanOrEqual(9);
    expect(x.low).toBeGreaterThan(0);
    expect(x.warning).toBeUndefined();
  });
  it('changes with the seed but not by much', () => {
    const x = bootstrapMedianDiff(a, b, { seed: 1 })!;
    const y = bootstrapMedianDiff(a, b, { seed: 2 })!;
    expect(Math.abs(x.low - y.low)).toBeLessThan(2);
  });
  it('identical constant groups give a zero-width interval at 0', () => {
    expect(bootstrapMedianDiff([5, 5, 5, 5, 5], [5, 5, 5, 5, 5])).toMatchObject({ diff: 0, low: 0, high: 0 });
  });
  it('warns when there are too few values', () => {
    expect(bootstrapMedianDiff([1, 2, 3], [4, 5, 6])!.warning).toMatch(/at least 5/);
    expect(bootstrapMedianDiff([], [1])).toBeUndefined();
  });
  it('the PRNG is uniform enough', () => {
    const r = seededRandom(7);
    const xs = Array.from({ length: 10000 }, r);
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    expect(mean(xs)!).toBeCloseTo(0.5, 1);
  });
});
