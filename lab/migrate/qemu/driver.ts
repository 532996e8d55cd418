/**
 * The `qemu` driver: QEMU processes started by migralab, migrated over QMP.
 *
 * shared: RAM + device state only (`migrate`). block: the disks are copied first
 * (lab/migrate/qemu/storage.ts), then RAM. On any failure the migration is cancelled, the
 * destination removed, and the guest keeps running on the source.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { MigralabError } from '../../errors.ts';
import type { LabNode, StartedLab } from '../../provision/provider.ts';
import { waitForGuestReady } from '../../qemu/guest-shell.ts';
import { waitFor } from '../../time/wait.ts';
import { QemuProcess, self } from '../../qemu/process.ts';
import type { BlockJobInfo, MigrationInfo, QmpEvent } from '../../qemu/qmp.ts';
import { max } from '../../measure/stats.ts';
import { createDisks, diskSizes, releaseLocalDisks, removeDisks } from '../disks.ts';
import {
  MigrationFailed,
  type BootMode,
  type FailureKind,
  type GuestSpec,
  type Instance,
  type LaunchOptions,
  type MigrateOptions,
  type MigrationDriver,
  type MigrationEvents,
  type MigrationFigures,
  type MigrationMarks,
  type MigrationOutcome,
  type MigrationSample,
  type RamDumpComparison,
} from '../types.ts';
import { eventDowntimeMs, readCompletion, type CompletionReading } from './completion.ts';
import { QemuInstance, launchFor } from './instance.ts';
import { discardSnapshot, ensureSnapshot, restoreFrom, snapshotKey, SnapshotLoadError, type Snapshot } from './snapshot.ts';
import { LONG_QMP_MS, SAMPLE_MS, stepsFor, type Qmp, type StorageSteps, type TlsCreds } from './storage.ts';
import type { DiskSpec } from '../../qemu/argv.ts';
import { effectiveTunables, tunablesFor } from './tunables.ts';
import { Watchdog, type Finding, type HealthCheck } from '../watchdog.ts';

export const MIGRATION_PORT = 4444;
export const NBD_PORT = 10809;
/** "Close to the switchover": RAM left to send first drops under this. */
export const SWITCHOVER_NEAR_BYTES = 4 * 1024 * 1024;
/** How long QEMU may take to have its final figures ready after `completed` (QEMU 7.2 computes them late). */
const COMPLETION_READ_MS = 2000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

export class QemuDriver implements MigrationDriver {
  readonly name = 'qemu' as const;
  /** Shapes (snapshot keys) whose restore failed in this process, and why: their guests boot cold. */
  private readonly restoreFailed = new Map<string, string>();

  constructor(
    private readonly lab: StartedLab,
    private readonly opts: { qmpTimeoutMs?: number; boot?: BootMode; progress?: (m: string) => void } = {},
  ) {}

  async launch(guest: GuestSpec, node: LabNode, opts: LaunchOptions = {}): Promise<Instance> {
    const t0 = performance.now();
    let note: string | null = null;
    const failedBefore = this.restoreFailed.get(snapshotKey(guest));
    // ssh hosts boot cold for now: there the tests' sudo run failed now and then to read the
    // template's pid file, and its QEMU kept the guests' tap (closing note of 2026-12-03)
    if (node.transport.kind !== 'local' && (this.opts.boot ?? 'snapshot') === 'snapshot') note = 'booted cold: snapshot boots are used on local nodes only for now';
    else if (failedBefore) note = `not restored from a snapshot (a restore of this shape failed earlier in this run: ${failedBefore}); booted cold`;
    else if ((this.opts.boot ?? 'snapshot') === 'snapshot') {
      let snap: Snapshot | undefined;
      try {
        snap = await ensureSnapshot(this.lab, guest, node, { signal: opts.signal, progress: this.opts.progress });
        await createDisks(guest, node, this.lab.plan);
        const proc = await restoreFrom(this.lab, guest, node, snap, { signal: opts.signal, qmpTimeoutMs: this.opts.qmpTimeoutMs });
        const inst = new QemuInstance(this.lab, guest, node, proc);
        inst.boot = { mode: 'snapshot', ms: performance.now() - t0, snapshotMadeMs: snap.madeMs, note: null };
        return inst;
      } catch (e) {
        if (e instanceof MigralabError && e.code === 'INTERRUPTED') throw e;
        if (opts.signal?.aborted) throw new MigralabError('INTERRUPTED', `interrupted while ${guest.name} started on ${node.name}`, { cause: e });
        // A snapshot that would not load is not kept: the next run makes a new one. Whatever
        // failed, this run boots the later guests of this shape cold rather than pay again.
        if (snap && e instanceof SnapshotLoadError) await discardSnapshot(node, snap);
        this.restoreFailed.set(snapshotKey(guest), (e as Error).message);
        note = `not restored from a snapshot (${(e as Error).message}); booted cold`;
        this.opts.progress?.(`${guest.name}: ${note}`);
      }
    }
    const inst = await this.coldLaunch(guest, node, opts);
    inst.boot = { mode: 'cold', ms: performance.now() - t0, snapshotMadeMs: null, note };
    return inst;
  }

  private async coldLaunch(guest: GuestSpec, node: LabNode, opts: LaunchOptions): Promise<QemuInstance> {
    await createDisks(guest, node, this.lab.plan);
    const launch = launchFor(this.lab, guest, node, { incoming: false });
    const proc = await QemuProcess.start({ node: node.name, transport: node.transport, dir: node.plan.dir, bridge: node.plan.bridge }, launch, this.lab.ledger, {
      owner: self,
      qmpTimeoutMs: this.opts.qmpTimeoutMs,
    });
    try {
      const shell = await waitForGuestReady(launch.ctlSocket, {
        timeoutMs: opts.bootTimeoutMs ?? bootTimeoutFor(guest),
        signal: opts.signal,
        open: () => node.transport.connect(launch.ctlSocket),
      });
      shell.close();
    } catch (e) {
      const tail = await new QemuInstance(this.lab, guest, node, proc).consoleTail(8);
      await proc.quit();
      if (e instanceof MigralabError && e.code === 'INTERRUPTED') throw e;
      throw new MigralabError('LAB', `guest ${guest.name} did not come up on ${node.name}: ${(e as Error).message} (console: ${tail})`);
    }
    return new QemuInstance(this.lab, guest, node, proc);
  }

  releaseNode(guest: GuestSpec, node: LabNode): Promise<void> {
    return releaseLocalDisks(guest, node, this.lab.plan);
  }

  async destroy(guest: GuestSpec): Promise<void> {
    await removeDisks(guest, this.lab.nodes, this.lab.plan);
  }

  async migrate(instance: Instance, destination: LabNode, options: MigrateOptions, events: MigrationEvents = {}): Promise<MigrationOutcome> {
    if (!(instance instanceof QemuInstance)) throw new MigralabError('USAGE', `the qemu driver cannot migrate a ${instance.driver} instance`);
    const guest = instance.guest;
    const source = instance.process;
    const steps = stepsFor(guest.strategy);
    const destLaunch = launchFor(this.lab, guest, destination, { incoming: true, paused: options.ramDump });
    const tPrep = performance.now();
    let dest: QemuProcess | undefined;
    try {
      await steps.prepareDestination(destination.transport, destLaunch.disks, diskSizes(guest));
      dest = await QemuProcess.start({ node: destination.name, transport: destination.transport, dir: destination.plan.dir, bridge: destination.plan.bridge }, destLaunch, this.lab.ledger, {
        owner: self,
        qmpTimeoutMs: this.opts.qmpTimeoutMs,
      });
      const started = dest;
      events.destination?.({ node: destination.name, kill: () => started.proc.signal('SIGKILL'), freeze: (frozen) => started.proc.signal(frozen ? 'SIGSTOP' : 'SIGCONT') });
      const figures = await migrateOverQmp({
        source: source.qmp,
        dest: started.qmp,
        steps,
        disks: destLaunch.disks,
        destAddress: destination.address,
        ...(guest.ports ? { ports: guest.ports } : {}),
        options,
        events,
        prepareStartedAt: tPrep,
        compareRam: () => compareRam(source, started, guest, destination),
        health: healthCheck({ dest: started, from: instance.node, destination, guest, nfsServer: this.lab.plan.nfsServer }),
        ...(guest.strategy === 'shared' ? { watch: (trip: (f: Finding) => void) => watchNfsServer(instance.node, this.lab.plan.nfsServer, trip) } : {}),
        ...(options.tls === 'psk' ? { tls: await pskDirs(instance.node, destination) } : {}),
      });
      return { instance: new QemuInstance(this.lab, guest, destination, started), figures };
    } catch (e) {
      // The connection to the source's QMP was lost (e.g. the ssh connection dropped): a new one, to cancel for real.
      if (!source.qmp.isOpen) {
        const q = await source.reconnect().catch(() => undefined);
        if (q) {
          await q.execute('migrate_cancel').catch(() => {});
          await steps.cancelCopies(q, destLaunch.disks, guest.strategy === 'block').catch(() => {});
          const st = await q.execute<{ status: string }>('query-status').then((x) => x.status).catch(() => undefined);
          // completed before the cancel arrived: the guest runs on the destination now; keep it there
          if (st === 'postmigrate' && dest && (await dest.alive())) {
            await dest.reconnect().catch(() => {});
            const landed = new QemuInstance(this.lab, guest, destination, dest);
            throw new MigrationFailed(`${(e as Error).message}; the migration completed meanwhile: the guest runs on ${destination.name}`, { node: destination.name, status: await dest.status().catch(() => 'unknown') }, 'link-lost', { cause: e, landed });
          }
          if (st && st !== 'running') await q.execute('cont').catch(() => {});
        }
      }
      // Nothing of the destination stays: its process (a hung one is let go first, so it can die) and its disk copies.
      if (dest) {
        await dest.proc.signal('SIGCONT').catch(() => {});
        await dest.kill().catch(() => {});
        await dest.quit().catch(() => {});
      }
      if (guest.strategy === 'block') for (const d of destLaunch.disks) if (d.source.driver === 'file') await destination.transport.remove(d.source.filename).catch(() => {});
      if (e instanceof MigralabError && e.code === 'INTERRUPTED') throw e;
      const status = await source.status().catch(() => 'unknown');
      if (e instanceof MigrationFailed) throw new MigrationFailed(`${e.message}; the guest is still running on ${source.nodeName} (status ${status})`, { node: source.nodeName, status }, e.kind, { cause: e.cause, detectedAfterMs: e.detectedAfterMs ?? undefined });
      // A destination that could not even start on shared storage: is the storage there?
      const lost = !dest && guest.strategy === 'shared' ? await storageLoss(instance.node, this.lab.plan) : undefined;
      if (lost)
        throw new MigrationFailed(`${lost}, so the destination QEMU on ${destination.name} could not open the guest's disk (${(e as Error).message}); the guest is still running on ${source.nodeName} (status ${status})`, { node: source.nodeName, status }, 'storage-lost', { cause: e });
      throw new MigrationFailed(`${(e as Error).message}; the guest is still running on ${source.nodeName} (status ${status})`, { node: source.nodeName, status }, 'unknown', { cause: e });
    }
  }
}

/**
 * What is wrong with a migration that stands still, looked at from the source node: the
 * destination's QEMU gone, the NFS server gone (shared storage), the destination
 * unreachable, or its QEMU not answering QMP (hung).
 */
function healthCheck(o: { dest: QemuProcess; from: LabNode; destination: LabNode; guest: GuestSpec; nfsServer: { name: string; address: string } }): HealthCheck {
  return async () => {
    if (!(await o.dest.alive())) return { kind: 'destination-died', fatal: true, message: `the destination QEMU on ${o.destination.name} is gone` };
    if (o.guest.strategy === 'shared' && (await tcpProbe(o.from, o.nfsServer.address, 2049)) === 'refused')
      return { kind: 'storage-lost', fatal: true, message: `the NFS server on ${o.nfsServer.name} (${o.nfsServer.address}:2049) does not accept connections: the shared storage is gone` };
    const ping = await o.from.transport.run(['ping', '-c', '1', '-W', '1', o.destination.address], { check: false });
    if (ping.exitCode !== 0) return { kind: 'link-lost', fatal: false, message: `${o.from.name} cannot reach ${o.destination.name} (${o.destination.address}): the migration path is down` };
    const answers = await o.dest.qmp.execute('query-status', undefined, { timeoutMs: 1500 }).then(() => true, () => false);
    // A QEMU killed a moment ago can still be in the process table while it exits (unmapping its
    // RAM) though its QMP socket is already closed: given half a second to go, it is gone; a hung one stays.
    if (answers) return undefined;
    const exited = await waitFor('the silent destination QEMU to exit', async () => !(await o.dest.alive()), { timeoutMs: 500, intervalMs: 20 }).catch(() => false);
    if (exited) return { kind: 'destination-died', fatal: true, message: `the destination QEMU on ${o.destination.name} is gone` };
    return { kind: 'destination-hung', fatal: false, message: `the destination QEMU on ${o.destination.name} does not answer QMP: it hangs` };
  };
}

/**
 * The pre-shared key's directory on both nodes (`tls/keys.psk` in each node's directory,
 * 0600): one key per lab, made the first time a TLS migration needs it, the same on both sides.
 */
async function pskDirs(from: LabNode, to: LabNode): Promise<{ sourceDir: string; destDir: string }> {
  const dir = (n: LabNode) => join(n.plan.dir, 'tls');
  const valid = (text: string) => (new RegExp(`^${PSK_IDENTITY}:[0-9a-f]{64}$`).test(text.trim()) ? text.trim() : undefined);
  const read = (n: LabNode) => n.transport.readFile(join(dir(n), 'keys.psk')).then((b) => valid(b.toString()), () => undefined);
  const had = [await read(from), await read(to)];
  const line = had[0] ?? had[1] ?? `${PSK_IDENTITY}:${randomBytes(32).toString('hex')}`;
  for (const [i, n] of [from, to].entries()) {
    if (had[i] === line) continue;
    await n.transport.mkdir(dir(n), { mode: 0o700 });
    await n.transport.writeFile(join(dir(n), 'keys.psk'), `${line}\n`, { mode: 0o600 });
  }
  return { sourceDir: dir(from), destDir: dir(to) };
}

/** The ids of the TLS credential objects in every QEMU of ours; the PSK identity. */
export const TLS_IDS: TlsCreds = { server: 'mltls-server', client: 'mltls-client' };
export const PSK_IDENTITY = 'migralab';

/**
 * Adds the destination's server and the source's client tls-creds-psk objects (a source
 * that was a TLS client before keeps its object: the same directory, the same key).
 */
async function addTlsCreds(sq: Qmp, dq: Qmp, dirs: { sourceDir: string; destDir: string }): Promise<TlsCreds> {
  await dq.execute('object-add', { 'qom-type': 'tls-creds-psk', id: TLS_IDS.server, endpoint: 'server', dir: dirs.destDir });
  const have = await sq.execute<{ name: string }[]>('qom-list', { path: '/objects' }).catch(() => []);
  if (!(Array.isArray(have) && have.some((o) => o.name === TLS_IDS.client)))
    await sq.execute('object-add', { 'qom-type': 'tls-creds-psk', id: TLS_IDS.client, endpoint: 'client', dir: dirs.sourceDir, username: PSK_IDENTITY });
  return TLS_IDS;
}

/**
 * Why shared storage cannot be opened from `from`, when that is so: the NFS server refuses
 * connections, or (NFSv3) rpcbind does, and a client that connects anew cannot look up the
 * server's ports. An NFS session already open does not need rpcbind: a migration under way
 * rides out its death, the next destination to open the disk does not.
 */
async function storageLoss(from: LabNode, plan: { nfsServer: { name: string; address: string }; nfsVersion: 3 | 4 }): Promise<string | undefined> {
  const { name, address } = plan.nfsServer;
  if ((await tcpProbe(from, address, 2049)) === 'refused') return `the NFS server on ${name} (${address}:2049) refuses connections: the shared storage is gone`;
  if (plan.nfsVersion === 3 && (await tcpProbe(from, address, 111)) === 'refused')
    return `rpcbind on ${name} (${address}:111) refuses connections: an NFSv3 client cannot look up the NFS server's ports`;
  return undefined;
}

/**
 * One TCP connection attempt from `from` (1 s at most): `open`, `refused` (the host answered:
 * nothing listens there), or `silent` (no answer: the path is down, which says nothing about
 * the server; a node that is the NFS server and the destination at once loses both to a cut link).
 */
async function tcpProbe(from: LabNode, addr: string, port: number): Promise<'open' | 'refused' | 'silent'> {
  const r = await from.transport.run(['timeout', '1', 'bash', '-c', `echo -n >/dev/tcp/${addr}/${port}`], { check: false });
  return r.exitCode === 0 ? 'open' : r.exitCode === 124 ? 'silent' : 'refused';
}

/**
 * Shared storage watched without polling: one idle TCP connection from the source node to
 * the NFS server's port, held open during the migration. The server dying closes it; a new
 * connection being refused confirms the loss (an idle connection the server closed is just
 * opened again).
 */
function watchNfsServer(from: LabNode, server: { name: string; address: string }, trip: (f: Finding) => void): () => void {
  let stopped = false;
  let current: ReturnType<LabNode['transport']['stream']> | undefined;
  // a connection that cannot even be opened only counts as lost when the server refused it (exit 3 comes from a refusal: a silent path blocks the connect)
  const lost = (why: string) => trip({ kind: 'storage-lost', fatal: true, message: `the NFS server on ${server.name} (${server.address}:2049) ${why}: the shared storage is gone` });
  const hold = () => {
    if (stopped) return;
    // exec: the process the stream kills is the holder itself. A cat forked by bash outlived the
    // kill, kept the connection and its stderr pipe open, and `migralab run` on a lab that was
    // already up never exited (until ganesha went down).
    const p = from.transport.stream(['bash', '-c', `exec 3<>/dev/tcp/${server.address}/2049 || exit 3; exec cat <&3 >/dev/null`]);
    current = p;
    void p.exited.then(async (x) => {
      if (stopped) return;
      if (x.exitCode === 3) return lost('refuses connections');
      if ((await tcpProbe(from, server.address, 2049)) === 'refused') return lost('closed its connection and refuses new ones');
      hold();
    });
  };
  hold();
  return () => {
    stopped = true;
    current?.kill('SIGKILL');
  };
}

export interface QmpMigration {
  source: Qmp;
  dest: Qmp;
  steps: StorageSteps;
  /** The destination's disks (block: exported and mirrored into). */
  disks: readonly DiskSpec[];
  destAddress: string;
  /** The destination's listening ports (default MIGRATION_PORT and NBD_PORT; concurrent migrations to one node each have their own). */
  ports?: { migration: number; nbd: number };
  options: MigrateOptions;
  events: MigrationEvents;
  /** performance.now() when preparing the destination began (prepareMs counts from there). */
  prepareStartedAt: number;
  /** With options.ramDump: compare both sides' RAM while both are paused. */
  compareRam?: () => Promise<RamDumpComparison>;
  /** What is wrong when the migration stops making progress (lab/migrate/watchdog.ts). */
  health?: HealthCheck;
  /** Starts watchers that report a confirmed failure at once (from the request); returns their stop. */
  watch?: (trip: (f: Finding) => void) => () => void;
  /** security.tls psk: the credentials' directory on each side (the same pre-shared key in both). */
  tls?: { sourceDir: string; destDir: string };
}

/**
 * The QMP sequence of one migration, between a running source and a started destination
 * (`-incoming defer`): capabilities and parameters on both sides, migrate-incoming, the
 * storage steps (block: NBD export, mirrors, wait until every mirror is ready), migrate,
 * samples every 50 ms, QEMU's final figures, the destination's RESUME, then the storage
 * clean-up. On failure: migrate_cancel, the storage roll-back, the source running again;
 * it throws MigrationFailed (or INTERRUPTED). Unit-tested against scripted QMP peers.
 */
export async function migrateOverQmp(m: QmpMigration): Promise<MigrationFigures> {
  const { source: sq, dest: dq, steps, disks, options, events } = m;
  const destAddr = m.destAddress;
  const migrationPort = m.ports?.migration ?? MIGRATION_PORT;
  const nbdPort = m.ports?.nbd ?? NBD_PORT;
  let copyStarted = false;
  let t0: number | undefined;
  const deadline = performance.now() + options.timeoutMs;
  const check = (what: string) => {
    if (watchdog.fired) throw new MigralabError('MIGRATION', watchdog.fired.message);
    if (options.signal?.aborted) throw new MigralabError('INTERRUPTED', `interrupted during ${what}`);
    if (performance.now() > deadline) throw new Timeout(`timed out after ${options.timeoutMs} ms during ${what}`);
  };
  const watchdog = new Watchdog(m.health, options.stallMs);
  let stopWatchers: (() => void) | undefined;
  const body = async (): Promise<MigrationFigures> => {
      const destEvents = dq.eventCursor();
      const { caps, params } = tunablesFor(options.tunables);
      const tls = m.tls ? await addTlsCreds(sq, dq, m.tls) : undefined;
      // Capabilities that change the stream (multifd, postcopy) must match on both sides, before migrate-incoming.
      await dq.execute('migrate-set-capabilities', { capabilities: caps.filter((c) => c.capability !== 'auto-converge') });
      if (params['multifd-channels'] !== undefined) await dq.execute('migrate-set-parameters', { 'multifd-channels': params['multifd-channels'] });
      if (tls) await dq.execute('migrate-set-parameters', { 'tls-creds': tls.server });
      await dq.execute('migrate-incoming', { uri: `tcp:${destAddr}:${migrationPort}` });
      await steps.exportDisks(dq, destAddr, nbdPort, disks, tls);
      await sq.execute('migrate-set-capabilities', { capabilities: caps });
      if (Object.keys(params).length) await sq.execute('migrate-set-parameters', params);
      // Set either way: a source that arrived by a TLS migration still has that migration's credentials set, cleared when this one has none.
      await sq.execute('migrate-set-parameters', { 'tls-creds': tls?.client ?? '' });
      const tunables = await effectiveTunables(sq);
      if (tunables.tls !== Boolean(tls)) throw new MigralabError('MIGRATION', `the source's tls-creds ${tunables.tls ? 'are set' : 'are not set'} though this migration is ${tls ? '' : 'not '}over TLS`);
      const prepareMs = performance.now() - m.prepareStartedAt;

      const samples: MigrationSample[] = [];
      const marks: MigrationMarks = { mirrorReady: null, ramStart: null, postcopyStart: null, completed: null, destRunning: null, cleanedUp: null };
      const notes: string[] = [];
      const srcEvents = sq.eventCursor();
      t0 = performance.now();
      watchdog.arm();
      stopWatchers = m.watch?.((f) => watchdog.trip(f));
      // epoch ms on the same clock as since(), so QEMU's event timestamps line up with the marks
      const startedAt = performance.timeOrigin + t0;
      const since = () => performance.now() - t0!;

      if (steps.strategy === 'block') {
        events.request?.(`QMP blockdev-mirror of ${disks.map((d) => d.nodeName).join(', ')} to nbd://${destAddr}:${nbdPort} (copy-mode ${options.copyMode}), on the source`);
        events.phase?.('mirror', 0);
        copyStarted = true;
        await steps.copy(sq, destAddr, nbdPort, disks, options.copyMode, {
          since,
          check,
          sleep,
          sample: (jobs: BlockJobInfo[]) => {
            const done = sum(jobs.map((j) => j.offset));
            const total = sum(jobs.map((j) => j.len));
            samples.push({ t: since(), phase: 'mirror', diskDone: done, diskRemaining: total - done, ramTransferred: null, ramRemaining: null, dirtyBytesPerSec: null, mbps: null, iterations: null });
            events.progress?.({ phase: 'mirror', done, total });
            watchdog.progressed(done);
          },
        }, tls);
        marks.mirrorReady = since();
      }

      const terminal = (ev: QmpEvent) => ['completed', 'failed', 'cancelled'].includes((ev.data as { status: string }).status);
      const completed = sq.waitForEvent('MIGRATION', terminal, options.timeoutMs, { since: srcEvents });
      completed.catch(() => {});
      let finalStatus: string | undefined;
      let endT = 0;
      completed.then(
        (ev) => {
          endT = performance.now();
          finalStatus = (ev.data as { status: string }).status;
        },
        () => {},
      );
      marks.ramStart = since();
      events.request?.(`QMP migrate {"uri": "tcp:${destAddr}:${migrationPort}"}, on the source`);
      events.phase?.('ram', marks.ramStart);
      await sq.execute('migrate', { uri: `tcp:${destAddr}:${migrationPort}` }, { timeoutMs: LONG_QMP_MS });
      let near = false;
      for (;;) {
        if (finalStatus) break;
        check('the RAM copy');
        const info = await sq.execute<MigrationInfo>('query-migrate');
        if (info.status === 'failed' || info.status === 'cancelled') {
          finalStatus = info.status;
          break;
        }
        const diskDone = steps.strategy === 'block' ? await steps.copied(sq) : null;
        const ram = info.ram;
        watchdog.progressed((ram?.transferred ?? 0) + (diskDone ?? 0));
        // a stale `completed` (this QEMU's own incoming migration) is not a sample of this one
        if (info.status !== 'completed' && info.status !== 'none') {
          const pageSize = ram?.['page-size'] ?? 4096;
          samples.push({
            t: since(),
            phase: info.status === 'postcopy-active' ? 'postcopy' : info.status === 'device' ? 'switchover' : 'ram',
            diskDone,
            diskRemaining: null,
            ramTransferred: ram?.transferred ?? null,
            ramRemaining: ram?.remaining ?? null,
            dirtyBytesPerSec: ram?.['dirty-pages-rate'] !== undefined ? ram['dirty-pages-rate'] * pageSize : null,
            mbps: ram?.mbps ?? null,
            iterations: ram?.['dirty-sync-count'] ?? null,
          });
          if (ram) events.progress?.({ phase: 'ram', done: ram.transferred, total: ram.transferred + ram.remaining });
          if (!near && ram && ram.transferred > 0 && ram.remaining < SWITCHOVER_NEAR_BYTES) {
            near = true;
            events.phase?.('switchover-near', since());
          }
        }
        // Post-copy: switch once the first full pass over RAM has been sent.
        if (options.tunables.postcopy && marks.postcopyStart === null && info.status === 'active' && (ram?.['dirty-sync-count'] ?? 0) >= 2) {
          await sq.execute('migrate-start-postcopy').catch(() => {});
          marks.postcopyStart = since();
        }
        await Promise.race([completed.catch(() => {}), sleep(SAMPLE_MS)]);
      }
      if (finalStatus !== 'completed') {
        const why = (await sq.execute<MigrationInfo>('query-migrate').catch(() => undefined))?.['error-desc'];
        throw new MigralabError('MIGRATION', `migration ${finalStatus}${why ? `: ${why}` : ''}`);
      }
      watchdog.stop();
      stopWatchers?.();
      const durationMs = endT - t0;
      marks.completed = durationMs;
      // migrate-start-postcopy that lost the race with completion: post-copy never ran.
      if (marks.postcopyStart !== null && marks.postcopyStart >= durationMs) marks.postcopyStart = null;
      const completedAt = startedAt + durationMs;

      const reading = await readFinalFigures(sq);
      notes.push(...reading.notes);
      const stop = sq.eventsSince(srcEvents).find((e) => e.event === 'STOP');

      let ramDump: RamDumpComparison | undefined;
      if (options.ramDump && m.compareRam) {
        ramDump = await m.compareRam();
        notes.push(`RAM dump comparison took ${ramDump.tookMs.toFixed(0)} ms with both sides paused: this iteration's interruption is not comparable for timing`);
        await dq.execute('cont');
      }
      // The source's `completed` is not the guest running again: the destination may still
      // be loading device state. Its RESUME event (QEMU's own timestamp, same host clock) says when it ran.
      const resumed = await dq.waitForEvent('RESUME', undefined, 10_000, { since: destEvents }).catch(() => undefined);
      marks.destRunning = resumed ? epochOf(resumed) - startedAt : null;
      if (!resumed) notes.push('the destination sent no RESUME event within 10 s of completion');
      const evDowntime = ramDump ? null : eventDowntimeMs(stop?.timestamp, resumed?.timestamp);
      if (!stop) notes.push('the source sent no STOP event: event downtime not known');

      const diskBytes = await steps.finish(sq, dq, disks, tls);
      marks.cleanedUp = since();
      return {
        durationMs,
        prepareMs,
        mirrorMs: marks.mirrorReady,
        startedAt,
        completedAt,
        samples,
        marks,
        tunables,
        qemu: {
          ...reading.figures,
          diskBytes,
          dirtyBytesPerSecMax: max(samples.map((x) => x.dirtyBytesPerSec)) ?? null,
          eventDowntimeMs: evDowntime,
        },
        ...(ramDump ? { ramDump } : {}),
        notes,
      };
  };
  try {
    const running = body();
    running.catch(() => {});
    return await Promise.race([running, watchdog.failed]);
  } catch (caught) {
    watchdog.stop();
    stopWatchers?.();
    const detectedAfterMs = t0 !== undefined ? performance.now() - t0 : undefined;
    const fired = watchdog.fired && caught === watchdog.fired ? watchdog.fired : undefined;
    const e = fired ? new MigralabError('MIGRATION', fired.message) : caught;
    // What went wrong, from what can be seen now (the watchdog may have found it already).
    const finding = fired ?? (t0 !== undefined && !(e instanceof MigralabError && e.code === 'INTERRUPTED') ? await m.health?.().catch(() => undefined) : undefined);
    await sq.execute('migrate_cancel').catch(() => {});
    await steps.cancelCopies(sq, disks, copyStarted, m.tls ? TLS_IDS : undefined).catch(() => {});
    // A cancelled migration resumes the source by itself; make sure of it.
    const status = await sq.execute<{ status: string }>('query-status').then((s) => s.status).catch(() => undefined);
    if (status && status !== 'running') await sq.execute('cont').catch(() => {});
    if (e instanceof MigralabError && e.code === 'INTERRUPTED') throw e;
    const kind: FailureKind = finding?.kind ?? (e instanceof Timeout ? 'timeout' : /No space left on device/i.test((e as Error).message) ? 'disk-full' : 'unknown');
    const message = finding && !fired ? `${(e as Error).message} (${finding.message})` : (e as Error).message;
    throw new MigrationFailed(message, { node: 'source', status: status ?? 'unknown' }, kind, { cause: e, detectedAfterMs });
  }
}

class Timeout extends MigralabError {
  constructor(message: string) {
    super('MIGRATION', message);
  }
}

function epochOf(ev: QmpEvent): number {
  return ev.timestamp.seconds * 1000 + ev.timestamp.microseconds / 1000;
}

/** A deadline for the boot that grows with the guest under TCG (its memory is touched page by page). */
export function bootTimeoutFor(guest: Pick<GuestSpec, 'memoryBytes' | 'accelerator'>): number {
  const gib = guest.memoryBytes / 1024 ** 3;
  return Math.round((guest.accelerator === 'tcg' ? 60_000 : 30_000) + gib * 30_000);
}

/**
 * QEMU's own totals: from a `completed` reply once the source is in `postmigrate`, retried
 * briefly until the times are there (lab/migrate/qemu/completion.ts).
 */
async function readFinalFigures(q: Qmp): Promise<CompletionReading> {
  const end = performance.now() + COMPLETION_READ_MS;
  let last: CompletionReading | undefined;
  for (;;) {
    const status = (await q.execute<{ status: string }>('query-status').catch(() => ({ status: 'unknown' }))).status;
    const info = await q.execute<MigrationInfo>('query-migrate').catch(() => undefined);
    if (info) {
      last = readCompletion(info, status);
      if (last.final) return last;
    }
    if (performance.now() > end) break;
    await sleep(10);
  }
  return last ?? readCompletion({}, 'unknown');
}


/** pmemsave of both sides' guest RAM, compared page by page (both paused: source postmigrate, destination -S). */
async function compareRam(source: QemuProcess, dest: QemuProcess, guest: GuestSpec, destination: LabNode): Promise<RamDumpComparison> {
  const t = performance.now();
  const srcFile = `${source.launch.pidFile.replace(/qemu\.pid$/, '')}ram.dump`;
  const dstFile = `${dest.launch.pidFile.replace(/qemu\.pid$/, '')}ram.dump`;
  const bytes = guest.memoryBytes;
  try {
    await source.qmp.execute('pmemsave', { val: 0, size: bytes, filename: srcFile }, { timeoutMs: LONG_QMP_MS });
    await dest.qmp.execute('pmemsave', { val: 0, size: bytes, filename: dstFile }, { timeoutMs: LONG_QMP_MS });
    const a = await source.placement.transport.readFile(srcFile);
    const b = await destination.transport.readFile(dstFile);
    const cmp = comparePages(a, b);
    return { bytes, ...cmp, tookMs: performance.now() - t };
  } finally {
    await source.placement.transport.remove(srcFile).catch(() => {});
    await destination.transport.remove(dstFile).catch(() => {});
  }
}

/** Pages (4 KiB) that differ between two RAM images (pure). */
export function comparePages(a: Buffer, b: Buffer, page = 4096): { pagesDiffering: number; firstPages: number[] } {
  const n = Math.max(a.length, b.length);
  let differing = 0;
  const first: number[] = [];
  for (let off = 0, i = 0; off < n; off += page, i++) {
    const x = a.subarray(off, off + page);
    const y = b.subarray(off, off + page);
    if (x.length !== y.length || !x.equals(y)) {
      differing++;
      if (first.length < 16) first.push(i);
    }
  }
  return { pagesDiffering: differing, firstPages: first };
}
