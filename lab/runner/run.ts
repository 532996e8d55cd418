import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, resolve, join } from 'node:path';
import { loadScenario, type Scenario, type Strategy } from '../config/scenario.ts';
import { loadTopology } from '../config/topology.ts';
import { MigralabError } from '../errors.ts';
import { planLab, type NodePlan } from '../provision/plan.ts';
import { up, down, observerTransport } from '../provision/local.ts';
import { Ledger } from '../state/ledger.ts';
import { PingProbe } from '../measure/ping.ts';
import { migrate, MigrationFailed, type MigrationProgress } from '../migrate/driver.ts';
import { instanceDir } from '../migrate/storage.ts';
import { Guest, type LabContext } from './guest.ts';
import type { QemuProcess } from '../qemu/instance.ts';
import { evaluateThresholds, type ThresholdCheck } from '../report/thresholds.ts';
import { writeExports } from '../report/exports.ts';
import type { DiskLocation } from './results.ts';
import { summarize, RESULTS_SCHEMA, RESULTS_VERSION, type IterationResult, type Results } from './results.ts';

export interface RunEvents {
  step?(msg: string): void;
  iterationStart?(it: { index: number; total: number; strategy: Strategy; repetition: number; source: string; destination: string }): void;
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

/** Interleaved order: block, shared, block, shared, ... */
export function plan(scenario: Pick<Scenario, 'strategies' | 'repetitions'>): { strategy: Strategy; repetition: number }[] {
  const out: { strategy: Strategy; repetition: number }[] = [];
  for (let r = 1; r <= scenario.repetitions; r++) for (const strategy of scenario.strategies) out.push({ strategy, repetition: r });
  return out;
}

export function defaultResultsDir(scenarioName: string, now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return join('results', `${stamp}-${scenarioName}`);
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

  const raised = await up(topology, topologyFile, step);
  if (raised.alreadyUp) step(`lab ${labPlan.lab} is already up`);
  else step(`lab ${labPlan.lab} up in ${(raised.info.upMs / 1000).toFixed(2)} s (${raised.info.environment.accelerator}, NFS client: ${raised.info.nfs.client})`);
  const ledger = await Ledger.open(labPlan.ledgerFile, labPlan.lab);
  const interrupted = () => {
    if (opts.signal?.aborted) throw new MigralabError('INTERRUPTED', 'interrupted');
  };
  const ctx: LabContext = { plan: labPlan, info: raised.info, ledger };

  const resultsDir = resolve(opts.resultsDir ?? defaultResultsDir(scenario.name));
  await mkdir(resultsDir, { recursive: true });
  const resultsFile = join(resultsDir, 'results.json');
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
  try {
    interrupted(); // Ctrl-C while the lab came up
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
    for (const [index, { strategy, repetition }] of order.entries()) {
      interrupted();
      const guest = guests.get(strategy)!;
      const source = guest.current.placement.node;
      const destination = computes.find((n) => n.name !== source.name)!;
      ev.iterationStart?.({ index, total: order.length, strategy, repetition, source: source.name, destination: destination.name });
      const r = await iterate(ctx, guest, scenario, index, repetition, source, destination, opts, ev);
      results.iterations.push(r);
      await save();
      ev.iterationEnd?.(r);
    }
  } catch (e) {
    if (e instanceof MigralabError && e.code === 'INTERRUPTED') results.interrupted = true;
    else throw e;
  } finally {
    for (const g of guests.values()) await g.destroy();
    results.finishedAt = new Date().toISOString();
    results.summary = summarize(results.iterations, scenario.strategies);
    await save();
    if (!raised.alreadyUp && !opts.keepLab) {
      step(`taking lab ${labPlan.lab} down (this run raised it)`);
      await down(labPlan);
    }
  }
  const checks = scenario.thresholds && !results.interrupted ? evaluateThresholds(results, scenario.thresholds) : [];
  const exports = await writeExports(resultsDir, results, checks);
  if (results.interrupted) throw new MigralabError('INTERRUPTED', `interrupted; partial results in ${resultsFile}`);
  return { results, resultsFile, failed: results.iterations.filter((i) => !i.ok).length, checks, exports };
}

async function iterate(
  ctx: LabContext,
  guest: Guest,
  scenario: Scenario,
  index: number,
  repetition: number,
  source: NodePlan,
  destination: NodePlan,
  opts: RunOptions,
  ev: RunEvents,
): Promise<IterationResult> {
  const r: IterationResult = {
    index,
    strategy: guest.def.strategy,
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
    verified: { onDestination: false, sourceGone: false, diskIntact: false, answersPing: false },
    notes: [],
  };
  const probe = await guest.writeProbe(index);
  let requestAt: number | undefined;
  const marks: { mirrorReady: number | null; completed: number | null } = { mirrorReady: null, completed: null };
  const ping = PingProbe.start({ prefix: [...observerTransport(ctx.plan).prefix], target: guest.def.ip, intervalMs: scenario.ping.intervalMs });
  try {
    await ping.waitForReply(10_000);
    const sourceProc = guest.current;
    const sourceDisk = await dataDisk(ctx, sourceProc);
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
        ledger: ctx.ledger,
        onProgress: ev.progress,
        signal: opts.signal,
      });
      requestAt = figures.startedAt;
      marks.completed = figures.durationMs;
      marks.mirrorReady = figures.mirrorMs ?? null;
      r.durationMs = figures.durationMs;
      r.prepareMs = figures.prepareMs;
      r.mirrorMs = figures.mirrorMs ?? null;
      r.qemu = {
        totalTimeMs: figures.qemu.totalTimeMs ?? null,
        downtimeMs: figures.qemu.downtimeMs ?? null,
        setupTimeMs: figures.qemu.setupTimeMs ?? null,
        ramBytes: figures.qemu.ramBytes ?? null,
        diskBytes: figures.qemu.diskBytes,
      };
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
      r.notes.push('QEMU figures are missing because the migration did not complete');
    }
  } finally {
    const res = await ping.stop();
    const s = res.summary;
    const t0 = requestAt ?? res.replies[0]?.epochMs ?? Date.now();
    r.timeline = { t0, ping: res.replies.filter((x) => !x.dup).map((x) => [round3(x.epochMs - t0), x.rttMs ?? null, x.seq]), marks };
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
    };
    if (s.medianGapMs !== undefined && s.medianGapMs > 1.3 * scenario.ping.intervalMs)
      r.notes.push(`ping kept a ${s.medianGapMs.toFixed(1)} ms interval, not the ${scenario.ping.intervalMs} ms asked for (the kernel rounds -i of 10 ms and up to its timer ticks; ask for 9 ms or less for a finer grid)`);
  }
  return r;
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

