/**
 * The `libvirt` driver: the tutorial's own stack. Guests are transient libvirt domains
 * (`virsh create`) on each node's libvirtd (lab/migrate/libvirt/daemon.ts); a migration is
 *
 *   virsh migrate --live --p2p [--copy-storage-all] --verbose --xml DEST.xml DOMAIN qemu+tcp://<destination host name>/system
 *
 * run on the source node, by host name as the tutorial does (the nodes' /etc/hosts).
 * Block: the destination's disks are pre-created at their paths first, as nova does.
 * Shared: both sides open the disk on the controller's export through QEMU's NFS client
 * (a network disk), which libvirt knows to be shared storage (no --unsafe). While it
 * runs, libvirt's job statistics (`virsh domjobinfo --rawstats`) are sampled for the
 * timeline and the progress; after it, `virsh domjobinfo --completed` on the destination
 * gives libvirt's own figures (libvirt.*).
 */
import { join, dirname } from 'node:path';
import { mkdir, writeFile, chmod } from 'node:fs/promises';
import { MigralabError } from '../../errors.ts';
import type { LabNode, StartedLab } from '../../provision/provider.ts';
import { kernelCmdline } from '../../image/build.ts';
import type { DiskSpec } from '../../qemu/argv.ts';
import type { QemuBuild } from '../../qemu/builds.ts';
import { GuestShell, waitForGuestReady } from '../../qemu/guest-shell.ts';
import { consoleTail, runFiles } from '../../qemu/process.ts';
import { waitFor } from '../../time/wait.ts';
import { createDisks, diskSizes, locateDataDisk, releaseLocalDisks, removeDisks } from '../disks.ts';
import { diskFiles, instanceDir } from '../storage.ts';
import { bootTimeoutFor } from '../qemu/driver.ts';
import { blockSteps } from '../qemu/storage.ts';
import {
  MigrationFailed,
  type DiskLocation,
  type GuestSpec,
  type Instance,
  type LaunchOptions,
  type MigrateOptions,
  type MigrationDriver,
  type MigrationEvents,
  type MigrationOutcome,
} from '../types.ts';
import { disksOfDomainXml, domainXml, jobInfo, parseRawStats, qemuFiguresOfJob } from './config.ts';
import { JobWatch } from './job.ts';
import { ensureLibvirtd, libvirtVersion } from './daemon.ts';
import { domainState, signalDomain, VIRSH } from './domain.ts';

/** libvirt's job statistics every 200 ms (each virsh call takes its own time on top: the samples are sparser under load). */
const SAMPLE_MS = 200;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The emulator libvirt starts for a build: the binary, or a wrapper that gives a build of migralab's its own firmware and modules. */
export async function emulatorFor(build: QemuBuild, cacheDir: string): Promise<string> {
  if (build.binary === 'qemu-system-x86_64') return '/usr/bin/qemu-system-x86_64';
  if (!build.moduleDir && build.firmwareDirs.length === 0) return build.binary;
  const wrapper = join(cacheDir, `${build.id.replace(/[^A-Za-z0-9.-]/g, '_')}.emulator`);
  const text = ['#!/bin/sh', '# written by migralab: libvirt starts this build of QEMU with its own firmware and modules', ...(build.moduleDir ? [`export QEMU_MODULE_DIR='${build.moduleDir}'`] : []), `exec '${build.binary}' ${build.firmwareDirs.map((d) => `-L '${d}'`).join(' ')} "$@"`, ''].join('\n');
  await mkdir(dirname(wrapper), { recursive: true });
  await writeFile(wrapper, text);
  await chmod(wrapper, 0o755);
  return wrapper;
}

export class LibvirtDriver implements MigrationDriver {
  readonly name = 'libvirt' as const;

  private constructor(
    private readonly lab: StartedLab,
    readonly version: string | null,
  ) {}

  static async create(lab: StartedLab, progress: (m: string) => void = () => {}): Promise<LibvirtDriver> {
    await ensureLibvirtd(lab, progress);
    const v = await libvirtVersion(lab.computes[0]!);
    lab.info.environment.libvirtVersion = v;
    return new LibvirtDriver(lab, v);
  }

  /** The guest's disks as a node's QEMU opens them under libvirt (shared: the export through NFS, on every node). */
  disksOn(guest: GuestSpec, node: LabNode): DiskSpec[] {
    const plan = this.lab.plan;
    const dir = instanceDir(plan, guest.strategy, node.plan, guest.name);
    return (['disk0', 'config0'] as const).map((nodeName) => {
      const { file, format } = diskFiles[nodeName];
      if (guest.strategy === 'block') return { nodeName, format, source: { driver: 'file', filename: join(dir, file) } } satisfies DiskSpec;
      return { nodeName, format, source: { driver: 'nfs', server: plan.nfsServer.address, path: join(dir, file) } } satisfies DiskSpec;
    });
  }

  /** The emulator in the domain XML: a wrapper written here serves the local lab only (its path is this machine's). */
  private async emulatorOn(guest: GuestSpec): Promise<string> {
    const e = await emulatorFor(guest.build, join(this.lab.plan.labDir, 'emulators'));
    if (this.lab.plan.provider !== 'local' && e !== guest.build.binary && e !== '/usr/bin/qemu-system-x86_64')
      throw new MigralabError('USAGE', `the libvirt driver on ${this.lab.plan.provider} hosts runs the hosts' own QEMU: build ${guest.build.id} needs a wrapper with its own firmware and modules, which exists on the local lab only`);
    return e;
  }

  async domainXmlOn(guest: GuestSpec, node: LabNode): Promise<string> {
    const files = runFiles(node.plan.dir, guest.name);
    return domainXml({
      name: guest.name,
      lab: this.lab.plan.lab,
      uuid: guest.uuid,
      memoryBytes: guest.memoryBytes,
      accelerator: guest.accelerator,
      emulator: await this.emulatorOn(guest),
      kernel: guest.image.kernel,
      initrd: guest.image.initrd,
      cmdline: kernelCmdline(),
      disks: this.disksOn(guest, node),
      mac: guest.mac,
      tap: guest.tap,
      consoleLog: files.consoleLog,
      ctlSocket: files.ctlSocket,
    });
  }

  async launch(guest: GuestSpec, node: LabNode, opts: LaunchOptions = {}): Promise<Instance> {
    await createDisks(guest, node, this.lab.plan);
    await ensureTap(node, guest.tap);
    const files = runFiles(node.plan.dir, guest.name);
    await node.transport.remove(files.dir);
    await node.transport.mkdir(files.dir);
    const xmlFile = join(files.dir, 'domain.xml');
    await node.transport.writeFile(xmlFile, await this.domainXmlOn(guest, node));
    const r = await node.transport.run([...VIRSH, 'create', xmlFile], { check: false, timeoutMs: 60_000 });
    if (r.exitCode !== 0) throw new MigralabError('LAB', `libvirt on ${node.name} did not start ${guest.name}: ${(r.stderr || r.stdout).trim()}`);
    const inst = new LibvirtInstance(this.lab, guest, node);
    try {
      const shell = await waitForGuestReady(files.ctlSocket, { timeoutMs: opts.bootTimeoutMs ?? bootTimeoutFor(guest), signal: opts.signal, open: () => node.transport.connect(files.ctlSocket) });
      shell.close();
    } catch (e) {
      const tail = await inst.consoleTail(8);
      await inst.stop();
      if (e instanceof MigralabError && e.code === 'INTERRUPTED') throw e;
      throw new MigralabError('LAB', `guest ${guest.name} did not come up under libvirt on ${node.name}: ${(e as Error).message} (console: ${tail})`);
    }
    return inst;
  }

  releaseNode(guest: GuestSpec, node: LabNode): Promise<void> {
    return releaseLocalDisks(guest, node, this.lab.plan);
  }

  async destroy(guest: GuestSpec): Promise<void> {
    for (const n of this.lab.computes) await n.transport.run([...VIRSH, 'destroy', guest.name], { check: false });
    await removeDisks(guest, this.lab.nodes, this.lab.plan);
  }

  async migrate(instance: Instance, destination: LabNode, options: MigrateOptions, events: MigrationEvents = {}): Promise<MigrationOutcome> {
    if (!(instance instanceof LibvirtInstance)) throw new MigralabError('USAGE', `the libvirt driver cannot migrate a ${instance.driver} instance`);
    const guest = instance.guest;
    const source = instance.node;
    const tPrep = performance.now();
    const notes: string[] = [];
    const destDisks = this.disksOn(guest, destination);
    const destFiles = runFiles(destination.plan.dir, guest.name);
    let t0: number | undefined;
    // libvirt's job-completed event on the source: stopped on every way out
    let completedEvent: ReturnType<LabNode['transport']['stream']> | undefined;
    try {
      await ensureTap(destination, guest.tap);
      await destination.transport.remove(destFiles.dir);
      await destination.transport.mkdir(destFiles.dir);
      if (guest.strategy === 'block') await blockSteps.prepareDestination(destination.transport, destDisks, diskSizes(guest));
      // The destination's XML: the source's migratable definition with this node's own paths
      // (run files; block: its local disks). Paths on the export stay as they are.
      const dump = await source.transport.run([...VIRSH, 'dumpxml', '--migratable', guest.name]);
      let destXml = dump.stdout;
      for (const sub of ['run', 'local']) destXml = destXml.split(`${join(source.plan.dir, sub)}/`).join(`${join(destination.plan.dir, sub)}/`);
      const xmlFile = join(runFiles(source.plan.dir, guest.name).dir, `to-${destination.name}.xml`);
      await source.transport.writeFile(xmlFile, destXml);
      const argv = [...VIRSH, 'migrate', '--live', '--p2p', '--verbose', ...(guest.strategy === 'block' ? ['--copy-storage-all'] : []), ...tunableArgs(options), '--xml', xmlFile, guest.name, `qemu+tcp://${destination.name}/system`];
      const prepareMs = performance.now() - tPrep;

      t0 = performance.now();
      const startedAt = performance.timeOrigin + t0;
      const since = () => performance.now() - t0!;
      // libvirt's own statistics of the finished job, as the source sees them: its job-completed event.
      completedEvent = source.transport.stream([...VIRSH, 'event', '--domain', guest.name, '--event', 'job-completed', '--timeout', String(Math.ceil(options.timeoutMs / 1000) + 30)]);
      let eventText = '';
      completedEvent.stdout.on('data', (b: Buffer) => (eventText += b.toString('utf8')));
      events.request?.(`${argv.join(' ')}   (on ${source.name})`);
      const proc = source.transport.stream(argv);
      let out = '';
      proc.stdout.on('data', (b: Buffer) => (out += b.toString('utf8')));
      proc.stderr.on('data', (b: Buffer) => (out += b.toString('utf8')));
      let exit: Awaited<typeof proc.exited> | undefined;
      void proc.exited.then((e) => (exit = e));
      const watch = new JobWatch(guest.strategy === 'block', events, true);
      let downtimeSet = options.tunables.downtimeLimitMs === undefined;
      const deadline = t0 + options.timeoutMs;
      while (!exit) {
        if (options.signal?.aborted || performance.now() > deadline) {
          await source.transport.run([...VIRSH, 'domjobabort', guest.name], { check: false });
          await proc.exited;
          if (options.signal?.aborted) throw new MigralabError('INTERRUPTED', 'interrupted during the migration');
          throw new MigrationFailed(`timed out after ${options.timeoutMs} ms`, { node: source.name, status: 'unknown' }, 'timeout');
        }
        const info = await source.transport.run([...VIRSH, 'domjobinfo', guest.name, '--rawstats'], { check: false, timeoutMs: 10_000 });
        const raw = parseRawStats(info.stdout);
        if (watch.see(raw, since()) && !downtimeSet)
          downtimeSet = (await source.transport.run([...VIRSH, 'migrate-setmaxdowntime', guest.name, String(options.tunables.downtimeLimitMs)], { check: false })).exitCode === 0;
        await Promise.race([proc.exited, sleep(SAMPLE_MS)]);
      }
      const durationMs = since();
      const { samples, mirrorReady } = watch;
      if (exit.exitCode !== 0) throw new MigralabError('MIGRATION', `virsh migrate failed (exit ${exit.exitCode}): ${out.trim().split('\n').filter((l) => !/^Migration: \[/.test(l)).slice(-3).join(' | ') || exit.error || ''}`);
      const completedAt = startedAt + durationMs;
      await Promise.race([completedEvent.exited, sleep(5000)]);
      let raw = parseRawStats(eventText);
      if (raw.time_elapsed === undefined) {
        // no event seen: the destination's account of the incoming job (it knows nothing of the disks)
        const done = await destination.transport.run([...VIRSH, 'domjobinfo', guest.name, '--completed', '--rawstats'], { check: false });
        raw = parseRawStats(done.stdout);
        notes.push(`libvirt's job-completed event was not seen on ${source.name}: libvirt.* is the destination's account (virsh domjobinfo --completed)${done.exitCode !== 0 ? `, which failed: ${done.stderr.trim()}` : ''}`);
      }
      const lv = jobInfo(raw, durationMs);
      notes.push("libvirt drove this migration: QEMU's total time is not passed on by libvirt (libvirt.timeElapsedMs is libvirt's own job); downtime, setup time and RAM counts are QEMU's as libvirt reports them");
      notes.push('libvirt: the destination running time and QEMU event downtime are not observed (libvirt owns the QMP connection)');
      return {
        instance: new LibvirtInstance(this.lab, guest, destination),
        figures: {
          durationMs,
          prepareMs,
          mirrorMs: mirrorReady,
          startedAt,
          completedAt,
          samples,
          marks: { mirrorReady, ramStart: guest.strategy === 'block' ? mirrorReady : 0, postcopyStart: null, completed: durationMs, destRunning: null, cleanedUp: durationMs },
          tunables: {
            maxBandwidthBytesPerSec: options.tunables.maxBandwidth !== null ? Math.floor(options.tunables.maxBandwidth / 8) : null,
            downtimeLimitMs: options.tunables.downtimeLimitMs ?? null,
            multifdChannels: options.tunables.multifdChannels,
            autoConverge: options.tunables.autoConverge,
            postcopy: options.tunables.postcopy,
            tls: false,
          },
          qemu: qemuFiguresOfJob(raw, lv, guest.strategy === 'block', samples),
          libvirt: lv,
          notes,
        },
      };
    } catch (e) {
      // The guest stays where it was: remove whatever of it libvirt left on the destination.
      await destination.transport.run([...VIRSH, 'destroy', guest.name], { check: false });
      if (guest.strategy === 'block') for (const d of destDisks) if (d.source.driver === 'file') await destination.transport.remove(d.source.filename).catch(() => {});
      if (e instanceof MigralabError && e.code === 'INTERRUPTED') throw e;
      const status = await instance.status().catch(() => 'unknown');
      const kind = e instanceof MigrationFailed ? e.kind : 'unknown';
      throw new MigrationFailed(`${(e as Error).message}; the guest is ${status === 'running' ? 'still running' : `in state ${status}`} on ${source.name}`, { node: source.name, status }, kind, {
        cause: e,
        detectedAfterMs: t0 !== undefined ? performance.now() - t0 : undefined,
      });
    } finally {
      completedEvent?.kill();
    }
  }
}

/** virsh migrate options for the scenario's tunables. */
export function tunableArgs(o: Pick<MigrateOptions, 'tunables'>): string[] {
  const t = o.tunables;
  const a: string[] = [];
  if (t.maxBandwidth !== null) a.push('--bandwidth', String(Math.max(1, Math.floor(t.maxBandwidth / 8 / 1024 ** 2))));
  if (t.autoConverge) a.push('--auto-converge');
  if (t.multifdChannels > 0) a.push('--parallel', '--parallel-connections', String(t.multifdChannels));
  if (t.postcopy) a.push('--postcopy', '--postcopy-after-precopy');
  return a;
}

async function ensureTap(node: LabNode, tap: string): Promise<void> {
  const t = await node.transport.run(['ip', 'link', 'show', tap], { check: false });
  if (t.exitCode === 0) return;
  await node.transport.run(['ip', 'tuntap', 'add', 'dev', tap, 'mode', 'tap']);
  await node.transport.run(['ip', 'link', 'set', tap, 'master', node.plan.bridge, 'up']);
}

/** A guest as a transient libvirt domain on one node. */
export class LibvirtInstance implements Instance {
  readonly driver = 'libvirt' as const;
  constructor(
    private readonly lab: StartedLab,
    readonly guest: GuestSpec,
    readonly node: LabNode,
  ) {}

  private files() {
    return runFiles(this.node.plan.dir, this.guest.name);
  }

  status(): Promise<string> {
    return domainState(this.node, this.guest.name);
  }

  async gone(): Promise<boolean> {
    const s = await this.status();
    return s === 'gone' || s === 'shutdown';
  }

  async disk(): Promise<DiskLocation> {
    const xml = await this.node.transport.run([...VIRSH, 'dumpxml', this.guest.name]);
    const nodes = disksOfDomainXml(xml.stdout).map((d) => ({ drv: d.driver, file: d.filename }));
    return locateDataDisk(this.lab.info, nodes);
  }

  shell(opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<GuestShell> {
    const path = this.files().ctlSocket;
    return GuestShell.connect(path, { timeoutMs: opts.timeoutMs ?? 10_000, signal: opts.signal, open: () => this.node.transport.connect(path) });
  }

  consoleTail(lines: number): Promise<string> {
    return consoleTail(this.node.transport, this.files().consoleLog, lines);
  }

  async stop(): Promise<void> {
    await this.node.transport.run([...VIRSH, 'destroy', this.guest.name], { check: false });
    await waitFor(`domain ${this.guest.name} on ${this.node.name} to go`, () => this.gone(), { timeoutMs: 10_000, intervalMs: 50 }).catch(() => {});
    await this.node.transport.remove(this.files().dir);
  }

  kill(): Promise<void> {
    return signalDomain(this.node, this.guest.name, 'SIGKILL');
  }

  freeze(frozen: boolean): Promise<void> {
    return signalDomain(this.node, this.guest.name, frozen ? 'SIGSTOP' : 'SIGCONT');
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

