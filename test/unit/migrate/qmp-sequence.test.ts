/**
 * The qemu driver's QMP sequence (lab/migrate/qemu/driver.ts migrateOverQmp) against
 * scripted QMP peers whose replies have the shapes QEMU 10.0 gives (taken from a real
 * block migration's traffic): the order of commands and what happens on each failure.
 * The end-to-end tests run the real thing.
 */
import { describe, it, expect } from 'vitest';
import { migrateOverQmp } from '../../../lab/migrate/qemu/driver.ts';
import { blockSteps, sharedSteps } from '../../../lab/migrate/qemu/storage.ts';
import type { Qmp } from '../../../lab/migrate/qemu/storage.ts';
import type { QmpEvent, QmpEventCursor } from '../../../lab/qemu/qmp.ts';
import { QmpError } from '../../../lab/qemu/qmp.ts';
import { MigrationFailed } from '../../../lab/migrate/types.ts';
import type { DiskSpec } from '../../../lab/qemu/argv.ts';

type Handler = (args: Record<string, unknown> | undefined, peer: FakeQmp) => unknown;

/** A QMP peer: replies come from handlers by command name; events are pushed into its history. */
class FakeQmp implements Qmp {
  readonly log: { cmd: string; args?: Record<string, unknown> }[] = [];
  private history: QmpEvent[] = [];
  private waiters: { name: string; pred?: (e: QmpEvent) => boolean; res: (e: QmpEvent) => void }[] = [];
  constructor(
    readonly name: string,
    private readonly handlers: Record<string, Handler>,
    private readonly journal: string[],
  ) {}
  async execute<T>(cmd: string, args?: Record<string, unknown>): Promise<T> {
    this.log.push({ cmd, args });
    this.journal.push(`${this.name}:${cmd}${args?.device ? `(${args.device})` : args?.['job-id'] ? `(${args['job-id']})` : ''}`);
    const h = this.handlers[cmd];
    if (!h) return {} as T;
    return h(args, this) as T;
  }
  emit(event: string, data?: unknown): void {
    const now = Date.now();
    const ev = { event, data, timestamp: { seconds: Math.floor(now / 1000), microseconds: (now % 1000) * 1000 } };
    this.history.push(ev);
    this.journal.push(`${this.name}!${event}${(data as { status?: string })?.status ? `(${(data as { status: string }).status})` : ''}`);
    for (const w of [...this.waiters]) if (w.name === event && (!w.pred || w.pred(ev))) (this.waiters.splice(this.waiters.indexOf(w), 1), w.res(ev));
  }
  eventCursor(): QmpEventCursor {
    return this.history.length as QmpEventCursor;
  }
  eventsSince(c: QmpEventCursor): QmpEvent[] {
    return this.history.slice(c);
  }
  waitForEvent(name: string, pred: ((e: QmpEvent) => boolean) | undefined, timeoutMs: number, opts: { since?: QmpEventCursor } = {}): Promise<QmpEvent> {
    if (opts.since !== undefined) {
      const hit = this.history.slice(opts.since).find((e) => e.event === name && (!pred || pred(e)));
      if (hit) return Promise.resolve(hit);
    }
    return new Promise((res, rej) => {
      const w = { name, pred, res };
      this.waiters.push(w);
      setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) {
          this.waiters.splice(i, 1);
          rej(new Error(`no ${name} within ${timeoutMs} ms`));
        }
      }, timeoutMs);
    });
  }
}

const disks: DiskSpec[] = [
  { nodeName: 'disk0', format: 'qcow2', source: { driver: 'file', filename: '/d/disk.qcow2' } },
  { nodeName: 'config0', format: 'raw', source: { driver: 'file', filename: '/d/disk.config' } },
];
const params = { 'max-bandwidth': 134217728, 'downtime-limit': 300, 'multifd-channels': 2 };
const caps = [
  { capability: 'events', state: true },
  { capability: 'auto-converge', state: false },
  { capability: 'multifd', state: false },
  { capability: 'postcopy-ram', state: false },
];
const options = { timeoutMs: 5000, tunables: { maxBandwidth: null, autoConverge: false, multifdChannels: 0, postcopy: false }, copyMode: 'background' as const };

/** A source whose mirrors become ready after a few looks and whose migration completes. */
function peers(opts: { failMirror?: string; migration?: 'completed' | 'failed' } = {}) {
  const journal: string[] = [];
  let looks = 0;
  let migrating = false;
  const jobs = () =>
    disks.map((d) => ({ type: 'mirror', device: `mirror-${d.nodeName}`, len: 1 << 20, offset: looks > 2 ? 1 << 20 : 1 << 19, busy: false, paused: false, speed: 0, 'io-status': 'ok', ready: looks > 2, status: looks > 2 ? 'ready' : 'running', 'auto-finalize': true, 'auto-dismiss': true }));
  const dest = new FakeQmp('dest', {}, journal);
  const source = new FakeQmp(
    'src',
    {
      'query-migrate-parameters': () => params,
      'query-migrate-capabilities': () => caps,
      'drive-mirror': (a) => {
        if (a?.device === opts.failMirror) throw new QmpError('drive-mirror', 'GenericError', 'Failed to connect to NBD server');
        return {};
      },
      'query-block-jobs': (_a, p) => {
        looks++;
        if (looks === 3) for (const d of disks) p.emit('BLOCK_JOB_READY', { device: `mirror-${d.nodeName}`, type: 'mirror' });
        return migrating === false && looks > 50 ? [] : jobs();
      },
      migrate: (_a, p) => {
        setTimeout(() => {
          p.emit('MIGRATION', { status: 'setup' });
          p.emit('MIGRATION', { status: 'active' });
          if ((opts.migration ?? 'completed') === 'completed') {
            p.emit('STOP');
            p.emit('MIGRATION', { status: 'completed' });
            setTimeout(() => dest.emit('RESUME'), 5);
          } else p.emit('MIGRATION', { status: 'failed' });
        }, 30);
        return {};
      },
      'query-migrate': () =>
        (opts.migration ?? 'completed') === 'completed' && journal.includes('src!MIGRATION(completed)')
          ? { status: 'completed', 'total-time': 612, downtime: 9, 'setup-time': 3, ram: { transferred: 88_000_000, remaining: 0, total: 268_435_456, 'dirty-sync-count': 3 } }
          : { status: 'active', ram: { transferred: 10_000_000, remaining: 200_000_000, total: 268_435_456, 'dirty-sync-count': 1, 'page-size': 4096, 'dirty-pages-rate': 0, mbps: 900 } },
      'query-status': () => ({ status: journal.includes('src!MIGRATION(completed)') ? 'postmigrate' : 'running', running: true }),
      'block-job-cancel': () => {
        migrating = false;
        looks = 100;
        return {};
      },
    },
    journal,
  );
  return { source, dest, journal };
}

const at = (j: string[], entry: string) => {
  const i = j.indexOf(entry);
  if (i < 0) throw new Error(`${entry} not in ${j.join(' ')}`);
  return i;
};

describe('the qemu driver\'s QMP sequence', () => {
  it('block: NBD export before the mirrors, all mirrors throttled before any is released, migrate only once every mirror is ready, cancel after completion', async () => {
    const { source, dest, journal } = peers();
    const f = await migrateOverQmp({ source, dest, steps: blockSteps, disks, destAddress: '10.77.0.12', options, events: {}, prepareStartedAt: performance.now() });
    expect(at(journal, 'dest:migrate-incoming')).toBeLessThan(at(journal, 'dest:nbd-server-start'));
    expect(at(journal, 'dest:block-export-add')).toBeLessThan(at(journal, 'src:drive-mirror(disk0)'));
    expect(at(journal, 'src:drive-mirror(config0)')).toBeLessThan(at(journal, 'src:block-job-set-speed(mirror-disk0)'));
    for (const c of source.log.filter((x) => x.cmd === 'drive-mirror')) expect(c.args).toMatchObject({ speed: 1, sync: 'full', mode: 'existing', target: expect.stringMatching(/^nbd:\/\/10\.77\.0\.12:10809\//) });
    for (const c of source.log.filter((x) => x.cmd === 'block-job-set-speed')) expect(c.args).toMatchObject({ speed: 0 });
    expect(journal.lastIndexOf('src!BLOCK_JOB_READY')).toBeLessThan(at(journal, 'src:migrate'));
    expect(at(journal, 'src!MIGRATION(completed)')).toBeLessThan(at(journal, 'src:block-job-cancel(mirror-disk0)'));
    expect(at(journal, 'src:block-job-cancel(mirror-config0)')).toBeLessThan(at(journal, 'dest:nbd-server-stop'));
    expect(f.qemu).toMatchObject({ totalTimeMs: 612, downtimeMs: 9, setupTimeMs: 3, ramBytes: 88_000_000, iterations: 3 });
    expect(f.qemu.eventDowntimeMs).not.toBeNull();
    expect(f.mirrorMs).not.toBeNull();
    expect(f.marks.mirrorReady!).toBeLessThanOrEqual(f.marks.ramStart!);
  });

  it('shared: no NBD, no mirror; RAM only', async () => {
    const { source, dest, journal } = peers();
    const f = await migrateOverQmp({ source, dest, steps: sharedSteps, disks, destAddress: '10.77.0.12', options, events: {}, prepareStartedAt: performance.now() });
    expect(journal.some((j) => /nbd|mirror|block-job/.test(j))).toBe(false);
    expect(f.qemu.diskBytes).toBe(0);
    expect(f.mirrorMs).toBeNull();
  });

  it('a mirror that cannot start: no migrate; the mirrors that did start are cancelled; the failure says why', async () => {
    const { source, dest, journal } = peers({ failMirror: 'config0' });
    const p = migrateOverQmp({ source, dest, steps: blockSteps, disks, destAddress: '10.77.0.12', options, events: {}, prepareStartedAt: performance.now() });
    await expect(p).rejects.toBeInstanceOf(MigrationFailed);
    await expect(p).rejects.toThrow(/Failed to connect to NBD server/);
    expect(journal).not.toContain('src:migrate');
    expect(at(journal, 'src:migrate_cancel')).toBeLessThan(at(journal, 'src:block-job-cancel(mirror-disk0)'));
    expect(source.log.filter((c) => c.cmd === 'block-job-cancel').every((c) => c.args?.force === true)).toBe(true);
  });

  it('a migration that fails: cancelled, the mirrors too, and the source is checked to be running', async () => {
    const { source, dest, journal } = peers({ migration: 'failed' });
    const p = migrateOverQmp({ source, dest, steps: blockSteps, disks, destAddress: '10.77.0.12', options, events: {}, prepareStartedAt: performance.now() });
    await expect(p).rejects.toThrow(/migration failed/);
    expect(journal).toContain('src:migrate_cancel');
    expect(journal.indexOf('src:query-status')).toBeGreaterThan(journal.indexOf('src:migrate_cancel'));
  });

  it('reports phases as they begin, for fault injection', async () => {
    const { source, dest } = peers();
    const seen: string[] = [];
    await migrateOverQmp({ source, dest, steps: blockSteps, disks, destAddress: '10.77.0.12', options, events: { phase: (p) => seen.push(p) }, prepareStartedAt: performance.now() });
    expect(seen.slice(0, 2)).toEqual(['mirror', 'ram']);
  });
});
