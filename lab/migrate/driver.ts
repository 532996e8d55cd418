import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Strategy } from '../config/scenario.ts';
import { MigralabError } from '../errors.ts';
import type { Ledger } from '../state/ledger.ts';
import type { GuestLaunch } from '../qemu/argv.ts';
import { QemuProcess, type Placement } from '../qemu/instance.ts';
import type { BlockJobInfo, MigrationInfo } from '../qemu/qmp.ts';

export interface MigrationProgress {
  phase: 'mirror' | 'ram';
  done: number;
  total: number;
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
  qemu: {
    totalTimeMs?: number;
    downtimeMs?: number;
    setupTimeMs?: number;
    ramBytes?: number;
    diskBytes: number;
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
    await dest.qmp.execute('migrate-incoming', { uri: `tcp:${destAddr}:${req.migrationPort}` });
    if (strategy === 'block') {
      await dest.qmp.execute('nbd-server-start', { addr: { type: 'inet', data: { host: destAddr, port: String(req.nbdPort) } } });
      for (const d of req.destLaunch.disks)
        await dest.qmp.execute('block-export-add', { type: 'nbd', id: `exp-${d.nodeName}`, 'node-name': d.nodeName, name: d.nodeName, writable: true });
    }
    await source.qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
    const prepareMs = performance.now() - tPrep;

    const startedAt = Date.now();
    const t0 = performance.now();
    let mirrorMs: number | undefined;
    let diskBytes = 0;
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
        });
      for (;;) {
        checkTime('the disk mirror');
        const jobs = await source.qmp.execute<BlockJobInfo[]>('query-block-jobs');
        const mine = jobs.filter((j) => j.device.startsWith('mirror-'));
        const failed = mine.find((j) => j.status === 'concluded' || j.status === 'aborting' || j.status === 'null');
        if (failed || mine.length < req.destLaunch.disks.length)
          throw new MigralabError('MIGRATION', `disk mirror ${failed?.device ?? ''} ended before it was ready (status ${failed?.status ?? 'gone'})`);
        req.onProgress?.({ phase: 'mirror', done: sum(mine.map((j) => j.offset)), total: sum(mine.map((j) => j.len)) });
        if (mine.every((j) => j.ready)) {
          diskBytes = sum(mine.map((j) => j.offset));
          break;
        }
        await sleep(50);
      }
      mirrorMs = performance.now() - t0;
    }

    const completed = source.qmp.waitForEvent('MIGRATION', (ev) => ['completed', 'failed', 'cancelled'].includes((ev.data as { status: string }).status), req.timeoutMs);
    completed.catch(() => {});
    await source.qmp.execute('migrate', { uri: `tcp:${destAddr}:${req.migrationPort}` });
    let finalStatus: string | undefined;
    let endT = 0;
    completed.then((ev) => {
      endT = performance.now();
      finalStatus = (ev.data as { status: string }).status;
    }, () => {});
    let info: MigrationInfo | undefined;
    for (;;) {
      if (finalStatus) break;
      checkTime('the RAM copy');
      info = await source.qmp.execute<MigrationInfo>('query-migrate');
      if (info.status === 'failed' || info.status === 'cancelled') {
        finalStatus = info.status;
        break;
      }
      if (info.ram) req.onProgress?.({ phase: 'ram', done: info.ram.transferred, total: info.ram.transferred + info.ram.remaining });
      await Promise.race([completed.catch(() => {}), sleep(50)]);
    }
    if (finalStatus !== 'completed') {
      const why = (await source.qmp.execute<MigrationInfo>('query-migrate').catch(() => undefined))?.['error-desc'];
      throw new MigralabError('MIGRATION', `migration ${finalStatus}${why ? `: ${why}` : ''}`);
    }
    const durationMs = endT - t0;
    const completedAt = startedAt + durationMs;
    info = await source.qmp.execute<MigrationInfo>('query-migrate');

    if (strategy === 'block') {
      for (const d of req.destLaunch.disks) {
        const job = `mirror-${d.nodeName}`;
        await source.qmp.execute('block-job-cancel', { device: job }).catch(() => {});
      }
      await waitJobsGone(source, 5000);
      await dest.qmp.execute('nbd-server-stop').catch(() => {});
    }
    return {
      dest,
      figures: {
        durationMs,
        prepareMs,
        mirrorMs,
        startedAt,
        completedAt,
        qemu: {
          totalTimeMs: info['total-time'],
          downtimeMs: info.downtime,
          setupTimeMs: info['setup-time'],
          ramBytes: info.ram?.transferred,
          diskBytes,
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
