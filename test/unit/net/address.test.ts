import { describe, it, expect } from 'vitest';
import { parseCidr, inCidr, hostAt, macFor, bridgeMacFor, ipToInt } from '../../../lab/net/address.ts';

describe('addressing', () => {
  it('parses CIDRs and refuses host bits', () => {
    expect(parseCidr('10.77.0.0/24')).toEqual({ network: ipToInt('10.77.0.0'), prefix: 24 });
    expect(parseCidr('10.77.0.1/24')).toBeUndefined();
    expect(parseCidr('10.77.0.0/31')).toBeUndefined();
  });
  it('knows usable hosts', () => {
    const c = parseCidr('10.77.0.0/24')!;
    expect(inCidr('10.77.0.1', c)).toBe(true);
    expect(inCidr('10.77.0.0', c)).toBe(false);
    expect(inCidr('10.77.0.255', c)).toBe(false);
    expect(inCidr('10.78.0.1', c)).toBe(false);
    expect(hostAt(c, 100)).toBe('10.77.0.100');
    expect(() => hostAt(c, 255)).toThrow();
  });
  it('derives a stable locally administered MAC', () => {
    expect(macFor('10.77.0.100')).toBe('52:54:00:4d:00:64');
    expect(bridgeMacFor('10.77.0.12')).toBe('02:6d:6c:4d:00:0c');
  });
});
