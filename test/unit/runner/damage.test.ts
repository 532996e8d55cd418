/** A guest that came out of a migration without its network or with wrong RAM is not measured again. */
import { describe, it, expect } from 'vitest';
import { damageOf } from '../../../lab/runner/iteration.ts';

describe('damageOf', () => {
  it('names wrong RAM first, then a missing ping reply', () => {
    expect(damageOf({ answersPing: false, ramIntact: false })).toBe('guest RAM wrong');
    expect(damageOf({ answersPing: true, ramIntact: false })).toBe('guest RAM wrong');
    expect(damageOf({ answersPing: false, ramIntact: true })).toBe('no ping reply');
  });
  it('leaves a sound guest, and one whose RAM was not checked, in place', () => {
    expect(damageOf({ answersPing: true, ramIntact: true })).toBeUndefined();
    expect(damageOf({ answersPing: true, ramIntact: null })).toBeUndefined();
  });
});
