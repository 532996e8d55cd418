/**
 * `migralab run`: a scenario file becomes runs (strategies x drivers x axis values x
 * repetitions, interleaved), on a lab from the topology's provider, with one guest per
 * identity (strategy x driver x hypervisor build) migrated back and forth. Results are
 * written after every iteration, so an interrupted run keeps what it measured.
 */
import { readFileSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname, resolve, join } from 'node:path';
import { destinationFor, isDrain, loadScenario, type Scenario, type Strategy, type DriverName } from '../config/scenario.ts';
import { loadTopology } from '../config/topology.ts';
import { fieldError } from '../config/load.ts';
import type { Settings } from '../config/settings.ts';
import { MigralabError } from '../errors.ts';
import { processStartTime } from '../exec/proc.ts';
import { applyLinkConditions, clearLinkConditions } from '../net/shaping.ts';
import { providerFor } from '../provision/providers.ts';
import { kvmModuleLoaded, knownIssues } from '../provision/environment.ts';
import type { StartedLab } from '../provision/provider.ts';
import { buildLabel, resolveBuild, type QemuBuild, type QemuBuildSpec } from '../qemu/builds.ts';
import { createDriver } from '../migrate/registry.ts';
import type { BootMode, MigrationDriver, MigrationProgress } from '../migrate/types.ts';
import { MIGRATION_PORT, NBD_PORT } from '../migrate/qemu/driver.ts';
import { SNAPSHOT_TEMPLATE_NAME } from '../migrate/qemu/snapshot.ts';
import { summarize } from '../results/cells.ts';
import { scenarioThresholdChecks, type ThresholdCheck } from '../results/thresholds.ts';
import { writeReports } from '../results/reporters/index.ts';
import { defaultResultsDir, RESULTS_SCHEMA, RESULTS_VERSION, type IterationResult, type Results } from '../results/schema.ts';
import { collectQemuPeaks, type QemuPeak } from '../qemu/process.ts';
import { plan, expandCells, type Cell } from './matrix.ts';
import { bootAll, bootSummary, GuestSlot, guestName, labGuestSpec, type GuestBoot } from './guests.ts';
import { FaultInjection } from './faults.ts';
import { runIteration } from './iteration.ts';
import { runDoctor } from '../doctor/checks.ts';
import { drainPorts, runDrains } from './drain.ts';
import { summarizeDrains } from '../results/drains.ts';

export interface RunEvents {
  step?(msg: string): void;
  iterationStart?(it: {
    index: number;
    total: number;
    strategy: Strategy;
    cell: string;
    repetition: number;
    source: string;
    destination: string;
    /** the guest's address on the lab network */
    address: string;
    /** a drain: the guest that migrates, and whether others migrate at the same time */
    guest?: string;
    concurrent?: boolean;
  }): void;
  progress?(p: MigrationProgress): void;
  iterationEnd?(r: IterationResult): void;
}

export interface RunOptions {
  scenarioFile: string;
  /** Run on this topology instead of the one the scenario names (the same scenario on the local lab or on real hosts). */
  topologyFile?: string;
  resultsDir?: string;
  /** Leave a lab that this run raised up afterwards (a lab that was already up is always left up). */
  keepLab?: boolean;
  signal?: AbortSignal;
  events?: RunEvents;
  /** Do not run `migralab doctor`'s checks first. */
  skipDoctor?: boolean;
  /** Extra hooks per iteration (fault injection). */
  iterationHooks?: Parameters<typeof runIteration>[0]['hooks'];
  /** Let an iteration prepare its guest while the previous one (another guest) runs its last checks (default true; overlapsWith says when). */
  overlap?: boolean;
  /** How guests start (default `snapshot`: restored from a booted snapshot where the driver can; `cold`: every guest boots its kernel). */
  boot?: BootMode;
}

export interface RunOutcome {
  results: Results;
  resultsFile: string;
  failed: number;
  /** The scenario's thresholds, checked against this run. */
  checks: ThresholdCheck[];
  exports: string[];
}

const interruptedError = () => new MigralabError('INTERRUPTED', 'interrupted');

/** The builds a scenario names (its base and every value of a hypervisor.qemu axis). */
export function buildsOf(s: Scenario): QemuBuildSpec[] {
  const all = expandCells(s).map((c) => c.settings.hypervisor.qemu);
  const seen = new Map<string, QemuBuildSpec>();
  for (const b of all) seen.set(buildLabel(b), b);
  return [...seen.values()];
}

/**
 * Cells that would hit a known hypervisor issue (QEMU < 9.0 under TCG with a memory
 * workload) and have not opted in (pure).
 */
export function knownIssueRefusals(cells: readonly Cell[], builds: ReadonlyMap<string, QemuBuild>, accelerator: 'kvm' | 'tcg'): string[] {
  const out: string[] = [];
  for (const c of cells) {
    const b = builds.get(buildLabel(c.settings.hypervisor.qemu));
    if (!b || c.settings.hypervisor.allowKnownIssues || c.settings.workload.memory.rateMiBs <= 0) continue;
    for (const issue of knownIssues({ qemuVersion: b.version, accelerator }))
      out.push(`cell "${c.label}" runs QEMU ${b.version} (${b.id}) under ${accelerator.toUpperCase()} with a memory workload: ${issue.text} [${issue.reference}]`);
  }
  return [...new Set(out)];
}

/**
 * The guest memory a run needs at its peak: one guest per identity (strategy, driver,
 * build) kept for the whole run, plus a destination QEMU of the same size during a
 * migration; refused when the host cannot give it (pure; null when it fits).
 */
export function hostMemoryRefusal(cells: readonly Cell[], guestMemory: number, memAvailable: number | null, drain?: { guests: number; concurrency: number }): string | null {
  if (memAvailable === null) return null;
  // a drain: its K guests, and a destination for each of the N migrations at once
  const guests = drain ? drain.guests : new Set(cells.map(slotKey)).size;
  const need = (guests + (drain ? drain.concurrency : 1)) * guestMemory;
  if (need <= memAvailable) return null;
  const gib = (b: number) => `${(b / 1024 ** 3).toFixed(1)}GiB`;
  return `guest.memory: ${guests} guest(s) of ${gib(guestMemory)} plus a destination during each migration need ${gib(need)}, and this host has ${gib(memAvailable)} available (MemAvailable in /proc/meminfo)`;
}

/**
 * Whether an iteration on `slot` may prepare its guest (probe write, workload, clocks) while
 * `prev` runs its last checks (its disk probe read back, the last ping replies): only for
 * another guest that does not need replacing, with the same link conditions (applying them
 * would reshape the link under the previous ping), and with no fault in either (a fault's
 * undoing ends the previous one).
 */
export function overlapsWith(prev: { slot: GuestSlot; cell: Cell }, slot: GuestSlot, cell: Cell): boolean {
  return prev.slot !== slot && !slot.broken && !prev.cell.fault && !cell.fault && JSON.stringify(prev.cell.settings.link) === JSON.stringify(cell.settings.link);
}

/**
 * results.sizing from the run's CPU usage, wall time and the QEMUs' peaks. `qemu` keeps every
 * QEMU measured, a snapshot's template too; the peaks by guest (and what fits the host's
 * memory) are the guests' only: a template runs once per shape, booted through, not beside them.
 */
export function sizingOf(cpu: NodeJS.CpuUsage, wallMs: number, qemu: QemuPeak[], hostMemAvailableBytes: number | null): NonNullable<Results['sizing']> {
  const peakRssBytesByGuest: Record<string, number> = {};
  for (const q of qemu) if (q.guest !== SNAPSHOT_TEMPLATE_NAME) peakRssBytesByGuest[q.guest] = Math.max(peakRssBytesByGuest[q.guest] ?? 0, q.peakRssBytes);
  return { harnessCpuMs: (cpu.user + cpu.system) / 1000, wallMs, qemu, peakRssBytesByGuest, hostMemAvailableBytes };
}

function memAvailable(): number | null {
  try {
    const m = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

export async function runScenario(opts: RunOptions): Promise<RunOutcome> {
  const ev = opts.events ?? {};
  const step = (m: string) => ev.step?.(m);
  // Validate everything before anything is started.
  const scenario = await loadScenario(opts.scenarioFile);
  const topologyFile = resolve(opts.topologyFile ?? resolve(dirname(opts.scenarioFile), scenario.topology));
  const topology = await loadTopology(topologyFile);
  const provider = providerFor(topology);
  const cells = expandCells(scenario);
  // An unwritable results directory is found before the lab exists.
  const resultsDir = resolve(opts.resultsDir ?? defaultResultsDir(scenario.name));
  await mkdir(resultsDir, { recursive: true });
  const resultsFile = join(resultsDir, 'results.json');

  // The hypervisor builds, and what is known to be wrong with them, before the lab exists.
  const builds = new Map<string, QemuBuild>();
  for (const spec of buildsOf(scenario)) builds.set(buildLabel(spec), await resolveBuild(spec, topology.paths.qemuCache, step));
  const likelyAccel = kvmModuleLoaded() ? 'kvm' : 'tcg';
  const early = knownIssueRefusals(cells, builds, likelyAccel);
  if (early.length) throw refusal(early);
  // The local lab's guests run on this host: more memory than it has is refused before up.
  const tooMuch = topology.provider === 'local' ? hostMemoryRefusal(cells, scenario.guest.memory, memAvailable(), isDrain(scenario.placement) ? { guests: scenario.guests, concurrency: Math.max(...scenario.concurrency) } : undefined) : null;
  if (tooMuch) throw new MigralabError('PREREQ', `${opts.scenarioFile}: ${tooMuch}`);

  FaultInjection.checkProvider(topology.provider, scenario.faults);
  if (scenario.drivers.includes('nova') && topology.stack !== 'openstack')
    throw await fieldError(opts.scenarioFile, ['drivers'], `expected a topology with stack: openstack for the nova driver (e.g. topologies/devstack.lab.yaml); ${topologyFile} has stack: ${topology.stack}`);
  const computeNames = topology.nodes.filter((n) => n.roles.includes('compute')).map((n) => n.name);
  if (scenario.bootOn !== undefined && !computeNames.includes(scenario.bootOn))
    throw await fieldError(opts.scenarioFile, ['bootOn'], `expected one of the compute nodes of ${topologyFile} (${computeNames.join(', ')}), got "${scenario.bootOn}"`);
  if (isDrain(scenario.placement)) {
    if (!computeNames.includes(scenario.placement.drain))
      throw await fieldError(opts.scenarioFile, ['placement', 'drain'], `expected one of the compute nodes of ${topologyFile} (${computeNames.join(', ')}), got "${scenario.placement.drain}"`);
    if (computeNames.length < 2) throw await fieldError(opts.scenarioFile, ['placement', 'drain'], `expected a topology with another compute node to drain to; ${topologyFile} has ${computeNames.length}`);
  }

  const lab = await provider.up(topology, topologyFile, step, opts.signal);
  if (lab.alreadyUp) step(`lab ${lab.plan.lab} is already up`);
  else step(`lab ${lab.plan.lab} up in ${(lab.info.upMs / 1000).toFixed(2)} s (${lab.info.environment.accelerator}, NFS client: ${lab.info.nfs.client})`);
  const user = await lab.ledger.record({ kind: 'user', pid: process.pid, startTime: processStartTime(process.pid), what: `run ${scenario.name}` });
  const results: Results = {
    schema: RESULTS_SCHEMA,
    version: RESULTS_VERSION,
    scenario: { file: resolve(opts.scenarioFile), name: scenario.name, asRun: scenario },
    topologyFile,
    lab: lab.plan.lab,
    environment: { ...lab.info.environment, builds: [...builds.values()].map((b) => ({ id: b.id, binary: b.binary, version: b.version, versionText: b.versionText })) },
    startedAt: new Date().toISOString(),
    iterations: [],
  };
  // One write at a time, each whole (a temporary file renamed): a drain's iterations end at once.
  let saving: Promise<void> = Promise.resolve();
  const save = () =>
    (saving = saving
      .catch(() => {})
      .then(async () => {
        await writeFile(`${resultsFile}.tmp`, JSON.stringify(results, null, 2) + '\n');
        await rename(`${resultsFile}.tmp`, resultsFile);
      }));

  const slots = new Map<string, GuestSlot>();
  const computes = lab.computes;
  // sizing: what this run costs its host (the harness's CPU, each QEMU's peak memory)
  const peaks = collectQemuPeaks();
  const boots: GuestBoot[] = [];
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const hostMem = lab.info.provider === 'local' ? memAvailable() : null;
  let linkKey: string | undefined;
  try {
    if (opts.signal?.aborted) throw interruptedError(); // Ctrl-C while the lab came up
    FaultInjection.check(lab, scenario.faults);
    const late = knownIssueRefusals(cells, builds, lab.info.environment.accelerator);
    if (late.length) throw refusal(late);
    const drivers = new Map<DriverName, MigrationDriver>();
    for (const d of scenario.drivers) drivers.set(d, await createDriver(d, lab, step, { boot: opts.boot }));
    if (scenario.drivers.includes('libvirt') || scenario.drivers.includes('nova')) results.environment.libvirtVersion = lab.info.environment.libvirtVersion ?? null;
    if (!opts.skipDoctor) {
      // a drain's guests each migrate on ports of their own (qemu driver): those must be open too
      const extraPorts = isDrain(scenario.placement) && scenario.drivers.includes('qemu')
        ? Array.from({ length: scenario.guests }, (_, i) => [
            { port: drainPorts(i).migration, what: `migration of drain guest ${i + 1}` },
            { port: drainPorts(i).nbd, what: `NBD of drain guest ${i + 1}` },
          ]).flat()
        : [];
      const checks = await runDoctor(lab, { drivers: scenario.drivers, diskBytes: scenario.guest.disk, diskDataBytes: scenario.guest.diskData, extraPorts });
      const failed = checks.filter((c) => c.status === 'fail');
      if (failed.length)
        throw new MigralabError('PREREQ', `the lab fails ${failed.length === 1 ? 'a precondition' : 'preconditions'} of live migration (migralab doctor): ${failed.map((c) => `${c.name}: ${c.detail} → ${c.fix}`).join('; ')}. Fix it, or run with --skip-doctor`);
      step(`doctor: ${checks.filter((c) => c.status === 'pass').length} checks pass${checks.some((c) => c.status === 'warn') ? `, warnings: ${checks.filter((c) => c.status === 'warn').map((c) => c.name).join(', ')}` : ''}`);
    }
    const iterationCtx = { lab, pingIntervalMs: scenario.ping.intervalMs, timeoutMs: scenario.timeoutSeconds * 1000, stallMs: scenario.stallSeconds * 1000, signal: opts.signal, hooks: opts.iterationHooks };
    if (isDrain(scenario.placement)) {
      // each drain's link: its cell's conditions, on every port its guests migrate on
      const ports = [MIGRATION_PORT, NBD_PORT, ...Array.from({ length: scenario.guests }, (_, i) => Object.values(drainPorts(i))).flat()];
      results.drains = [];
      const drains = results.drains;
      const { interrupted } = await runDrains(
        {
          lab,
          scenario,
          builds,
          drivers,
          slots,
          // no progress bars: several migrations run at once
          iteration: iterationCtx,
          step,
          iterationStart: ev.iterationStart,
          iterationEnd: async (r) => {
            results.iterations.push(r);
            await save();
            ev.iterationEnd?.(r);
          },
          drainEnd: async (d) => {
            drains.push(d);
            await save();
          },
          booted: (g) => void boots.push(...g),
          applyLink: async (cell) => void (linkKey = await applyLink(lab, cell.settings.link, linkKey, step, ports)),
        },
        cells,
      );
      if (interrupted) throw interruptedError();
    } else {
      for (const [key, slot] of guestSlots(cells, scenario, lab, builds, drivers)) slots.set(key, slot);
      const first = computes.find((n) => n.name === scenario.bootOn) ?? computes[0]!;
      for (const g of slots.values()) if (g.unreplaceable) step(`not booting ${g.name}: ${g.unreplaceable}`);
      const bootable = [...slots.values()].filter((g) => !g.unreplaceable);
      if (bootable.length) step(`booting ${bootable.map((g) => `${g.name} (${g.spec.ip})`).join(', ')} on ${first.name}`);
      const booted = await bootAll(bootable, first, opts.signal);
      boots.push(...booted.guests);
      step(bootSummary(booted));

      const order = plan(scenario);
      // The iteration before this one, while it runs its last checks: this one may prepare its
      // own guest meanwhile (overlapsWith), and opens its window once that one is done.
      let prev: { slot: GuestSlot; cell: Cell; measured: Promise<void>; done: Promise<boolean>; failed: { error?: unknown } } | undefined;
      const running: Promise<boolean>[] = [];
      try {
        for (const [index, { cell, repetition }] of order.entries()) {
          if (opts.signal?.aborted) throw interruptedError();
          const slot = slots.get(slotKey(cell))!;
          let overlap = prev !== undefined && opts.overlap !== false && !opts.iterationHooks && overlapsWith(prev, slot, cell);
          if (prev) {
            if (overlap) {
              await prev.measured;
              // the previous iteration may have failed, or marked this guest broken (a replacement must not boot beside its last checks)
              if (prev.failed.error) throw prev.failed.error;
              if (!overlapsWith(prev, slot, cell)) overlap = false;
            }
            if (!overlap && (await prev.done)) throw interruptedError();
            if (opts.signal?.aborted) throw interruptedError();
          }
          const source = slot.current?.node ?? first;
          let replaced: string | undefined;
          if (slot.broken && !slot.unreplaceable) {
            step(`replacing ${slot.name} with a fresh boot on ${source.name}: ${slot.broken}`);
            replaced = await slot.replace(source, { signal: opts.signal }).catch((e) => {
              if (e instanceof MigralabError && e.code === 'INTERRUPTED') throw e;
              step(`could not replace ${slot.name}: ${(e as Error).message}`);
              return undefined;
            });
            if (replaced && slot.current?.boot) boots.push({ guest: slot.name, node: source.name, ...slot.current.boot });
          }
          const destination = destinationFor(scenario.placement, computes, source);
          if (!overlap) linkKey = await applyLink(lab, cell.settings.link, linkKey, step);
          // The previous iteration ends (and prints its end) before this one says it starts.
          const before = prev?.done ?? Promise.resolve(false);
          const prevSlot = prev?.slot;
          let started = false;
          const start = async () => {
            if (await before) throw interruptedError();
            // the previous guest's disk copies, removed in the background, are gone before this window opens
            await prevSlot?.released;
            if (started) return;
            started = true;
            ev.iterationStart?.({ index, total: order.length, strategy: cell.strategy, cell: cell.label, repetition, source: source.name, destination: destination.name, address: slot.spec.ip });
          };
          let measured!: () => void;
          const measuredP = new Promise<void>((r) => (measured = r));
          const failed: { error?: unknown } = {};
          const done = runIteration({ ...iterationCtx, events: { progress: ev.progress }, waitTurn: start, measured }, slot, { index, repetition, cell, source, destination, ...(replaced ? { replaced } : {}) })
            .then(async ({ result, interrupted }) => {
              const prevInterrupted = await before.catch(() => true);
              // prepared beside an iteration that Ctrl-C then ended: it never began, so it is not recorded
              if (prevInterrupted && !started && interrupted) return true;
              await start().catch(() => {});
              results.iterations.push({ ...result, ...(overlap ? { overlapped: true } : {}) });
              await save();
              ev.iterationEnd?.(result);
              return interrupted;
            })
            .catch((e: unknown) => {
              // recorded before `measured` lets the next iteration go on
              failed.error = e;
              throw e;
            })
            .finally(() => measured());
          prev = { slot, cell, measured: measuredP, done, failed };
          running.push(done);
        }
      } finally {
        // the last one, or one still running when an earlier one threw; an error other than Ctrl-C is not swallowed
        const settled = await Promise.allSettled(running);
        if (settled.some((r) => (r.status === 'fulfilled' ? r.value : r.reason instanceof MigralabError && r.reason.code === 'INTERRUPTED'))) results.interrupted = true;
        const failure = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected' && !(r.reason instanceof MigralabError && r.reason.code === 'INTERRUPTED'));
        if (failure) throw failure.reason;
      }
    }
  } catch (e) {
    if (e instanceof MigralabError && e.code === 'INTERRUPTED') results.interrupted = true;
    else throw e;
  } finally {
    if (linkKey !== undefined) await clearLinkConditions(lab.computes.map((n) => n.transport)).catch(() => {});
    for (const g of slots.values()) await g.destroy();
    peaks.stop();
    results.sizing = { ...sizingOf(process.cpuUsage(cpu0), performance.now() - t0, peaks.peaks, hostMem), boot: boots };
    await lab.ledger.forget((r) => r === user);
    results.finishedAt = new Date().toISOString();
    results.summary = summarize(results.iterations, scenario.strategies);
    if (results.drains) results.summary.drains = summarizeDrains(results.drains);
    await save().catch((e) => step(`could not write ${resultsFile}: ${(e as Error).message}`));
    if (!lab.alreadyUp && !opts.keepLab) {
      step(`taking lab ${lab.plan.lab} down (this run raised it)`);
      await lab.down();
    }
    lab.release();
  }
  const checks = scenarioThresholdChecks(results);
  const exports = await writeReports(resultsDir, results, checks);
  if (results.interrupted) throw new MigralabError('INTERRUPTED', `interrupted; partial results in ${resultsFile}`);
  return { results, resultsFile, failed: results.iterations.filter((i) => !(i.ok || i.expected?.met)).length, checks, exports };
}

function refusal(reasons: string[]): MigralabError {
  return new MigralabError(
    'PREREQ',
    `refusing to run: ${reasons.join('; ')}. Use QEMU 9.0 or later (bash scripts/setup.sh installs it from Debian backports), or set hypervisor.allowKnownIssues: true to run it on purpose.`,
  );
}

const slotKey = (c: Cell) => `${c.strategy}|${c.driver}|${buildLabel(c.settings.hypervisor.qemu)}`;

/** One guest per identity, in the order the cells first need them. */
function guestSlots(cells: readonly Cell[], s: Scenario, lab: StartedLab, builds: ReadonlyMap<string, QemuBuild>, drivers: ReadonlyMap<DriverName, MigrationDriver>): [string, GuestSlot][] {
  const keys = [...new Set(cells.map(slotKey))];
  const manyDrivers = new Set(cells.map((c) => c.driver)).size > 1;
  const manyBuilds = builds.size > 1;
  return keys.map((key, i) => {
    const cell = cells.find((c) => slotKey(c) === key)!;
    const build = builds.get(buildLabel(cell.settings.hypervisor.qemu))!;
    const spec = labGuestSpec(lab, {
      name: guestName(cell.strategy, cell.driver, build.id, { manyDrivers, manyBuilds }),
      strategy: cell.strategy,
      index: i,
      memoryBytes: s.guest.memory,
      diskBytes: s.guest.disk,
      diskDataBytes: s.guest.diskData,
      build,
    });
    const slot = new GuestSlot(spec, drivers.get(cell.driver)!);
    // a driver that cannot run this guest here (shared storage under nova without kernel NFS): its iterations are skipped, saying why
    const refused = slot.driver.refuses?.(spec);
    if (refused) slot.broken = slot.unreplaceable = refused;
    return [key, slot];
  });
}

/** Applies a cell's link conditions on every compute node's uplink when they differ from what is in effect. */
async function applyLink(lab: StartedLab, l: Settings['link'], current: string | undefined, step: (m: string) => void, ports: readonly number[] = [MIGRATION_PORT, NBD_PORT]): Promise<string> {
  const key = JSON.stringify(l);
  if (key === current) return key;
  const nodes = lab.computes.map((n) => n.transport);
  // apply replaces whatever it applied before; only a return to no conditions needs a clear
  if (l.rate !== null || l.lossPct > 0 || l.delayMs > 0) {
    await applyLinkConditions(nodes, { rateBitsPerSec: l.rate ?? undefined, lossPct: l.lossPct || undefined, delayMs: l.delayMs || undefined }, { ports: [...ports] });
    step(`link on the migration path: ${describeLink(l)}`);
  } else if (current !== undefined) await clearLinkConditions(nodes);
  return key;
}

function describeLink(l: Settings['link']): string {
  const parts = [l.rate !== null ? `${l.rate / 1e6} Mbit/s` : 'no rate cap'];
  if (l.lossPct > 0) parts.push(`${l.lossPct}% loss`);
  if (l.delayMs > 0) parts.push(`${l.delayMs} ms delay`);
  return parts.join(', ');
}
