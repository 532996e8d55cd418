/**
 * What moves with the guest besides RAM, as steps of the qemu driver's migration:
 *
 * - shared: nothing; both sides open the same file on the NFS export.
 * - block (libvirt's --copy-storage-all): the destination pre-creates empty disks of the
 *   same size and exports them over NBD (writable); the source `drive-mirror`s every disk
 *   into its export; RAM moves once every mirror is ready; after completion the mirrors
 *   are cancelled and the NBD server stopped. On failure the mirrors are cancelled and
 *   the destination's copies removed.
 *
 * The mirrors are started with a speed limit of 1 byte/s and released only once every
 * one of them exists. Starting a mirror changes the block graph, which drains every
 * disk; started while another mirror is copying at full speed, that drain held QEMU's
 * main loop (and with it the guest's network) for 300-460 ms on this machine kind: the
 * "stall at the mirror start" that made block migration interrupt the guest 3.3x longer
 * than a bare script mirroring one disk (scripts/bench-bare.mjs). Throttled, the drain
 * has nothing to wait for.
 */
import { dirname } from 'node:path';
import type { NodeTransport } from '../../exec/transport.ts';
import { MigralabError } from '../../errors.ts';
import type { DiskSpec } from '../../qemu/argv.ts';
import type { BlockJobInfo, QmpEvent, QmpEventCursor } from '../../qemu/qmp.ts';
import type { Settings } from '../../config/settings.ts';

/** The part of a QMP client the steps use (QmpClient, or a recorded peer in tests). */
export interface Qmp {
  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts?: { timeoutMs?: number }): Promise<T>;
  eventCursor(): QmpEventCursor;
  eventsSince(cursor: QmpEventCursor): QmpEvent[];
  waitForEvent(name: string, predicate: ((ev: QmpEvent) => boolean) | undefined, timeoutMs: number, opts?: { since?: QmpEventCursor }): Promise<QmpEvent>;
}

/** QMP commands that do real work under load (opening NBD, starting jobs): a longer, stated deadline. */
export const LONG_QMP_MS = 60_000;

export interface CopyContext {
  /** ms after the request */
  since(): number;
  /** throws when the deadline passed or the run was interrupted */
  check(what: string): void;
  /** every SAMPLE_MS while the disks copy */
  sample(jobs: BlockJobInfo[]): void;
  sleep(ms: number): Promise<void>;
}

/**
 * TLS for the migration stream and the NBD export (security.tls: psk): QEMU tls-creds-psk
 * objects, one per role. The destination is the server (migration and NBD), the source the
 * client; a QEMU that arrived by migration keeps its server object, and gets a client one
 * when it migrates out.
 */
export interface TlsCreds {
  server: string;
  client: string;
}

export interface StorageSteps {
  readonly strategy: 'block' | 'shared';
  /** Before the destination QEMU starts. */
  prepareDestination(dest: NodeTransport, disks: readonly DiskSpec[], sizes: Record<string, number>): Promise<void>;
  /** On the destination, after migrate-incoming. */
  exportDisks(dest: Qmp, address: string, port: number, disks: readonly DiskSpec[], tls?: TlsCreds): Promise<void>;
  /** On the source: copy the disks; resolves once every copy is ready (block), at once (shared). */
  copy(source: Qmp, address: string, port: number, disks: readonly DiskSpec[], copyMode: Settings['mirror']['copyMode'], ctx: CopyContext, tls?: TlsCreds): Promise<void>;
  /** Bytes the copies processed so far (the mirrors' offsets). */
  copied(source: Qmp): Promise<number | null>;
  /** After completion: end the copies, stop the export. Returns the bytes the copies processed in all. */
  finish(source: Qmp, dest: Qmp, disks: readonly DiskSpec[], tls?: TlsCreds): Promise<number>;
  /** After a failure: cancel the copies (the driver removes the destination's disks with the destination). */
  cancelCopies(source: Qmp, disks: readonly DiskSpec[], copyStarted: boolean, tls?: TlsCreds): Promise<void>;
}

export const sharedSteps: StorageSteps = {
  strategy: 'shared',
  async prepareDestination() {},
  async exportDisks() {},
  async copy() {},
  async copied() {
    return 0;
  },
  async finish() {
    return 0;
  },
  async cancelCopies() {},
};

const jobId = (d: DiskSpec) => `mirror-${d.nodeName}`;
const targetNode = (d: DiskSpec) => `nbd-${d.nodeName}`;

/** Removes the NBD target nodes a TLS mirror added. */
async function dropTargets(source: Qmp, disks: readonly DiskSpec[]): Promise<void> {
  const nodes = await source.execute<{ 'node-name': string }[]>('query-named-block-nodes', { flat: true }).catch(() => []);
  if (!Array.isArray(nodes)) return;
  for (const d of disks) if (nodes.some((n) => n['node-name'] === targetNode(d))) await source.execute('blockdev-del', { 'node-name': targetNode(d) }).catch(() => {});
}
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

async function mirrorJobs(q: Qmp): Promise<BlockJobInfo[]> {
  return (await q.execute<BlockJobInfo[]>('query-block-jobs')).filter((j) => j.device.startsWith('mirror-'));
}

async function waitJobsGone(q: Qmp, ctx: Pick<CopyContext, 'sleep'>, timeoutMs: number): Promise<void> {
  for (let waited = 0; waited < timeoutMs; waited += 20) {
    if ((await mirrorJobs(q)).length === 0) return;
    await ctx.sleep(20);
  }
}

const realSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export const SAMPLE_MS = 50;

export const blockSteps: StorageSteps = {
  strategy: 'block',

  async prepareDestination(dest, disks, sizes) {
    for (const d of disks) {
      if (d.source.driver !== 'file') throw new MigralabError('LAB', 'block migration needs local destination disks');
      await dest.mkdir(dirname(d.source.filename));
      await dest.run(['qemu-img', 'create', '-q', '-f', d.format, d.source.filename, String(sizes[d.nodeName])]);
    }
  },

  async exportDisks(dest, address, port, disks, tls) {
    await dest.execute('nbd-server-start', { addr: { type: 'inet', data: { host: address, port: String(port) } }, ...(tls ? { 'tls-creds': tls.server } : {}) }, { timeoutMs: LONG_QMP_MS });
    for (const d of disks) await dest.execute('block-export-add', { type: 'nbd', id: `exp-${d.nodeName}`, 'node-name': d.nodeName, name: d.nodeName, writable: true }, { timeoutMs: LONG_QMP_MS });
  },

  async copy(source, address, port, disks, copyMode, ctx, tls) {
    const cursor = source.eventCursor();
    for (const d of disks) {
      if (!tls) {
        await source.execute(
          'drive-mirror',
          { 'job-id': jobId(d), device: d.nodeName, target: `nbd://${address}:${port}/${d.nodeName}`, format: 'raw', sync: 'full', mode: 'existing', 'copy-mode': copyMode, speed: 1 },
          { timeoutMs: LONG_QMP_MS },
        );
        continue;
      }
      // An nbd:// target cannot carry TLS credentials: the target is a block node of its own, then blockdev-mirror (what drive-mirror does inside).
      await source.execute('blockdev-add', { driver: 'nbd', 'node-name': targetNode(d), server: { type: 'inet', host: address, port: String(port) }, export: d.nodeName, 'tls-creds': tls.client }, { timeoutMs: LONG_QMP_MS });
      await source.execute('blockdev-mirror', { 'job-id': jobId(d), device: d.nodeName, target: targetNode(d), sync: 'full', 'copy-mode': copyMode, speed: 1 }, { timeoutMs: LONG_QMP_MS });
    }
    // Every mirror exists: let them all copy at full speed.
    for (const d of disks) await source.execute('block-job-set-speed', { device: jobId(d), speed: 0 });
    const ready = new Set<string>();
    const failed: string[] = [];
    const watch = (ev: QmpEvent) => {
      const data = (ev.data ?? {}) as { device?: string; error?: string };
      const dev = data.device ?? '';
      if (!dev.startsWith('mirror-')) return;
      if (ev.event === 'BLOCK_JOB_READY') ready.add(dev);
      if (ev.event === 'BLOCK_JOB_ERROR' || ev.event === 'BLOCK_JOB_CANCELLED' || (ev.event === 'BLOCK_JOB_COMPLETED' && data.error))
        failed.push(`${dev}: ${ev.event}${data.error ? ` (${data.error})` : ''}`);
    };
    // The events since the first drive-mirror, then every new one.
    let seen = cursor;
    for (;;) {
      ctx.check('the disk mirror');
      source.eventsSince(seen).forEach(watch);
      seen = source.eventCursor();
      const jobs = await mirrorJobs(source);
      if (failed.length) throw new MigralabError('MIGRATION', `disk mirror failed: ${failed.join('; ')}`);
      const gone = disks.filter((d) => !jobs.some((j) => j.device === jobId(d)));
      if (gone.length) throw new MigralabError('MIGRATION', `disk mirror ${gone.map(jobId).join(', ')} ended before it was ready`);
      const bad = jobs.find((j) => j.status === 'concluded' || j.status === 'aborting' || j.status === 'null' || j['io-status'] !== 'ok');
      if (bad) throw new MigralabError('MIGRATION', `disk mirror ${bad.device}: ${bad.status}${bad['io-status'] !== 'ok' ? `, I/O ${bad['io-status']}` : ''}${bad.error ? `: ${bad.error}` : ''}`);
      ctx.sample(jobs);
      if (disks.every((d) => ready.has(jobId(d)) || jobs.find((j) => j.device === jobId(d))?.ready)) return;
      // Wake on the next READY event or after one sample period, whichever comes first.
      await source.waitForEvent('BLOCK_JOB_READY', undefined, SAMPLE_MS, { since: seen }).catch(() => {});
    }
  },

  async copied(source) {
    const jobs = await mirrorJobs(source).catch(() => undefined);
    return jobs && jobs.length ? sum(jobs.map((j) => j.offset)) : null;
  },

  async finish(source, dest, disks, tls) {
    // What the mirrors processed in all: the disks once, plus whatever the guest rewrote meanwhile.
    const bytes = sum((await mirrorJobs(source)).map((j) => j.offset));
    for (const d of disks) await source.execute('block-job-cancel', { device: jobId(d) }).catch(() => {});
    await waitJobsGone(source, { sleep: realSleep }, 5000);
    if (tls) await dropTargets(source, disks);
    await dest.execute('nbd-server-stop').catch(() => {});
    return bytes;
  },

  async cancelCopies(source, disks, copyStarted, tls) {
    if (!copyStarted) return;
    for (const d of disks) await source.execute('block-job-cancel', { device: jobId(d), force: true }).catch(() => {});
    await waitJobsGone(source, { sleep: realSleep }, 5000).catch(() => {});
    // the source runs on: a TLS target node left behind would refuse the next attempt's (same name)
    if (tls) await dropTargets(source, disks);
  },
};

export function stepsFor(strategy: 'block' | 'shared'): StorageSteps {
  return strategy === 'block' ? blockSteps : sharedSteps;
}
