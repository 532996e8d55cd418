/**
 * migralab as a library, for test suites that ask "does my service survive a live
 * migration?" (testcontainers' model):
 *
 *   await using lab = await startLab({ topology: 'scenarios/topologies/two-node.lab.yaml' });
 *   const vm = await lab.boot({ strategy: 'shared' });
 *   await vm.copyIn('./server', '/tmp/server', { mode: 0o755 });
 *   await vm.exec('/tmp/server &');
 *   const r = await lab.migrate(vm, { to: 'compute1' });   // the same record as `migralab run`'s
 *
 * Everything is the real thing the CLI uses: the provider raises the lab, guests boot
 * through the driver, `migrate` is one runner iteration (ping, workload, probes and every
 * proof), errors are the typed MigralabError the CLI maps to exit codes. Disposing the lab
 * destroys its guests and takes the lab down if startLab raised it.
 */
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { scenarioSchema, type DriverName, type Strategy } from './config/scenario.ts';
import { parseSize } from './config/size.ts';
import { loadTopology } from './config/topology.ts';
import type { Settings } from './config/settings.ts';
import { MigralabError } from './errors.ts';
import { PingProbe, type PingResult } from './measure/ping.ts';
import { createDriver } from './migrate/registry.ts';
import type { BootMode, BootRecord, MigrationDriver } from './migrate/types.ts';
import { providerFor } from './provision/providers.ts';
import type { LabNode, StartedLab } from './provision/provider.ts';
import { resolveBuild, type QemuBuild } from './qemu/builds.ts';
import type { IterationResult } from './results/schema.ts';
import { GuestSlot, labGuestSpec } from './runner/guests.ts';
import { runIteration } from './runner/iteration.ts';
import { expandCells } from './runner/matrix.ts';
import { TcpProbe, type TcpProbeResult } from './measure/tcp-probe.ts';

export { MigralabError } from './errors.ts';
export type { IterationResult } from './results/schema.ts';
export type { PingResult } from './measure/ping.ts';
export type { TcpProbeResult } from './measure/tcp-probe.ts';
export type { BootMode, BootRecord } from './migrate/types.ts';

/** The default topology: the local two-node lab of the tutorial. */
export const DEFAULT_TOPOLOGY = resolve(new URL('..', import.meta.url).pathname, 'scenarios/topologies/two-node.lab.yaml');

export interface StartLabOptions {
  /** A topology file (default: the local two-node lab). */
  topology?: string;
  /** Progress lines (lab up, boots); default silent. */
  progress?: (message: string) => void;
  signal?: AbortSignal;
  /** How guests start: `snapshot` (default: restored from a booted snapshot made once per guest size, qemu driver) or `cold` (each boots its kernel). */
  boot?: BootMode;
}

export interface BootOptions {
  /** block: the disk is local to the node and copied by each migration; shared: it is on the controller's NFS export. Default shared. */
  strategy?: Strategy;
  driver?: DriverName;
  /** Sizes as in scenarios: '128MiB', or bytes. Defaults 128MiB, 64MiB disk holding 16MiB of data. */
  memory?: string | number;
  disk?: string | number;
  diskData?: string | number;
  /** The compute node it boots on (default the first). */
  on?: string;
}

export interface MigrateOptions {
  /** The destination node (default: the other of the first two compute nodes). */
  to?: string;
  /** Checked against the guest's: its disk's place was chosen when it booted (block: local, shared: on NFS). */
  strategy?: Strategy;
  /** Checked against the guest's: the driver that booted it migrates it. */
  driver?: DriverName;
  tunables?: Partial<Settings['tunables']>;
  /** ms between the observer's pings during the migration (default 10). */
  pingIntervalMs?: number;
  timeoutSeconds?: number;
}

const size = (what: string, v: string | number | undefined, dflt: number): number => {
  if (v === undefined) return dflt;
  const n = parseSize(v);
  if (n === undefined) throw new MigralabError('USAGE', `${what}: expected a size like 128MiB, got ${JSON.stringify(v)}`);
  return n;
};

/** A guest of a started lab: its control channel (exec, files), where it runs now. */
export class Guest {
  constructor(
    /** @internal */ readonly slot: GuestSlot,
    readonly strategy: Strategy,
    readonly driverName: DriverName,
  ) {}
  get name(): string {
    return this.slot.name;
  }
  /** Its address on the lab network (the observer reaches it there). */
  get ip(): string {
    return this.slot.spec.ip;
  }
  /** The node it runs on now. */
  get node(): string {
    return this.slot.instance().node.name;
  }
  /** How it was started: restored from a booted snapshot or booted cold, and how long that took. */
  get boot(): BootRecord | undefined {
    return this.booted;
  }
  /** @internal */ booted: BootRecord | undefined;

  /** Runs a shell command in the guest (busybox sh); an argv array is quoted word by word. Resolves with its exit status and output (stdout and stderr together). */
  async exec(command: string | readonly string[], opts: { timeoutMs?: number } = {}): Promise<{ status: number; output: string }> {
    const text = typeof command === 'string' ? command : command.map(shQuote).join(' ');
    await using sh = await this.slot.shell();
    return await sh.exec(text, { timeoutMs: opts.timeoutMs ?? 30_000 });
  }

  /** Copies a file from this machine into the guest (through its control channel, base64 in chunks). */
  async copyIn(localFile: string, guestPath: string, opts: { mode?: number } = {}): Promise<void> {
    const data = await readFile(localFile);
    await using sh = await this.slot.shell();
    const check = async (cmd: string) => {
      const r = await sh.exec(cmd, { timeoutMs: 30_000 });
      if (r.status !== 0) throw new MigralabError('LAB', `guest ${this.name}: copying ${localFile} to ${guestPath} failed: ${r.output.trim()}`);
    };
    const tmp = `${guestPath}.migralab-part`;
    await check(`: > ${shQuote(tmp)}`);
    const CHUNK = 36 * 1024; // 48 KiB of base64 per command, under the channel's 64 KiB
    for (let off = 0; off < data.length; off += CHUNK) await check(`printf %s ${data.subarray(off, off + CHUNK).toString('base64')} | base64 -d >> ${shQuote(tmp)}`);
    await check(`chmod ${(opts.mode ?? 0o644).toString(8)} ${shQuote(tmp)} && mv ${shQuote(tmp)} ${shQuote(guestPath)}`);
    const md5 = createHash('md5').update(data).digest('hex');
    const r = await sh.exec(`md5sum ${shQuote(guestPath)}`, { timeoutMs: 30_000 });
    if (!r.output.startsWith(md5)) throw new MigralabError('LAB', `guest ${this.name}: ${guestPath} does not read back as ${localFile} (md5 ${md5}, guest: ${r.output.trim()})`);
  }

  /** Copies a file from the guest to this machine. */
  async copyOut(guestPath: string, localFile: string): Promise<void> {
    await using sh = await this.slot.shell();
    const r = await sh.exec(`base64 ${shQuote(guestPath)}`, { timeoutMs: 60_000 });
    if (r.status !== 0) throw new MigralabError('LAB', `guest ${this.name}: reading ${guestPath} failed: ${r.output.trim()}`);
    await writeFile(localFile, Buffer.from(r.output.replace(/\s+/g, ''), 'base64'));
  }
}

const shQuote = (s: string) => (/^[A-Za-z0-9_./:=@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/** A lab started by startLab: boot guests, migrate them, watch them from the observer. */
export class Lab implements AsyncDisposable {
  private readonly guests: Guest[] = [];
  private readonly drivers = new Map<DriverName, MigrationDriver>();
  private build: QemuBuild | undefined;
  private index = 0;
  private next = 0;

  constructor(
    readonly started: StartedLab,
    private readonly opts: StartLabOptions,
  ) {}

  get name(): string {
    return this.started.plan.lab;
  }
  /** The compute nodes, in topology order. */
  get computes(): string[] {
    return this.started.computes.map((n) => n.name);
  }

  private node(name: string | undefined, dflt: LabNode): LabNode {
    if (name === undefined) return dflt;
    const n = this.started.computes.find((c) => c.name === name);
    if (!n) throw new MigralabError('USAGE', `lab ${this.name} has no compute node ${name} (it has ${this.computes.join(', ')})`);
    return n;
  }

  private async driver(name: DriverName): Promise<MigrationDriver> {
    let d = this.drivers.get(name);
    if (!d) this.drivers.set(name, (d = await createDriver(name, this.started, this.opts.progress, { boot: this.opts.boot })));
    return d;
  }

  /** Boots a guest and waits until its control channel answers. */
  async boot(o: BootOptions = {}): Promise<Guest> {
    const strategy = o.strategy ?? 'shared';
    const driverName = o.driver ?? 'qemu';
    const on = this.node(o.on, this.started.computes[0]!);
    this.build ??= await resolveBuild('system', this.started.plan.topology.paths.qemuCache, this.opts.progress);
    const i = this.index++;
    const spec = labGuestSpec(this.started, {
      name: `${strategy}-api${i + 1}`,
      strategy,
      index: i,
      memoryBytes: size('memory', o.memory, 128 * 2 ** 20),
      diskBytes: size('disk', o.disk, 64 * 2 ** 20),
      diskDataBytes: size('diskData', o.diskData, 16 * 2 ** 20),
      build: this.build,
    });
    const slot = new GuestSlot(spec, await this.driver(driverName));
    const g = new Guest(slot, strategy, driverName);
    this.guests.push(g);
    slot.current = await slot.driver.launch(spec, on, { signal: this.opts.signal });
    g.booted = slot.current.boot;
    return g;
  }

  /**
   * Migrates a guest live, as one iteration of `migralab run`: the observer pings it, the
   * guest's probe MiB and RAM writer run, and the record (durationMs, qemu.downtimeMs,
   * ping.maxGapMs, verified.*) is returned. A failed migration is a record with ok: false
   * (and the guest where the hypervisor says it is), not an exception.
   */
  async migrate(g: Guest, o: MigrateOptions = {}): Promise<IterationResult> {
    const source = g.slot.instance().node;
    const [a, b] = this.started.computes;
    const destination = this.node(o.to, source.name === a!.name ? b! : a!);
    if (destination.name === source.name) throw new MigralabError('USAGE', `guest ${g.name} already runs on ${source.name}`);
    if (o.strategy !== undefined && o.strategy !== g.strategy)
      throw new MigralabError('USAGE', `guest ${g.name} was booted for ${g.strategy === 'shared' ? 'shared storage (its disk is on the NFS export)' : 'block migration (its disk is local to its node)'}: boot one with strategy ${o.strategy} to migrate that way`);
    if (o.driver !== undefined && o.driver !== g.driverName) throw new MigralabError('USAGE', `guest ${g.name} runs under the ${g.driverName} driver: boot one with driver ${o.driver} to migrate through it`);
    const scenario = scenarioSchema.parse({ name: 'api', strategies: [g.strategy], drivers: [g.driverName], repetitions: 1, ...(o.tunables ? { tunables: o.tunables } : {}) });
    const cell = expandCells(scenario)[0]!;
    const index = this.next++;
    const { result, interrupted } = await runIteration(
      { lab: this.started, pingIntervalMs: o.pingIntervalMs ?? 10, timeoutMs: (o.timeoutSeconds ?? 120) * 1000, stallMs: scenario.stallSeconds * 1000, signal: this.opts.signal },
      g.slot,
      { index, repetition: 1, cell, source, destination },
    );
    if (interrupted) throw new MigralabError('INTERRUPTED', `interrupted while migrating ${g.name}`);
    return result;
  }

  /** Pings a guest from the observer until stop(), which gives the replies' figures (largest gap, lost). */
  ping(g: Guest, o: { intervalMs?: number } = {}): { stop(): Promise<PingResult> } {
    const p = PingProbe.start({ transport: this.started.observer(), target: g.ip, intervalMs: o.intervalMs ?? 10 });
    return { stop: () => p.stop() };
  }

  /**
   * Keeps one TCP connection open from the observer to a port of the guest (an echo
   * service the test started there), sending a line every intervalMs and timing the
   * echoes: stop() gives the longest stall and whether the connection survived.
   */
  async tcpProbe(g: Guest, o: { port: number; intervalMs?: number }): Promise<{ stop(): Promise<TcpProbeResult> }> {
    const p = await TcpProbe.start(this.started.observer(), g.ip, o.port, o.intervalMs ?? 5);
    return { stop: () => p.stop() };
  }

  /** Destroys every guest; takes the lab down when startLab raised it. */
  async close(): Promise<void> {
    for (const g of this.guests) await g.slot.destroy();
    this.guests.length = 0;
    if (!this.started.alreadyUp) await this.started.down(this.opts.progress);
    this.started.release();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Raises the lab of a topology (or attaches to it when it is up) and returns it; dispose it to clean up. */
export async function startLab(options: StartLabOptions | string = {}): Promise<Lab> {
  const opts = typeof options === 'string' ? { topology: options } : options;
  const file = resolve(opts.topology ?? DEFAULT_TOPOLOGY);
  const t = await loadTopology(file);
  const started = await providerFor(t).up(t, file, opts.progress ?? (() => {}), opts.signal);
  return new Lab(started, opts);
}
