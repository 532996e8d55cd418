import { describe, it, expect } from 'vitest';
import { drainDestinations } from '../../../lab/config/scenario.ts';
import { drainTotalMs, maxOverlap, summarizeDrains } from '../../../lab/results/drains.ts';
import { drainPlan, drainPorts, Semaphore, withConcurrency } from '../../../lab/runner/drain.ts';
import { expandCells } from '../../../lab/runner/matrix.ts';
import { hostMemoryRefusal } from '../../../lab/runner/run.ts';
import { scenarioSchema } from '../../../lab/config/scenario.ts';
import type { DrainRecord } from '../../../lab/results/schema.ts';

const nodes = ['controller', 'compute1', 'compute2', 'compute3'].map((name) => ({ name }));

describe('drain placement', () => {
  it('sends the guests to the other compute nodes round robin, never to the drained one', () => {
    expect(drainDestinations(nodes, 'compute1', 5).map((n) => n.name)).toEqual(['controller', 'compute2', 'compute3', 'controller', 'compute2']);
    expect(drainDestinations(nodes.slice(0, 2), 'controller', 2).map((n) => n.name)).toEqual(['compute1', 'compute1']);
    expect(() => drainDestinations(nodes.slice(0, 1), 'controller', 1)).toThrow(/needs another compute node/);
  });

  it('gives each guest of a drain its own migration and NBD ports, away from the defaults', () => {
    const ports = [0, 1, 2, 3].flatMap((i) => Object.values(drainPorts(i)));
    expect(new Set(ports).size).toBe(8);
    expect(ports).not.toContain(4444);
    expect(ports).not.toContain(10809);
  });

  it('plans every drain: per repetition, per concurrency, per cell, each cell labelled with its concurrency', () => {
    const s = scenarioSchema.parse({ name: 'd', placement: { drain: 'compute1' }, guests: 4, concurrency: [1, 2, 4], repetitions: 2 });
    const p = drainPlan(s, expandCells(s));
    expect(p.map((d) => `${d.repetition}:${d.cell.label}`)).toEqual([
      '1:block, concurrency=1', '1:shared, concurrency=1', '1:block, concurrency=2', '1:shared, concurrency=2', '1:block, concurrency=4', '1:shared, concurrency=4',
      '2:block, concurrency=1', '2:shared, concurrency=1', '2:block, concurrency=2', '2:shared, concurrency=2', '2:block, concurrency=4', '2:shared, concurrency=4',
    ]);
    const c = withConcurrency(expandCells(scenarioSchema.parse({ name: 'd', placement: { drain: 'compute1' }, drivers: ['qemu', 'libvirt'] }))[0]!, 3);
    expect(c).toMatchObject({ label: 'block, driver=qemu, concurrency=3', group: 'driver=qemu, concurrency=3', params: { driver: 'qemu', concurrency: 3 } });
    // a number is a list of one
    expect(scenarioSchema.parse({ name: 'd', placement: { drain: 'compute1' }, guests: 2, concurrency: 2 }).concurrency).toEqual([2]);
  });

  it('refuses more guest memory than the host has: K guests and a destination per migration at once', () => {
    const s = scenarioSchema.parse({ name: 'd', placement: { drain: 'compute1' }, guests: 4, concurrency: [1, 4] });
    const cells = expandCells(s);
    const GiB = 1024 ** 3;
    // 4 guests + 4 destinations of 1 GiB
    expect(hostMemoryRefusal(cells, GiB, 7.9 * GiB, { guests: 4, concurrency: 4 })).toMatch(/need 8\.0GiB/);
    expect(hostMemoryRefusal(cells, GiB, 8 * GiB, { guests: 4, concurrency: 4 })).toBeNull();
  });
});

describe('drain figures', () => {
  it('counts the most migrations at one moment; one ending where the next starts does not overlap it', () => {
    expect(maxOverlap([{ startMs: 0, endMs: 10 }, { startMs: 10, endMs: 20 }, { startMs: 20, endMs: 30 }])).toBe(1);
    expect(maxOverlap([{ startMs: 0, endMs: 10 }, { startMs: 5, endMs: 20 }, { startMs: 6, endMs: 7 }, { startMs: 15, endMs: 30 }])).toBe(3);
    expect(maxOverlap([{ startMs: 0, endMs: null }, { startMs: null, endMs: null }])).toBe(0);
  });

  it('times a drain from the first request to the last end; null when nothing migrated', () => {
    expect(drainTotalMs([{ startMs: 0, endMs: 700 }, { startMs: 20, endMs: 650 }, { startMs: 650, endMs: 1300 }])).toBe(1300);
    expect(drainTotalMs([{ startMs: null, endMs: null }])).toBeNull();
  });

  it('summarizes drain time per strategy and concurrency over the drains that succeeded', () => {
    const d = (id: number, strategy: 'block' | 'shared', concurrency: number, totalMs: number, ok = true): DrainRecord => ({
      id, strategy, driver: 'qemu', cell: `${strategy}, concurrency=${concurrency}`, repetition: 1, from: 'compute1', guests: 2, concurrency,
      totalMs, prepareMs: 900, wallMs: totalMs + 2000, wireBytes: 100 * 2 ** 20, maxOverlap: concurrency, ok,
      migrations: [
        { iteration: 0, guest: 'a', destination: 'controller', startMs: 0, endMs: totalMs / 2, ok, maxGapMs: 80 },
        { iteration: 1, guest: 'b', destination: 'compute2', startMs: 0, endMs: totalMs, ok: true, maxGapMs: 120 },
      ],
    });
    const s = summarizeDrains([d(1, 'block', 1, 3000), d(2, 'shared', 1, 1500), d(3, 'block', 1, 2000), d(4, 'block', 1, 9000, false)]);
    expect(s.map((x) => [x.strategy, x.concurrency, x.drains, x.failed, x.totalMs.median, x.worstGapMs.median])).toEqual([
      ['block', 1, 3, 1, 2500, 120],
      ['shared', 1, 1, 0, 1500, 120],
    ]);
  });

  it('lets N through at once and the next as one is released; an aborted wait rejects as an interrupt', async () => {
    const g = new Semaphore(2);
    const order: string[] = [];
    await g.acquire();
    await g.acquire();
    const third = g.acquire().then(() => order.push('third'));
    await new Promise((r) => setTimeout(r, 10));
    expect(order).toEqual([]);
    g.release();
    await third;
    expect(order).toEqual(['third']);
    const ac = new AbortController();
    const fourth = g.acquire(ac.signal);
    ac.abort();
    await expect(fourth).rejects.toMatchObject({ code: 'INTERRUPTED' });
  });
});
