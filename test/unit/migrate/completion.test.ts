import { describe, it, expect } from 'vitest';
import { readCompletion, eventDowntimeMs } from '../../../lab/migrate/qemu/completion.ts';
import type { MigrationInfo } from '../../../lab/qemu/qmp.ts';

const ram = { transferred: 88_000_000, remaining: 0, total: 268_435_456, 'dirty-sync-count': 3 } as unknown as MigrationInfo['ram'];

describe('reading QEMU\'s figures of a finished migration', () => {
  it('takes a completed reply with its times once the source is in postmigrate', () => {
    const r = readCompletion({ status: 'completed', 'total-time': 612, downtime: 9, 'setup-time': 3, ram }, 'postmigrate');
    expect(r.final).toBe(true);
    expect(r.figures).toEqual({ totalTimeMs: 612, downtimeMs: 9, setupTimeMs: 3, ramBytes: 88_000_000, iterations: 3 });
    expect(r.notes).toEqual([]);
  });

  it('a completed reply with 0 times (QEMU 7.2 before its thread computed them) is not final; its times are null, with notes, never 0', () => {
    const r = readCompletion({ status: 'completed', 'total-time': 0, downtime: 0, 'setup-time': 4, ram }, 'postmigrate');
    expect(r.final).toBe(false);
    expect(r.figures.totalTimeMs).toBeNull();
    expect(r.figures.downtimeMs).toBeNull();
    expect(r.figures.setupTimeMs).toBe(4);
    expect(r.notes.join(' ')).toMatch(/total time of 0 ms/);
    expect(r.notes.join(' ')).toMatch(/downtime of 0 ms/);
  });

  it('is not final while the source has not reached postmigrate', () => {
    expect(readCompletion({ status: 'completed', 'total-time': 612, downtime: 9, 'setup-time': 3, ram }, 'finish-migrate').final).toBe(false);
  });

  it('never takes a stale "completed" from the QEMU\'s own incoming migration', () => {
    const r = readCompletion({ status: 'completed' }, 'running');
    expect(r.final).toBe(false);
    expect(r.figures).toEqual({ totalTimeMs: null, downtimeMs: null, setupTimeMs: null, ramBytes: null, iterations: null });
    expect(r.notes.join(' ')).toMatch(/arrived by migration/);
    // ...even if the run state happened to read postmigrate
    expect(readCompletion({ status: 'completed' }, 'postmigrate').final).toBe(false);
  });

  it('says so when the migration is not completed at all', () => {
    const r = readCompletion({ status: 'failed' }, 'running');
    expect(r.final).toBe(false);
    expect(r.notes[0]).toMatch(/said failed/);
  });

  it('event downtime: destination RESUME minus source STOP, in ms with µs resolution', () => {
    expect(eventDowntimeMs({ seconds: 100, microseconds: 999_500 }, { seconds: 101, microseconds: 8_250 })).toBeCloseTo(8.75, 6);
    expect(eventDowntimeMs(undefined, { seconds: 1, microseconds: 0 })).toBeNull();
  });
});
