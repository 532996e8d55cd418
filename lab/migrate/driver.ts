import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Strategy } from '../config/scenario.ts';
import { MigralabError } from '../errors.ts';
import type { Ledger } from '../state/ledger.ts';
import type { GuestLaunch } from '../qemu/argv.ts';
import { QemuProcess, type Placement } from '../qemu/instance.ts';
import type { BlockJobInfo, MigrationInfo } from '../qemu/qmp.ts';
import type { Settings } from '../config/settings.ts';
import { max } from '../measure/stats.ts';

type Tunables = Settings['tunables'];

export interface MigrationProgress {
  phase: 'mirror' | 'ram';
  done: number;
  total: number;
}

/** One look at QMP during a migration (every 50 ms); t is ms after the request. */
export interface MigrationSample {
  t: number;
  phase: 'mirror' | 'ram' | 'postcopy' | 'switchover';
  diskDone: number | null;
  diskRemaining: number | null;
  ramTransferred: number | null;
  ramRemaining: number | null;
  dirtyBytesPerSec: number | null;
  mbps: number | null;
  iterations: number | null;
}

/** Phase boundaries the harness saw, ms after the request (null: not reached or not applicable). */
export interface MigrationMarks {
  mirrorReady: number | null;
  ramStart: number | null;
  postcopyStart: number | null;
  completed: number | null;
  /** When the destination reported `running` (polled every 2 ms after completion). */
  destRunning: number | null;
  cleanedUp: number | null;
}

export interface EffectiveTunables {
  maxBandwidthBytesPerSec: number | null;
  downtimeLimitMs: number | null;
  multifdChannels: number | null;
  autoConverge: boolean;
  postcopy: boolean;
}

export interface MigrationFigures {
  /** Harness wall time, first migration command on the source to QEMU's `completed` event. */
  durationMs: number;
  /** Destination QEMU start + incoming/NBD setup, before the request (not in durationMs). */
  prepareMs: number;
  /** Disk mirror until every job was ready (block only). */
  mirrorMs?: number;
  startedAt: number;
  completedAt: number;
  samples: MigrationSample[];
  marks: MigrationMarks;
  tunables: EffectiveTunables;
  qemu: {
    totalTimeMs?: number;
    downtimeMs?: number;
    setupTimeMs?: number;
    ramBytes?: number;
    diskBytes: number;
    /** RAM passes (dirty-sync-count). */
    iterations?: number;
    dirtyBytesPerSecMax?: number;
  };
}

export interface MigrateRequest {
  strategy: Strategy;
  source: QemuProcess;
  dest: Placement;
  /** The same guest as on the source, with disks as seen from the destination, incoming. */
  destLaunch: GuestLaunch;
  /** Virtual size of each disk (block: pre-created on the destination). */
  diskSizes: Record<string, number>;
  migrationPort: number;
  nbdPort: number;
  timeoutMs: number;
  tunables: Tunables;
  copyMode: Settings['mirror']['copyMode'];
  ledger: Ledger;
  onProgress?: (p: MigrationProgress) => void;
  signal?: AbortSignal;
}

export class MigrationFailed extends MigralabError {
  constructor(
    message: string,
    /** Where the guest runs now (always the source for a failed migration) and its QMP status. */
    readonly guestState: { node: string; status: string },
    options?: { cause?: unknown },
  ) {
    super('MIGRATION', message, options);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * One live migration over QMP.
 * shared: RAM + device state only (`migrate`).
 * block: NBD server + writable export per disk on the destination, `drive-mirror` of
 * every disk from the source, `migrate` once every mirror is ready, then the mirrors
 * are cancelled and the NBD server stopped (what libvirt's --copy-storage-all does).
 * On any failure the migration is cancelled, the destination removed, and the guest
 * keeps running on the source.
 */
export async function migrate(req: MigrateRequest): Promise<{ dest: QemuProcess; figures: MigrationFigures }> {
  const { source, strategy } = req;
  const destAddr = req.dest.node.address;
  const tPrep = performance.now();
  let dest: QemuProcess | undefined;
  let mirrorsStarted = false;
  const deadline = Date.now() + req.timeoutMs;
  const checkTime = (what: string) => {
    if (req.signal?.aborted) throw new MigralabError('INTERRUPTED', `interrupted during ${what}`);
    if (Date.now() > deadline) throw new MigralabError('MIGRATION', `timed out after ${req.timeoutMs} ms during ${what}`);
  };
  try {
    if (strategy === 'block') {
      for (const d of req.destLaunch.disks) {
        if (d.source.driver !== 'file') throw new Error('block migration needs local destination disks');
        await req.dest.transport.run(['mkdir', '-p', dirname(d.source.filename)]);
        await req.dest.transport.run(['qemu-img', 'create', '-q', '-f', d.format, d.source.filename, String(req.diskSizes[d.nodeName])]);
      }
    }
    dest = await QemuProcess.start(req.dest, req.destLaunch, req.ledger);
    const destEvents = dest.qmp.eventCursor();
    const { caps, params } = tunablesFor(req.tunables);
    // Capabilities that change the stream (multifd, postcopy) must match on both sides, before migrate-incoming.
    await dest.qmp.execute('migrate-set-capabilities', { capabilities: caps.filter((c) => c.capability !== 'auto-converge') });
    if (params['multifd-channels'] !== undefined) await dest.qmp.execute('migrate-set-parameters', { 'multifd-channels': params['multifd-channels'] });
    await dest.qmp.execute('migrate-incoming', { uri: `tcp:${destAddr}:${req.migrationPort}` });
    if (strategy === 'block') {
      await dest.qmp.execute('nbd-server-start', { addr: { type: 'inet', data: { host: destAddr, port: String(req.nbdPort) } } });
      for (const d of req.destLaunch.disks)
        await dest.qmp.execute('block-export-add', { type: 'nbd', id: `exp-${d.nodeName}`, 'node-name': d.nodeName, name: d.nodeName, writable: true });
    }
    await source.qmp.execute('migrate-set-capabilities', { capabilities: caps });
    if (Object.keys(params).length) await source.qmp.execute('migrate-set-parameters', params);
    const effective = await effectiveTunables(source);
    const prepareMs = performance.now() - tPrep;

    const samples: MigrationSample[] = [];
    const marks: MigrationMarks = { mirrorReady: null, ramStart: null, postcopyStart: null, completed: null, destRunning: null, cleanedUp: null };
    const t0 = performance.now();
    // epoch ms on the same clock as since(), so QEMU's event timestamps line up with the marks
    const startedAt = performance.timeOrigin + t0;
    const since = () => performance.now() - t0;
    let diskBytes = 0;
    const jobs = async () => (await source.qmp.execute<BlockJobInfo[]>('query-block-jobs')).filter((j) => j.device.startsWith('mirror-'));
    if (strategy === 'block') {
      mirrorsStarted = true;
      for (const d of req.destLaunch.disks)
        await source.qmp.execute('drive-mirror', {
          'job-id': `mirror-${d.nodeName}`,
          device: d.nodeName,
          target: `nbd://${destAddr}:${req.nbdPort}/${d.nodeName}`,
          format: 'raw',
          sync: 'full',
          mode: 'existing',
          'copy-mode': req.copyMode,
        });
      for (;;) {
        checkTime('the disk mirror');
        const mine = await jobs();
        const failed = mine.find((j) => j.status === 'concluded' || j.status === 'aborting' || j.status === 'null');
        if (failed || mine.length < req.destLaunch.disks.length)
          throw new MigralabError('MIGRATION', `disk mirror ${failed?.device ?? ''} ended before it was ready (status ${failed?.status ?? 'gone'})`);
        const done = sum(mine.map((j) => j.offset));
        const total = sum(mine.map((j) => j.len));
        samples.push({ t: since(), phase: 'mirror', diskDone: done, diskRemaining: total - done, ramTransferred: null, ramRemaining: null, dirtyBytesPerSec: null, mbps: null, iterations: null });
        req.onProgress?.({ phase: 'mirror', done, total });
        if (mine.every((j) => j.ready)) break;
        await sleep(SAMPLE_MS);
      }
      marks.mirrorReady = since();
    }

    const completed = source.qmp.waitForEvent('MIGRATION', (ev) => ['completed', 'failed', 'cancelled'].includes((ev.data as { status: string }).status), req.timeoutMs);
    completed.catch(() => {});
    marks.ramStart = since();
    await source.qmp.execute('migrate', { uri: `tcp:${destAddr}:${req.migrationPort}` });
    let finalStatus: string | undefined;
    let endT = 0;
    completed.then(
      (ev) => {
        endT = performance.now();
        finalStatus = (ev.data as { status: string }).status;
      },
      () => {},
    );
    let info: MigrationInfo | undefined;
    for (;;) {
      if (finalStatus) break;
      checkTime('the RAM copy');
      info = await source.qmp.execute<MigrationInfo>('query-migrate');
      if (info.status === 'failed' || info.status === 'cancelled') {
        finalStatus = info.status;
        break;
      }
      const mine = strategy === 'block' ? await jobs() : [];
      const diskDone = mine.length ? sum(mine.map((j) => j.offset)) : null;
      const ram = info.ram;
      const pageSize = ram?.['page-size'] ?? 4096;
      samples.push({
        t: since(),
        phase: info.status === 'postcopy-active' ? 'postcopy' : info.status === 'device' ? 'switchover' : 'ram',
        diskDone,
        diskRemaining: mine.length ? sum(mine.map((j) => j.len - j.offset)) : null,
        ramTransferred: ram?.transferred ?? null,
        ramRemaining: ram?.remaining ?? null,
        dirtyBytesPerSec: ram?.['dirty-pages-rate'] !== undefined ? ram['dirty-pages-rate'] * pageSize : null,
        mbps: ram?.mbps ?? null,
        iterations: ram?.['dirty-sync-count'] ?? null,
      });
      if (ram) req.onProgress?.({ phase: 'ram', done: ram.transferred, total: ram.transferred + ram.remaining });
      // Post-copy: switch once the first full pass over RAM has been sent.
      if (req.tunables.postcopy && marks.postcopyStart === null && info.status === 'active' && (ram?.['dirty-sync-count'] ?? 0) >= 2) {
        await source.qmp.execute('migrate-start-postcopy').catch(() => {});
        marks.postcopyStart = since();
      }
      await Promise.race([completed.catch(() => {}), sleep(SAMPLE_MS)]);
    }
    if (finalStatus !== 'completed') {
      const why = (await source.qmp.execute<MigrationInfo>('query-migrate').catch(() => undefined))?.['error-desc'];
      throw new MigralabError('MIGRATION', `migration ${finalStatus}${why ? `: ${why}` : ''}`);
    }
    const durationMs = endT - t0;
    marks.completed = durationMs;
    // migrate-start-postcopy that lost the race with completion: post-copy never ran.
    if (marks.postcopyStart !== null && marks.postcopyStart >= durationMs) marks.postcopyStart = null;
    const completedAt = startedAt + durationMs;
    info = await source.qmp.execute<MigrationInfo>('query-migrate');
    // The source's `completed` is not the guest running again: the destination may still
    // be loading device state. Its RESUME event (QEMU's own timestamp, same host clock) says when it ran.
    const resumed = await dest.qmp.waitForEvent('RESUME', undefined, 10_000, { since: destEvents }).catch(() => undefined);
    marks.destRunning = resumed ? resumed.timestamp.seconds * 1000 + resumed.timestamp.microseconds / 1000 - startedAt : null;

    if (strategy === 'block') {
      // What the mirrors processed in all: the disk once, plus whatever the guest rewrote meanwhile.
      diskBytes = sum((await jobs()).map((j) => j.offset));
      for (const d of req.destLaunch.disks) await source.qmp.execute('block-job-cancel', { device: `mirror-${d.nodeName}` }).catch(() => {});
      await waitJobsGone(source, 5000);
      await dest.qmp.execute('nbd-server-stop').catch(() => {});
    }
    marks.cleanedUp = since();
    return {
      dest,
      figures: {
        durationMs,
        prepareMs,
        mirrorMs: marks.mirrorReady ?? undefined,
        startedAt,
        completedAt,
        samples,
        marks,
        tunables: effective,
        qemu: {
          totalTimeMs: info['total-time'],
          downtimeMs: info.downtime,
          setupTimeMs: info['setup-time'],
          ramBytes: info.ram?.transferred,
          diskBytes,
          iterations: info.ram?.['dirty-sync-count'],
          dirtyBytesPerSecMax: max(samples.map((x) => x.dirtyBytesPerSec)),
        },
      },
    };
  } catch (e) {
    await rollBack(req, dest, mirrorsStarted);
    const status = await source.status().catch(() => 'unknown');
    const msg = e instanceof Error ? e.message : String(e);
    if (e instanceof MigralabError && e.code === 'INTERRUPTED') throw e;
    throw new MigrationFailed(`${msg}; the guest is still running on ${source.nodeName} (status ${status})`, { node: source.nodeName, status }, { cause: e });
  }
}

const SAMPLE_MS = 50;

/** QMP capabilities and parameters for the scenario's tunables (null/undefined: QEMU's default). */
export function tunablesFor(t: Tunables): { caps: { capability: string; state: boolean }[]; params: Record<string, number> } {
  const caps = [
    { capability: 'events', state: true },
    { capability: 'auto-converge', state: t.autoConverge },
    { capability: 'multifd', state: t.multifdChannels > 0 },
    { capability: 'postcopy-ram', state: t.postcopy },
  ];
  const params: Record<string, number> = {};
  if (t.maxBandwidth !== null) params['max-bandwidth'] = Math.floor(t.maxBandwidth / 8);
  if (t.downtimeLimitMs !== undefined) params['downtime-limit'] = t.downtimeLimitMs;
  if (t.multifdChannels > 0) params['multifd-channels'] = t.multifdChannels;
  return { caps, params };
}

/** What QEMU says is in effect, so a result shows the real settings, defaults included. */
async function effectiveTunables(p: QemuProcess): Promise<EffectiveTunables> {
  const params = await p.qmp.execute<Record<string, unknown>>('query-migrate-parameters');
  const caps = await p.qmp.execute<{ capability: string; state: boolean }[]>('query-migrate-capabilities');
  const on = (c: string) => caps.find((x) => x.capability === c)?.state ?? false;
  return {
    maxBandwidthBytesPerSec: (params['max-bandwidth'] as number | undefined) ?? null,
    downtimeLimitMs: (params['downtime-limit'] as number | undefined) ?? null,
    multifdChannels: on('multifd') ? ((params['multifd-channels'] as number | undefined) ?? null) : 0,
    autoConverge: on('auto-converge'),
    postcopy: on('postcopy-ram'),
  };
}

function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

async function waitJobsGone(p: QemuProcess, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const jobs = await p.qmp.execute<BlockJobInfo[]>('query-block-jobs');
    if (!jobs.some((j) => j.device.startsWith('mirror-'))) return;
    await sleep(20);
  }
}

/** Cancel everything, remove the destination, make sure the source runs. */
async function rollBack(req: MigrateRequest, dest: QemuProcess | undefined, mirrorsStarted: boolean): Promise<void> {
  const { source } = req;
  await source.qmp.execute('migrate_cancel').catch(() => {});
  if (mirrorsStarted) {
    for (const d of req.destLaunch.disks) await source.qmp.execute('block-job-cancel', { device: `mirror-${d.nodeName}`, force: true }).catch(() => {});
    await waitJobsGone(source, 5000).catch(() => {});
  }
  if (dest) await dest.quit().catch(() => {});
  if (req.strategy === 'block')
    for (const d of req.destLaunch.disks) if (d.source.driver === 'file') await rm(d.source.filename, { force: true });
  // A cancelled migration resumes the source by itself; make sure of it.
  const status = await source.status().catch(() => undefined);
  if (status && status !== 'running') await source.qmp.execute('cont').catch(() => {});
}
