import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, resolve, join } from 'node:path';
import { loadScenario, type Scenario, type Strategy } from '../config/scenario.ts';
import { loadTopology } from '../config/topology.ts';
import { MigralabError } from '../errors.ts';
import { planLab, type NodePlan } from '../provision/plan.ts';
import { up, down, observerTransport, nodeTransport } from '../provision/local.ts';
import { Ledger } from '../state/ledger.ts';
import { PingProbe } from '../measure/ping.ts';
import { migrate, MigrationFailed, type MigrationProgress } from '../migrate/driver.ts';
import { instanceDir } from '../migrate/storage.ts';
import { Guest, PROBE_AREA_MIB, type LabContext } from './guest.ts';
import type { QemuProcess } from '../qemu/instance.ts';
import { scenarioThresholdChecks, type ThresholdCheck } from '../report/thresholds.ts';
import { writeExports } from '../report/exports.ts';
import type { DiskLocation } from './results.ts';
import { plan, type Cell } from './matrix.ts';
import { applyLinkConditions, clearLinkConditions, efficiency } from '../net/shaping.ts';
import { startWorkload, stopWorkload, type RunningWorkload } from '../guest/workload.ts';
import { startPauseProbe, stopPauseProbe, clockOffset, type RunningPauseProbe } from '../guest/probe.ts';
import { GuestTimeout } from '../qemu/guest-shell.ts';
import { derivePhases } from '../measure/phases.ts';
import { topGaps } from '../measure/gaps.ts';
import { crossCheck } from '../measure/crosscheck.ts';
import { processCpuMs } from '../exec/proc.ts';
import type { Settings } from '../config/settings.ts';
import type { NodeTransport } from '../exec/node.ts';
import { defaultResultsDir, summarize, RESULTS_SCHEMA, RESULTS_VERSION, type IterationResult, type Results } from './results.ts';

export interface RunEvents {
  step?(msg: string): void;
  iterationStart?(it: { index: number; total: number; strategy: Strategy; cell: string; repetition: number; source: string; destination: string }): void;
  progress?(p: MigrationProgress): void;
  iterationEnd?(r: IterationResult): void;
}

export interface RunOptions {
  scenarioFile: string;
  resultsDir?: string;
  /** Leave a lab that this run raised up afterwards (a lab that was already up is always left up). */
  keepLab?: boolean;
  signal?: AbortSignal;
  events?: RunEvents;
}

export interface RunOutcome {
  results: Results;
  resultsFile: string;
  failed: number;
  /** The scenario's thresholds, checked against this run. */
  checks: ThresholdCheck[];
  exports: string[];
}

const MIGRATION_PORT = 4444;
const NBD_PORT = 10809;

export async function runScenario(opts: RunOptions): Promise<RunOutcome> {
  const ev = opts.events ?? {};
  const step = (m: string) => ev.step?.(m);
  // Validate everything before anything is started.
  const scenario = await loadScenario(opts.scenarioFile);
  const topologyFile = resolve(dirname(opts.scenarioFile), scenario.topology);
  const topology = await loadTopology(topologyFile);
  const labPlan = planLab(topology);
  const computes = labPlan.nodes.filter((n) => n.roles.includes('compute'));
  const nodes = computes.map(nodeTransport);
  // An unwritable results directory is found before the lab exists.
  const resultsDir = resolve(opts.resultsDir ?? defaultResultsDir(scenario.name));
  await mkdir(resultsDir, { recursive: true });
  const resultsFile = join(resultsDir, 'results.json');

  const raised = await up(topology, topologyFile, step);
  if (raised.alreadyUp) step(`lab ${labPlan.lab} is already up`);
  else step(`lab ${labPlan.lab} up in ${(raised.info.upMs / 1000).toFixed(2)} s (${raised.info.environment.accelerator}, NFS client: ${raised.info.nfs.client})`);
  const interrupted = () => {
    if (opts.signal?.aborted) throw new MigralabError('INTERRUPTED', 'interrupted');
  };
  const results: Results = {
    schema: RESULTS_SCHEMA,
    version: RESULTS_VERSION,
    scenario: { file: resolve(opts.scenarioFile), name: scenario.name, asRun: scenario },
    topologyFile,
    lab: labPlan.lab,
    environment: raised.info.environment,
    startedAt: new Date().toISOString(),
    iterations: [],
  };
  const save = () => writeFile(resultsFile, JSON.stringify(results, null, 2) + '\n');

  const guests = new Map<Strategy, Guest>();
  let linkKey: string | undefined;
  try {
    interrupted(); // Ctrl-C while the lab came up
    const ctx: LabContext = { plan: labPlan, info: raised.info, ledger: await Ledger.open(labPlan.ledgerFile, labPlan.lab) };
    scenario.strategies.forEach((strategy, i) =>
      guests.set(
        strategy,
        new Guest(
          { name: `${strategy}-vm`, strategy, ip: labPlan.instanceAddress(i), memoryBytes: scenario.guest.memory, diskBytes: scenario.guest.disk, diskDataBytes: scenario.guest.diskData },
          ctx,
        ),
      ),
    );
    step(`booting ${[...guests.values()].map((g) => `${g.def.name} (${g.def.ip})`).join(', ')} on ${computes[0]!.name}`);
    const tBoot = performance.now();
    // allSettled: when one guest fails to boot, the other is still fully started (and then destroyed).
    const boots = await Promise.allSettled([...guests.values()].map((g) => g.create(computes[0]!)));
    const bootFailure = boots.find((b): b is PromiseRejectedResult => b.status === 'rejected');
    if (bootFailure) throw bootFailure.reason;
    step(`guests up in ${((performance.now() - tBoot) / 1000).toFixed(1)} s`);
    interrupted();

    const order = plan(scenario);
    for (const [index, { cell, repetition }] of order.entries()) {
      interrupted();
      const guest = guests.get(cell.strategy)!;
      const source = guest.current.placement.node;
      const destination = computes.find((n) => n.name !== source.name)!;
      ev.iterationStart?.({ index, total: order.length, strategy: cell.strategy, cell: cell.label, repetition, source: source.name, destination: destination.name });
      const key = JSON.stringify(cell.settings.link);
      if (key !== linkKey) {
        const l = cell.settings.link;
        const first = linkKey === undefined;
        linkKey = key;
        // apply replaces whatever it applied before; only a return to no conditions needs a clear
        if (l.rate !== null || l.lossPct > 0 || l.delayMs > 0) {
          await applyLinkConditions(nodes, { rateBitsPerSec: l.rate ?? undefined, lossPct: l.lossPct || undefined, delayMs: l.delayMs || undefined }, { ports: [MIGRATION_PORT, NBD_PORT] });
          step(`link on the migration path: ${describeLink(l)}`);
        } else if (!first) await clearLinkConditions(nodes);
      }
      const r = await iterate(ctx, guest, scenario, cell, index, repetition, source, destination, opts, ev);
      results.iterations.push(r);
      await save();
      ev.iterationEnd?.(r);
    }
  } catch (e) {
    if (e instanceof MigralabError && e.code === 'INTERRUPTED') results.interrupted = true;
    else throw e;
  } finally {
    if (linkKey !== undefined) await clearLinkConditions(nodes).catch(() => {});
    for (const g of guests.values()) await g.destroy();
    results.finishedAt = new Date().toISOString();
    results.summary = summarize(results.iterations, scenario.strategies);
    await save().catch((e) => step(`could not write ${resultsFile}: ${(e as Error).message}`));
    if (!raised.alreadyUp && !opts.keepLab) {
      step(`taking lab ${labPlan.lab} down (this run raised it)`);
      await down(labPlan);
    }
  }
  const checks = scenarioThresholdChecks(results);
  const exports = await writeExports(resultsDir, results, checks);
  if (results.interrupted) throw new MigralabError('INTERRUPTED', `interrupted; partial results in ${resultsFile}`);
  return { results, resultsFile, failed: results.iterations.filter((i) => !i.ok).length, checks, exports };
}

async function iterate(
  ctx: LabContext,
  guest: Guest,
  scenario: Scenario,
  cell: Cell,
  index: number,
  repetition: number,
  source: NodePlan,
  destination: NodePlan,
  opts: RunOptions,
  ev: RunEvents,
): Promise<IterationResult> {
  const settings = cell.settings;
  const r: IterationResult = {
    index,
    strategy: guest.def.strategy,
    cell: { label: cell.label, group: cell.group, params: cell.params },
    repetition,
    source: source.name,
    destination: destination.name,
    ok: false,
    startedAt: new Date().toISOString(),
    durationMs: null,
    prepareMs: null,
    mirrorMs: null,
    qemu: { totalTimeMs: null, downtimeMs: null, setupTimeMs: null, ramBytes: null, diskBytes: null },
    ping: { intervalMs: scenario.ping.intervalMs, sent: null, received: null, lost: null, maxGapMs: null, maxGapStart: null, maxGapEnd: null, maxRttMs: null, medianGapMs: null },
    link: { rateBitsPerSec: settings.link.rate, lossPct: settings.link.lossPct, delayMs: settings.link.delayMs, wireBytes: null, efficiency: null },
    guest: { clockLossMs: null, clockUncertaintyMs: null, probeMaxGapMs: null, probePeriodMs: null },
    harness: { cpuMs: null, pingCpuMs: null, windowMs: null },
    verified: { onDestination: false, sourceGone: false, diskIntact: false, answersPing: false },
    notes: [],
  };
  if (guest.broken) {
    r.error = `skipped: ${guest.broken}`;
    r.notes.push('not run: the guest stopped answering its control shell in an earlier iteration');
    return r;
  }
  // The guest's side: a fresh probe block on its disk, its workload, its pause probe, its clock against ours.
  const workloadSpec = workloadFor(settings, guest);
  let probe: Awaited<ReturnType<Guest['writeProbe']>>;
  let workload: RunningWorkload | undefined;
  let pause: Awaited<ReturnType<typeof startPauseProbe>>;
  let offsetBefore: Awaited<ReturnType<typeof clockOffset>>;
  try {
    probe = await guest.writeProbe(index);
    await using sh = await guest.shell();
    if (workloadSpec) workload = await startWorkload(sh, workloadSpec);
    pause = await startPauseProbe(sh, { periodUs: GUEST_PROBE_PERIOD_US });
    offsetBefore = await clockOffset(sh);
  } catch (e) {
    if (e instanceof MigralabError && e.code === 'INTERRUPTED') throw e;
    const msg = (e as Error).message;
    // A shell that no longer answers means a hung guest: skip its later iterations. Anything
    // else (a workload that would not start, say) fails this iteration only.
    if (e instanceof GuestTimeout) {
      guest.broken = `guest ${guest.def.name} stopped answering on ${source.name} (iteration ${index + 1}): ${msg}`;
      r.notes.push(`guest console (last lines): ${await guest.consoleTail(15)}`);
    } else await stopGuestSide(guest, workload, undefined); // what did start must not run on into later iterations
    r.error = `not migrated: ${guest.broken ?? `preparing the guest failed: ${msg}`}`;
    r.guestOn = { node: source.name, status: await guest.current.status().catch(() => 'unknown') };
    return r;
  }

  let requestAt: number | undefined;
  let marks: NonNullable<IterationResult['timeline']>['marks'] = { mirrorReady: null, completed: null };
  let samples: NonNullable<IterationResult['timeline']>['samples'] = [];
  const windowStart = performance.now();
  const ping = PingProbe.start({ prefix: [...observerTransport(ctx.plan).prefix], target: guest.def.ip, intervalMs: scenario.ping.intervalMs });
  let pingCpuMs: number | undefined;
  try {
    await ping.waitForReply(10_000);
    const sourceProc = guest.current;
    const sourceDisk = await dataDisk(ctx, sourceProc);
    const srcNode = nodeTransport(source);
    const tx0 = await txBytes(srcNode);
    const cpu0 = process.cpuUsage();
    let migrated = false;
    try {
      const { dest, figures } = await migrate({
        strategy: guest.def.strategy,
        source: sourceProc,
        dest: guest.placement(destination),
        destLaunch: guest.launchOn(destination, true),
        diskSizes: guest.diskSizes(),
        migrationPort: MIGRATION_PORT,
        nbdPort: NBD_PORT,
        timeoutMs: scenario.timeoutSeconds * 1000,
        tunables: settings.tunables,
        copyMode: settings.mirror.copyMode,
        ledger: ctx.ledger,
        onProgress: ev.progress,
        signal: opts.signal,
      });
      migrated = true;
      const cpu = process.cpuUsage(cpu0);
      r.harness!.cpuMs = (cpu.user + cpu.system) / 1000;
      const tx1 = await txBytes(srcNode);
      requestAt = figures.startedAt;
      marks = figures.marks;
      samples = figures.samples;
      r.durationMs = figures.durationMs;
      r.prepareMs = figures.prepareMs;
      r.mirrorMs = figures.mirrorMs ?? null;
      r.qemu = {
        totalTimeMs: figures.qemu.totalTimeMs ?? null,
        downtimeMs: figures.qemu.downtimeMs ?? null,
        setupTimeMs: figures.qemu.setupTimeMs ?? null,
        ramBytes: figures.qemu.ramBytes ?? null,
        diskBytes: figures.qemu.diskBytes,
        dirtyBytesPerSecMax: figures.qemu.dirtyBytesPerSecMax ?? null,
      };
      r.phases = derivePhases(figures.marks, { ...r.qemu, iterations: figures.qemu.iterations ?? null });
      r.tunables = { ...figures.tunables, mirrorCopyMode: settings.mirror.copyMode };
      if (tx0 !== null && tx1 !== null) {
        r.link!.wireBytes = tx1 - tx0;
        if (settings.link.rate !== null) r.link!.efficiency = efficiency(tx1 - tx0, figures.durationMs, settings.link.rate);
      }
      r.disk = { source: sourceDisk, destination: await dataDisk(ctx, dest) };
      // Proof: the guest runs on the destination, the source QEMU is gone.
      const status = await dest.status();
      r.verified.onDestination = status === 'running';
      if (!r.verified.onDestination) r.notes.push(`destination QEMU status is ${status}, expected running`);
      await sourceProc.quit();
      r.verified.sourceGone = !sourceProc.alive;
      guest.current = dest;
      r.guestOn = { node: destination.name, status };
      if (guest.def.strategy === 'block') await rm(instanceDir(ctx.plan, 'block', source, guest.def.name), { recursive: true, force: true });
      // The guest answers ping after the switchover.
      const after = await ping.waitForReply(10_000, { sinceMs: figures.completedAt }).then(
        () => true,
        () => false,
      );
      r.verified.answersPing = after;
      if (!after) r.notes.push('no ping reply within 10 s after the migration completed');
      // Data written before the migration reads back identical.
      const md5 = await guest.readProbe(probe.offsetMiB);
      r.verified.diskIntact = md5 === probe.md5;
      if (!r.verified.diskIntact) r.notes.push(`probe MiB ${probe.offsetMiB}: md5 ${md5} after, ${probe.md5} before`);
      r.ok = r.verified.onDestination && r.verified.sourceGone && r.verified.answersPing && r.verified.diskIntact;
      if (!r.ok) r.error = `verification failed: ${r.notes.join('; ')}`;
      // Let a few more replies arrive so the gap is closed on both sides.
      await new Promise((res) => setTimeout(res, Math.max(100, 5 * scenario.ping.intervalMs)));
    } catch (e) {
      if (e instanceof MigralabError && e.code === 'INTERRUPTED') throw e;
      r.ok = false;
      r.error = e instanceof Error ? e.message : String(e);
      if (e instanceof MigrationFailed) r.guestOn = e.guestState;
      if (migrated) {
        r.error = `migrated, but the checks after it did not finish: ${r.error}`;
        if (e instanceof GuestTimeout) guest.broken = `guest ${guest.def.name} stopped answering after iteration ${index + 1}: ${(e as Error).message}`;
      } else r.notes.push('QEMU figures are missing because the migration did not complete');
    }
  } catch (e) {
    // Before the migration started: the guest did not answer ping, or QMP did not answer.
    if (e instanceof MigralabError && e.code === 'INTERRUPTED') throw e;
    r.error = `not migrated: ${(e as Error).message}`;
    r.guestOn = { node: source.name, status: await guest.current.status().catch(() => 'unknown') };
  } finally {
    pingCpuMs = ping.pid !== undefined ? processCpuMs(ping.pid) : undefined;
    const res = await ping.stop();
    r.harness!.windowMs = performance.now() - windowStart;
    r.harness!.pingCpuMs = pingCpuMs ?? null;
    const s = res.summary;
    const t0 = requestAt ?? res.replies[0]?.epochMs ?? Date.now();
    r.timeline = { t0, ping: res.replies.filter((x) => !x.dup).map((x) => [round3(x.epochMs - t0), x.rttMs ?? null, x.seq]), marks, samples };
    if (res.sentFrom !== 'ping') r.notes.push('ping printed no summary: ping.sent is the highest sequence number seen (a lower bound)');
    r.ping = {
      intervalMs: scenario.ping.intervalMs,
      sent: s.sent,
      received: s.received,
      lost: s.lost,
      maxGapMs: s.maxGapMs ?? null,
      maxGapStart: s.maxGapStartMs !== undefined ? new Date(s.maxGapStartMs).toISOString() : null,
      maxGapEnd: s.maxGapEndMs !== undefined ? new Date(s.maxGapEndMs).toISOString() : null,
      maxRttMs: s.maxRttMs ?? null,
      medianGapMs: s.medianGapMs ?? null,
      gaps: topGaps(r.timeline.ping.map((p) => p[0]), 3),
    };
    if (s.medianGapMs !== undefined && s.medianGapMs > 1.3 * scenario.ping.intervalMs)
      r.notes.push(`ping kept a ${s.medianGapMs.toFixed(1)} ms interval, not the ${scenario.ping.intervalMs} ms asked for (the kernel rounds -i of 10 ms and up to its timer ticks; ask for 9 ms or less for a finer grid)`);
  }
  // The guest's view, read wherever it runs now (destination, or source after a failure);
  // this also stops its workload and pause probe, so nothing runs on into the next iteration.
  if (!guest.broken)
    try {
      await using sh = await guest.shell();
      const offsetAfter = await clockOffset(sh);
      const p = await stopPauseProbe(sh, pause);
      r.guest!.clockLossMs = offsetAfter.offsetMs - offsetBefore.offsetMs;
      r.guest!.clockUncertaintyMs = offsetBefore.uncertaintyMs + offsetAfter.uncertaintyMs;
      r.guest!.probeMaxGapMs = p.maxGapMs;
      r.guest!.probePeriodMs = p.periodUs / 1000;
      if (workload) r.guest!.workload = await stopWorkload(sh, workload);
    } catch (e) {
      r.notes.push(`guest view not measured: ${(e as Error).message}`);
      await stopGuestSide(guest, workload, pause);
    }
  if (guest.broken && !r.notes.some((n) => n.startsWith('guest console'))) r.notes.push(`guest console (last lines): ${await guest.consoleTail(15)}`);
  if (r.ok)
    r.crossCheck = crossCheck({
      networkGapMs: r.ping.maxGapMs,
      pingIntervalMs: r.ping.medianGapMs ?? r.ping.intervalMs,
      qemuDowntimeMs: r.qemu.downtimeMs,
      guestPauseMs: r.guest!.clockLossMs,
      guestUncertaintyMs: r.guest!.clockUncertaintyMs,
      durationMs: r.durationMs,
      qemuTotalMs: r.qemu.totalTimeMs,
      bytesMoved: r.link!.wireBytes,
      linkRateBitsPerSec: r.link!.rateBitsPerSec,
    });
  return r;
}

const GUEST_PROBE_PERIOD_US = 1000;

/** Best effort: stop a workload and a pause probe in the guest after something went wrong. */
async function stopGuestSide(guest: Guest, workload: RunningWorkload | undefined, pause: RunningPauseProbe | undefined): Promise<void> {
  if (!workload && !pause) return;
  try {
    await using sh = await guest.shell();
    if (workload) await stopWorkload(sh, workload).catch(() => {});
    if (pause) await stopPauseProbe(sh, pause).catch(() => {});
  } catch {
    /* the guest is gone or hung: nothing left to stop */
  }
}

function workloadFor(s: Settings, guest: Guest) {
  const mem = s.workload.memory;
  const disk = s.workload.disk;
  if (mem.rateMiBs <= 0 && disk.rateMiBs <= 0) return undefined;
  const diskMiB = Math.floor(guest.def.diskBytes / 2 ** 20);
  return {
    memory: mem.rateMiBs > 0 ? { rateMiBs: mem.rateMiBs, workingSetBytes: mem.workingSet } : undefined,
    // Anywhere but the probe area at the end of the disk.
    disk: disk.rateMiBs > 0 ? { rateMiBs: disk.rateMiBs, offsetMiB: 0, sizeMiB: diskMiB - PROBE_AREA_MIB } : undefined,
  };
}

/** Bytes a node has sent on its uplink (interface counters), or null if unreadable. */
async function txBytes(node: NodeTransport): Promise<number | null> {
  const r = await node.run(['ip', '-j', '-s', 'link', 'show', 'dev', 'uplink'], { check: false });
  try {
    return (JSON.parse(r.stdout) as { stats64: { tx: { bytes: number } } }[])[0]!.stats64.tx.bytes;
  } catch {
    return null;
  }
}

function describeLink(l: Settings['link']): string {
  const parts = [l.rate !== null ? `${l.rate / 1e6} Mbit/s` : 'no rate cap'];
  if (l.lossPct > 0) parts.push(`${l.lossPct}% loss`);
  if (l.delayMs > 0) parts.push(`${l.delayMs} ms delay`);
  return parts.join(', ');
}

/** Microsecond resolution is what ping -D gives; more digits would be noise in the file. */
function round3(v: number): number {
  return Math.round(v * 1000) / 1000;
}

/** Where QEMU itself says the data disk is (protocol node under disk0). */
async function dataDisk(ctx: LabContext, p: QemuProcess): Promise<DiskLocation> {
  const nodes = await p.qmp.execute<{ 'node-name': string; drv: string; file: string }[]>('query-named-block-nodes', { flat: true });
  const proto = nodes.find((n) => (n.drv === 'file' || n.drv === 'nfs') && n.file.endsWith('/disk.qcow2'));
  if (!proto) return { driver: 'unknown', filename: '', onExport: false };
  const path = proto.drv === 'nfs' ? proto.file.replace(/^nfs:\/\/[^/]+/, '') : proto.file;
  const exportRoots = [ctx.info.nfs.exportPath, ctx.info.nfs.mountPoint].filter((x): x is string => !!x);
  return { driver: proto.drv, filename: proto.file, onExport: exportRoots.some((root) => path.startsWith(root + '/')) };
}

