import { describe, it, expect } from 'vitest';
import { pauseVerdict } from '../../../lab/tutorial/tutorial.ts';

describe("the tutorial's sentence on the pause follows this run's figures", () => {
  it('says about the same only within a factor of 1.5, with both figures', () => {
    expect(pauseVerdict(57.0, 57.4)).toMatch(/^The pause the ping sees is about the same in both \(57\.0 ms and 57\.4 ms\)/);
    expect(pauseVerdict(150, 100)).toMatch(/about the same/);
    expect(pauseVerdict(157.2, 100.3)).toMatch(/^The pause the ping sees differs here \(157\.2 ms block, 100\.3 ms shared, 1\.57x\)/);
    expect(pauseVerdict(40, 100)).toMatch(/differs here .* 0\.40x/);
  });
  it('says nothing when a gap was not measured', () => {
    expect(pauseVerdict(null, 50)).toBeUndefined();
    expect(pauseVerdict(50, null)).toBeUndefined();
  });
});
