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
