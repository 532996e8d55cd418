import { describe, it, expect } from 'vitest';
import { consoleStyle, formatNumber, formatPercent, formatValue } from '../../../lab/results/format.ts';

describe('formatNumber in the console style', () => {
  it('writes milliseconds with their unit, counts bare, and - for nothing', () => {
    expect(formatValue(412.34, 'ms')).toBe('412.3 ms');
    expect(formatValue(3, 'count')).toBe('3');
    expect(formatValue(2.5, 'count')).toBe('2.5');
    expect(formatValue(null, 'ms')).toBe('-');
    expect(formatValue(NaN, 'count')).toBe('-');
    expect(formatNumber(-12, 'ms', true, consoleStyle)).toBe('-12.0 ms');
    expect(formatNumber(12, 'ms', true, consoleStyle)).toBe('+12.0 ms');
  });

  it('gives one iteration\'s small milliseconds two decimals', () => {
    expect(formatNumber(4.271, 'ms', false, { ...consoleStyle, fine: true })).toBe('4.27 ms');
    expect(formatNumber(41.271, 'ms', false, { ...consoleStyle, fine: true })).toBe('41.3 ms');
  });
});

describe('formatPercent', () => {
  it('writes a share as a percentage, shortest unless fixed', () => {
    expect(formatPercent(0.25)).toBe('25%');
    expect(formatPercent(0.125, 1)).toBe('12.5%');
    expect(formatPercent(0.25, 1)).toBe('25%');
    expect(formatPercent(0.96, 1, true)).toBe('96.0%');
    expect(formatPercent(0.955)).toBe('96%');
  });
});
