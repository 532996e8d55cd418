/**
 * Host drains (`placement: { drain: NODE }`), nova's host-evacuate-live: K guests boot on
 * NODE, then all of them leave it for the other compute nodes (round robin), N migrations
 * at a time. Each migration is an ordinary iteration with its own observers and proofs
 * (ping, probe, RAM, source gone); the drain adds its total time, the migrations' windows
 * on one timeline, and the bytes the drained node sent. Guests are booted afresh for every
 * drain (they left the node) and destroyed after it.
 */
import { drainDestinations, type DrainPlacement, type Scenario } from '../config/scenario.ts';
import { MigralabError } from '../errors.ts';
import type { MigrationDriver } from '../migrate/types.ts';
import type { StartedLab } from '../provision/provider.ts';
import { buildLabel, type QemuBuild } from '../qemu/builds.ts';
import { drainTotalMs, maxOverlap } from '../results/drains.ts';
import type { DrainRecord, IterationResult } from '../results/schema.ts';
import { MIGRATION_PORT, NBD_PORT } from '../migrate/qemu/driver.ts';
import type { Cell } from './matrix.ts';
import { bootAll, bootSummary, GuestSlot, guestName, labGuestSpec, type GuestBoot } from './guests.ts';
import { runIteration, type IterationContext } from './iteration.ts';
import type { RunEvents } from './run.ts';

/** The ports guest `i` of a drain migrates on (qemu driver): each its own, as several arrive at one node at once. */
export const drainPorts = (i: number) => ({ migration: MIGRATION_PORT + 1 + i, nbd: NBD_PORT + 1 + i });

/** Every drain of a scenario, in run order (pure): per repetition, per concurrency, per cell. */
export function drainPlan(s: Scenario, cells: readonly Cell[]): { cell: Cell; concurrency: number; repetition: number }[] {
  const out: { cell: Cell; concurrency: number; repetition: number }[] = [];
  for (let r = 1; r <= s.repetitions; r++) for (const n of s.concurrency) for (const c of cells) out.push({ cell: withConcurrency(c, n), concurrency: n, repetition: r });
  return out;
}

/** A cell with its concurrency as a parameter: iterations of different N are summarized apart. */
export function withConcurrency(c: Cell, n: number): Cell {
  const group = c.group ? `${c.group}, concurrency=${n}` : `concurrency=${n}`;
  return { ...c, label: `${c.strategy}, ${group}`, group, params: { ...c.params, concurrency: n } };
}

export interface DrainContext {
  lab: StartedLab;
  scenario: Scenario;
  builds: ReadonlyMap<string, QemuBuild>;
  drivers: ReadonlyMap<string, MigrationDriver>;
  /** Guests alive now, so the run's clean-up stops them on any exit. */
  slots: Map<string, GuestSlot>;
  iteration: Omit<IterationContext, 'beforeMigrate' | 'onMigrate' | 'concurrentFromSource'>;
  step(m: string): void;
  iterationStart?: RunEvents['iterationStart'];
  /** Each iteration as it ends (the run saves it). */
  iterationEnd(r: IterationResult): Promise<void>;
  /** Each drain as it ends. */
  drainEnd(d: DrainRecord): Promise<void>;
  /** How each drain's guests were started (results.sizing.boot). */
  booted(guests: GuestBoot[]): void;
  /** Before each drain: the cell's link conditions (with every port a drain migrates on). */
  applyLink(cell: Cell): Promise<void>;
}

/** Runs every drain; returns whether Ctrl-C ended it. */
export async function runDrains(ctx: DrainContext, cells: readonly Cell[]): Promise<{ interrupted: boolean }> {
  const { lab, scenario } = ctx;
  const placement = scenario.placement as DrainPlacement;
  const from = lab.computes.find((n) => n.name === placement.drain);
  if (!from) throw new MigralabError('CONFIG', `placement.drain: ${placement.drain} is not a compute node of lab ${lab.plan.lab}`);
  const destinations = drainDestinations(lab.computes, from.name, scenario.guests);
  const order = drainPlan(scenario, cells);
  const total = order.length * scenario.guests;
  let index = 0;
  for (const [id, { cell, concurrency, repetition }] of order.entries()) {
    if (ctx.iteration.signal?.aborted) return { interrupted: true };
    const build = ctx.builds.get(buildLabel(cell.settings.hypervisor.qemu))!;
    const base = guestName(cell.strategy, cell.driver, build.id, { manyDrivers: scenario.drivers.length > 1, manyBuilds: ctx.builds.size > 1 });
    const guests = Array.from({ length: scenario.guests }, (_, i) => {
      const spec = labGuestSpec(lab, { name: `${base}-${i + 1}`, strategy: cell.strategy, index: i, memoryBytes: scenario.guest.memory, diskBytes: scenario.guest.disk, diskDataBytes: scenario.guest.diskData, build });
      const slot = new GuestSlot(cell.driver === 'qemu' ? { ...spec, ports: drainPorts(i) } : spec, ctx.drivers.get(cell.driver)!);
      ctx.slots.set(`drain|${i}`, slot);
      return slot;
    });
    ctx.step(`drain ${id + 1}/${order.length} (${cell.label}, #${repetition}): booting ${guests.map((g) => `${g.name} (${g.spec.ip})`).join(', ')} on ${from.name}`);
    const booted = await bootAll(guests, from, ctx.iteration.signal);
    ctx.booted(booted.guests);
    ctx.step(`${bootSummary(booted)}; ${guests.length} leave ${from.name}, ${concurrency} at a time`);
    await ctx.applyLink(cell);

    // Every guest is prepared at once (probe, workload, ping); then N migrate at a time, the
    // next one starting as one ends. The drain's time runs from the first request to the last end.
    const t0 = performance.now();
    const tx0 = await from.txBytes();
    const windows = guests.map(() => ({ startMs: null as number | null, endMs: null as number | null }));
    const results: (IterationResult | undefined)[] = guests.map(() => undefined);
    const gate = new Semaphore(concurrency);
    const base0 = index;
    index += guests.length;
    let interrupted = false;
    // allSettled: one guest's failure (a results file that cannot be written, say) must not end
    // the drain while the others still migrate; it is thrown once all of them are done
    const settled = await Promise.allSettled(
      guests.map(async (slot, i) => {
        const it = base0 + i;
        let held = false;
        try {
          const r = await runIteration(
            {
              ...ctx.iteration,
              beforeMigrate: async () => {
                await gate.acquire(ctx.iteration.signal);
                held = true;
              },
              onMigrate: (edge) => {
                windows[i]![edge === 'start' ? 'startMs' : 'endMs'] = performance.now() - t0;
                if (edge === 'start')
                  ctx.iterationStart?.({ index: it, total, strategy: cell.strategy, cell: cell.label, repetition, source: from.name, destination: destinations[i]!.name, address: slot.spec.ip, guest: slot.name, concurrent: concurrency > 1 });
                if (edge === 'end' && held) {
                  held = false;
                  gate.release();
                }
              },
              ...(concurrency > 1 ? { concurrentFromSource: `${concurrency} migrations left ${from.name} at a time in this drain` } : {}),
            },
            slot,
            { index: it, repetition, cell, source: from, destination: destinations[i]!, drain: { id: id + 1, guest: slot.name } },
          );
          results[i] = r.result;
          await ctx.iterationEnd(r.result);
          if (r.interrupted) interrupted = true;
        } finally {
          // an iteration that failed between the gate and its migration gives its turn back
          if (held) gate.release();
        }
      }),
    );
    const thrown = settled.find((x): x is PromiseRejectedResult => x.status === 'rejected');
    if (thrown) throw thrown.reason;
    const tx1 = await from.txBytes();
    const wallMs = performance.now() - t0;
    const done = results.filter((r): r is IterationResult => r !== undefined);
    // the timeline starts at the first migration's request: what came before is preparation
    const starts = windows.map((w) => w.startMs).filter((v): v is number => v !== null);
    const prepareMs = starts.length ? Math.min(...starts) : null;
    if (prepareMs !== null) for (const w of windows) for (const k of ['startMs', 'endMs'] as const) if (w[k] !== null) w[k] = w[k]! - prepareMs;
    const record: DrainRecord = {
      id: id + 1,
      strategy: cell.strategy,
      driver: cell.driver,
      cell: cell.label,
      repetition,
      from: from.name,
      guests: guests.length,
      concurrency,
      totalMs: drainTotalMs(windows),
      prepareMs,
      wallMs,
      wireBytes: tx0 !== null && tx1 !== null ? tx1 - tx0 : null,
      maxOverlap: maxOverlap(windows),
      ok: done.length === guests.length && done.every((r) => r.ok),
      migrations: guests.map((g, i) => ({
        iteration: base0 + i,
        guest: g.name,
        destination: destinations[i]!.name,
        startMs: windows[i]!.startMs,
        endMs: windows[i]!.endMs,
        ok: results[i]?.ok ?? false,
        maxGapMs: results[i]?.ping.maxGapMs ?? null,
      })),
    };
    await ctx.drainEnd(record);
    const mib = record.wireBytes !== null ? `, ${(record.wireBytes / 2 ** 20).toFixed(1)} MiB sent by ${from.name}` : '';
    ctx.step(`drain ${id + 1}: ${record.ok ? 'ok' : 'FAILED'}, ${guests.length} guests in ${record.totalMs !== null ? `${record.totalMs.toFixed(1)} ms` : '(no migration ran)'}, at most ${record.maxOverlap} at once${mib}`);
    for (const [i, g] of guests.entries()) {
      await g.destroy();
      ctx.slots.delete(`drain|${i}`);
    }
    if (interrupted) return { interrupted: true };
  }
  return { interrupted: false };
}

/** N permits, handed out in request order; an aborted wait rejects with the run's INTERRUPTED. */
export class Semaphore {
  private waiting: (() => void)[] = [];
  constructor(private free: number) {}
  async acquire(signal?: AbortSignal): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const go = () => {
        signal?.removeEventListener('abort', stop);
        resolve();
      };
      const stop = () => {
        this.waiting = this.waiting.filter((w) => w !== go);
        reject(new MigralabError('INTERRUPTED', 'interrupted while waiting for a turn to migrate'));
      };
      if (signal?.aborted) return stop();
      signal?.addEventListener('abort', stop, { once: true });
      this.waiting.push(go);
    });
  }
  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}
