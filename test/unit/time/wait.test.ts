import { describe, it, expect } from 'vitest';
import { ManualClock } from '../../../lab/time/clock.ts';
import { waitFor, abortable, Deadline } from '../../../lab/time/wait.ts';

describe('the one wait helper', () => {
  it('returns the first truthy value of the probe', async () => {
    const clock = new ManualClock();
    let n = 0;
    await expect(waitFor('three', async () => (++n === 3 ? 'yes' : false), { timeoutMs: 1000, intervalMs: 10, clock })).resolves.toBe('yes');
    expect(clock.now()).toBe(20);
  });

  it('gives up at its deadline, naming what it waited for and the last error', async () => {
    const clock = new ManualClock();
    await expect(
      waitFor('the moon', async () => {
        throw new Error('not yet');
      }, { timeoutMs: 100, intervalMs: 30, clock }),
    ).rejects.toThrow(/timed out after 100 ms waiting for the moon: not yet/);
    expect(clock.now()).toBeGreaterThanOrEqual(100);
    expect(clock.now()).toBeLessThan(140);
  });

  it('honours Ctrl-C: an aborted signal ends the wait as INTERRUPTED', async () => {
    const ac = new AbortController();
    const clock = new ManualClock();
    let n = 0;
    const p = waitFor('forever', async () => {
      if (++n === 2) ac.abort();
      return false;
    }, { timeoutMs: 1e9, intervalMs: 10, clock, signal: ac.signal });
    await expect(p).rejects.toMatchObject({ code: 'INTERRUPTED' });
    await expect(abortable(new Promise(() => {}), ac.signal, 'a thing')).rejects.toMatchObject({ code: 'INTERRUPTED' });
  });

  it('a deadline knows what is left', () => {
    const clock = new ManualClock();
    const d = new Deadline(50, clock);
    clock.advance(20);
    expect(d.remaining()).toBe(30);
    expect(d.expired).toBe(false);
    clock.advance(31);
    expect(d.expired).toBe(true);
  });
});
