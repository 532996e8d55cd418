/**
 * Booting a guest from a booted snapshot instead of from its kernel: a TCG boot of the guest
 * image takes 5 s and more, a restore well under one.
 *
 * The snapshot is made once per shape (QEMU build, image, memory, disk size, accelerator,
 * device set) and cached next to the guest image on the node: a template guest with a
 * placeholder identity and an empty data disk is booted, its config drive unmounted, then
 * stopped and migrated to a file. A guest "boots" by starting its QEMU with `-incoming
 * defer`, its own disks and config drive, and `migrate-incoming` from that file; then
 * `mlidentity restore` in the guest (lab/image/init.ts) gives it its identity as a boot does
 * (config drive, MAC, address, route, hostname; the clock set from the host's) after dropping every
 * cached block of the disks (they are this guest's now, not the template's) and mixing fresh
 * entropy into its pool.
 *
 * A restore that fails is reported to the caller, which boots the guest cold instead; a
 * snapshot that does not load is deleted, so the next run makes a new one.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { dirname, join } from 'node:path';
import { MigralabError } from '../../errors.ts';
import { kernelCmdline } from '../../image/build.ts';
import { IDENTITY_PROGRAM } from '../../image/init.ts';
import { CONFIG_DRIVE_BYTES } from '../../image/configdrive.ts';
import { qemuArgv } from '../../qemu/argv.ts';
import { GuestShell, waitForGuestReady } from '../../qemu/guest-shell.ts';
import { QemuProcess, self } from '../../qemu/process.ts';
import { buildArgvPrefix } from '../../qemu/builds.ts';
import { abortable, waitFor } from '../../time/wait.ts';
import type { MigrationInfo, QmpEvent, QmpEventCursor } from '../../qemu/qmp.ts';
import { cachedFile, once, pruneCache } from '../cache.ts';
import { hostNowMs } from '../../guest/probe.ts';
import type { LabNode, StartedLab } from '../../provision/provider.ts';
import type { GuestSpec } from '../types.ts';
import { createDisks, removeDisks } from '../disks.ts';
import { launchFor } from './instance.ts';

/** Bumped when what a snapshot holds or how it is made changes. */
const SNAPSHOT_FORMAT = 2;
/** A link-local address no lab uses: the templates' placeholder address. */
const TEMPLATE_IP = '169.254.77.1';
/** Snapshots kept per image directory on a node; the least recently used go first. */
const KEEP = 8;
/** The name every snapshot template's QEMU runs under (one at a time per node). */
export const SNAPSHOT_TEMPLATE_NAME = 'ml-snapshot';

export interface Snapshot {
  file: string;
  key: string;
  /** How long making it took (ms), or null when it was already cached. */
  madeMs: number | null;
}

/** Where a node keeps the snapshots of a guest image: beside the image (on that node). */
export function snapshotDir(guest: GuestSpec): string {
  return join(dirname(guest.image.kernel), 'snapshots');
}

/** The snapshot file of a guest's shape on its node: `<memory>M-<key>.vmstate`, the memory size first for people listing the folder. */
export function snapshotFile(guest: GuestSpec): string {
  return join(snapshotDir(guest), `${Math.round(guest.memoryBytes / 2 ** 20)}M-${snapshotKey(guest)}.vmstate`);
}

/** The template of a guest's shape: its size, build and image, with a placeholder identity and no data. */
export function templateSpec(guest: GuestSpec): GuestSpec {
  const { ports: _ports, ...rest } = guest;
  // One name for every template (a node makes one at a time: oneTemplateAtATime); the MAC is
  // made from the key. (Named after the key, the sudo-over-ssh run of the tests failed to read
  // the template's pid file; not understood yet, see the closing note of 2026-12-03.)
  const key = snapshotKey(guest);
  const mac = `02:6d:6c:${key.slice(0, 2)}:${key.slice(2, 4)}:${key.slice(4, 6)}`;
  return { ...rest, name: SNAPSHOT_TEMPLATE_NAME, strategy: 'block', uuid: randomUUID(), ip: TEMPLATE_IP, prefix: 32, mac, diskDataBytes: 0 };
}

/** Loading a snapshot into a guest's QEMU failed: the snapshot itself is suspect (not the guest's disks, shell or identity). */
export class SnapshotLoadError extends MigralabError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('LAB', message, options);
  }
}

/**
 * What a snapshot must match to load into a guest's QEMU: the template's command line with its
 * per-instance paths and identity taken out (so a device added to lab/qemu/argv.ts makes a new
 * key), the build's version and the image.
 */
export function snapshotKey(guest: GuestSpec): string {
  const argv = qemuArgv({
    name: 'x',
    qemu: buildArgvPrefix(guest.build),
    memoryBytes: guest.memoryBytes,
    accelerator: guest.accelerator,
    kernel: 'kernel',
    initrd: 'initrd',
    append: kernelCmdline(),
    disks: [
      { nodeName: 'disk0', format: 'qcow2', source: { driver: 'file', filename: 'disk0' } },
      { nodeName: 'config0', format: 'raw', source: { driver: 'file', filename: 'config0' } },
    ],
    mac: 'mac',
    tap: 'tap',
    qmpSocket: 'qmp',
    ctlSocket: 'ctl',
    consoleLog: 'console',
    pidFile: 'pid',
    incoming: true,
  });
  const h = createHash('sha256');
  h.update(JSON.stringify({ format: SNAPSHOT_FORMAT, argv, version: guest.build.version, image: guest.image.hash, diskBytes: guest.diskBytes, config: CONFIG_DRIVE_BYTES }));
  return h.digest('hex').slice(0, 24);
}

/** The host's wall clock (as clockOffset reads it) in ns since the epoch, to the µs. */
function hostNowNs(): string {
  return (BigInt(Math.round(hostNowMs() * 1000)) * 1000n).toString();
}

/** A path safe inside a single-quoted sh word (the exec: migration URI runs through sh). */
function shQuote(path: string): string {
  if (!/^[A-Za-z0-9_./+-]+$/.test(path)) throw new MigralabError('LAB', `snapshot path ${JSON.stringify(path)} has characters the migration URI cannot carry`);
  return `'${path}'`;
}

/**
 * Turns on QEMU's MIGRATION events on `q` and returns the cursor to wait for them from (the
 * template's save and a restore's load: waitMigration).
 */
async function migrationEvents(q: QemuProcess['qmp']): Promise<QmpEventCursor> {
  await q.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
  return q.eventCursor();
}

/** Waits for the migration on `q` to end (its MIGRATION event); one that failed or was cancelled throws with QEMU's reason. */
async function waitMigration(q: QemuProcess['qmp'], since: QmpEventCursor, what: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
  const terminal = (ev: QmpEvent) => ['completed', 'failed', 'cancelled'].includes((ev.data as { status: string }).status);
  const ev = await abortable(q.waitForEvent('MIGRATION', terminal, timeoutMs, { since }), signal, what);
  const status = (ev.data as { status: string }).status;
  if (status === 'completed') return;
  const why = (await q.execute<MigrationInfo>('query-migrate').catch(() => undefined))?.['error-desc'];
  throw new MigralabError('LAB', `${what}: migration ${status}${why ? `: ${why}` : ''}`);
}

/**
 * Snapshots being made by this process, by node and key: guests booting at once wait for the
 * same one.
 */
const making = new WeakMap<StartedLab, Map<string, Promise<Snapshot>>>();

/** The snapshot of `guest`'s shape on `node`, made now (a cold boot of a template) if it is not cached. */
export function ensureSnapshot(lab: StartedLab, guest: GuestSpec, node: LabNode, opts: { signal?: AbortSignal; progress?: (m: string) => void } = {}): Promise<Snapshot> {
  let ofLab = making.get(lab);
  if (!ofLab) making.set(lab, (ofLab = new Map()));
  return once(ofLab, `${node.name}:${snapshotFile(guest)}`, () => findOrMake(lab, guest, node, opts));
}

async function findOrMake(lab: StartedLab, guest: GuestSpec, node: LabNode, opts: { signal?: AbortSignal; progress?: (m: string) => void }): Promise<Snapshot> {
  const key = snapshotKey(guest);
  const file = snapshotFile(guest);
  if (await cachedFile(node, file)) return { file, key, madeMs: null };
  return oneTemplateAtATime(lab, node, async () => {
    // made by the template before this one's turn (another guest of this shape in another lab object)
    if (await cachedFile(node, file)) return { file, key, madeMs: null };
    return makeSnapshot(lab, guest, node, key, opts);
  });
}

/** Templates share one name and run directory on a node: one is made at a time there (per lab). */
const templateTurns = new WeakMap<StartedLab, Map<string, Promise<unknown>>>();
function oneTemplateAtATime<T>(lab: StartedLab, node: LabNode, f: () => Promise<T>): Promise<T> {
  let m = templateTurns.get(lab);
  if (!m) templateTurns.set(lab, (m = new Map()));
  const p = (m.get(node.name) ?? Promise.resolve()).then(f, f);
  m.set(node.name, p.catch(() => {}));
  return p;
}

async function makeSnapshot(lab: StartedLab, guest: GuestSpec, node: LabNode, key: string, opts: { signal?: AbortSignal; progress?: (m: string) => void }): Promise<Snapshot> {
  const t = node.transport;
  const dir = snapshotDir(guest);
  const file = snapshotFile(guest);
  const t0 = performance.now();
  opts.progress?.(`snapshot: booting a template ${Math.round(guest.memoryBytes / 2 ** 20)} MiB guest on ${node.name} once (cached for later guests of this shape)`);
  await t.mkdir(dir);
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(3).toString('hex')}`;
  const spec = templateSpec(guest);
  const launch = launchFor(lab, spec, node, { incoming: false });
  let proc: QemuProcess | undefined;
  try {
    await createDisks(spec, node, lab.plan);
    proc = await QemuProcess.start({ node: node.name, transport: t, dir: node.plan.dir, bridge: node.plan.bridge }, launch, lab.ledger, { owner: self });
    const shell = await waitForGuestReady(launch.ctlSocket, { timeoutMs: 180_000, signal: opts.signal, open: () => t.connect(launch.ctlSocket) });
    try {
      // What a restore must not inherit: the template's config drive mounted, its dirty pages.
      // What it should: a kernel random pool that is ready. The first read of /dev/urandom in
      // a fresh guest waits for jitter entropy (about 1 s under TCG); a clone would pay that
      // again in its first iteration (its restore then mixes fresh bytes into the pool).
      const r = await shell.exec(`head -c 16 /dev/urandom >/dev/null && umount /mnt/config && sync`, { timeoutMs: 30_000, signal: opts.signal });
      if (r.status !== 0) throw new MigralabError('LAB', `snapshot template: umount of its config drive failed: ${r.output.trim()}`);
    } finally {
      shell.close();
    }
    await proc.qmp.execute('stop');
    const since = await migrationEvents(proc.qmp);
    // cat marks the file written once it has all of it (it ends as well when a migration is cut
    // short: only a completed migration and the mark together make it the snapshot)
    await proc.qmp.execute('migrate', { uri: `exec:cat >${shQuote(tmp)} && : >${shQuote(`${tmp}.whole`)}` });
    await waitMigration(proc.qmp, since, `the template's state to be written to ${tmp}`, 120_000, opts.signal);
    await waitFor(`${tmp} to be written whole`, async () => (await t.run(['test', '-e', `${tmp}.whole`], { check: false })).exitCode === 0, { timeoutMs: 30_000, intervalMs: 20, signal: opts.signal });
    await t.run(['mv', '-f', tmp, file]);
    await proc.quit();
    proc = undefined;
    await pruneCache(node, dir, '*.vmstate', KEEP);
    const madeMs = performance.now() - t0;
    opts.progress?.(`snapshot: ${key} made in ${(madeMs / 1000).toFixed(1)} s`);
    return { file, key, madeMs };
  } catch (e) {
    if (opts.signal?.aborted) throw new MigralabError('INTERRUPTED', `interrupted while the snapshot of ${Math.round(guest.memoryBytes / 2 ** 20)} MiB guests was made on ${node.name}`);
    throw e;
  } finally {
    if (proc) await proc.quit().catch(() => {});
    await t.run(['rm', '-f', tmp, `${tmp}.whole`], { check: false }).catch(() => {});
    await removeDisks(spec, [node], lab.plan).catch(() => {});
  }
}

/**
 * Starts `guest` on `node` from `snap`: its QEMU with its own disks (already created), the
 * snapshot's state loaded, the guest running and given its identity. Throws (with nothing of
 * the new QEMU left) when any step fails.
 */
export async function restoreFrom(lab: StartedLab, guest: GuestSpec, node: LabNode, snap: Snapshot, opts: { signal?: AbortSignal; qmpTimeoutMs?: number } = {}): Promise<QemuProcess> {
  const t = node.transport;
  const launch = launchFor(lab, guest, node, { incoming: true });
  const proc = await QemuProcess.start({ node: node.name, transport: t, dir: node.plan.dir, bridge: node.plan.bridge }, launch, lab.ledger, { owner: self, qmpTimeoutMs: opts.qmpTimeoutMs });
  try {
    try {
      const since = await migrationEvents(proc.qmp);
      await proc.qmp.execute('migrate-incoming', { uri: `exec:cat ${shQuote(snap.file)}` });
      await waitMigration(proc.qmp, since, `${guest.name}'s state to load from ${snap.file}`, 60_000, opts.signal);
      const st = await proc.qmp.execute<{ status: string }>('query-status');
      if (st.status === 'paused' || st.status === 'prelaunch') await proc.qmp.execute('cont');
      else if (st.status !== 'running') throw new MigralabError('LAB', `${guest.name} restored from ${snap.file} is ${st.status}`);
    } catch (e) {
      if (opts.signal?.aborted || (e instanceof MigralabError && e.code === 'INTERRUPTED')) throw e;
      throw new SnapshotLoadError((e as Error).message, { cause: e });
    }
    await using sh = await GuestShell.connect(launch.ctlSocket, { timeoutMs: 20_000, signal: opts.signal, open: () => t.connect(launch.ctlSocket) });
    // The guest's clock is the template's: the host's time now, as a boot reads the RTC (off by the shell's latency, a boot by up to a second)
    const clock = await sh.exec(`mlprobe settime ${hostNowNs()}`, { timeoutMs: 10_000, signal: opts.signal });
    if (clock.status !== 0) throw new MigralabError('LAB', `${guest.name} restored from a snapshot: setting its clock failed: ${clock.output.trim()}`);
    const r = await sh.exec(`/bin/${IDENTITY_PROGRAM} restore ${randomBytes(32).toString('hex')}`, { timeoutMs: 30_000, signal: opts.signal });
    const line = (r.output.trim().split('\n').pop() ?? '').trim();
    if (r.status !== 0 || line !== `MIGRALAB-READY ${guest.name}`) throw new MigralabError('LAB', `${guest.name} restored from a snapshot did not take its identity: ${r.output.trim() || `exit ${r.status}`}`);
    return proc;
  } catch (e) {
    await proc.quit().catch(() => {});
    if (opts.signal?.aborted) throw new MigralabError('INTERRUPTED', `interrupted while ${guest.name} was restored from a snapshot`);
    throw e;
  }
}

/** A snapshot that did not load is removed: the next guest of its shape makes a new one. */
export async function discardSnapshot(node: LabNode, snap: Snapshot): Promise<void> {
  await node.transport.remove(snap.file).catch(() => {});
}
