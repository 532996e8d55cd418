/**
 * A four-node lab (controller + compute1..compute3, three NFS clients) and placement:
 * round-robin, for real: every node a source and a destination, both strategies, every
 * migration proven, nothing left after down. And a host drain: 3 guests leave compute1,
 * 2 at a time, the overlap on the drain's timeline, every migration proven.
 */
import { describe, it, expect } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, labScratch, leftovers } from './helpers.ts';
import { loadTopology } from '../../lab/config/topology.ts';
import { planLab } from '../../lab/provision/plan.ts';
import type { Results } from '../../lab/results/schema.ts';

const FOUR = 'test/fixtures/four.lab.yaml';

describe('four nodes, round robin', () => {
  const scratch = labScratch('mlfour-', { topology: FOUR });

  it('moves each guest round the lab, every hop proven, and leaves nothing behind', async () => {
    const plan = planLab(await loadTopology(FOUR));
    const r = await cli(['run', 'test/fixtures/round-robin.yaml', '--results-dir', scratch.dir], { timeoutMs: 280_000 });
    expect(r.exitCode, r.all).toBe(0);
    const res = JSON.parse(readFileSync(join(scratch.dir, 'results.json'), 'utf8')) as Results;
    for (const strategy of ['block', 'shared'] as const) {
      const its = res.iterations.filter((i) => i.strategy === strategy);
      expect(its.map((i) => `${i.source}->${i.destination}`)).toEqual(['controller->compute1', 'compute1->compute2', 'compute2->compute3', 'compute3->controller']);
      for (const i of its) {
        expect(i.ok, `${strategy} ${i.source}->${i.destination}: ${i.error}`).toBe(true);
        expect(i.verified.sourceGone && i.verified.diskIntact && i.verified.ramIntact && i.verified.answersPing).toBe(true);
      }
    }
    expect((res.scenario.asRun as { placement?: string }).placement).toBe('round-robin');
    // the run raised the lab and took it down
    expect(await leftovers(plan)).toEqual([]);
  }, 300_000);

  it('drains compute1: 3 guests, 2 at a time, overlapping on one timeline, each migration proven on its own', async () => {
    const plan = planLab(await loadTopology(FOUR));
    const dir = join(scratch.dir, 'drain');
    const r = await cli(['run', 'test/fixtures/drain.yaml', '--results-dir', dir], { timeoutMs: 280_000 });
    expect(r.exitCode, r.all).toBe(0);
    const res = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as Results;
    expect(res.drains!.map((d) => `${d.strategy}/${d.concurrency}/${d.guests}`)).toEqual(['block/2/3', 'shared/2/3']);
    for (const d of res.drains!) {
      expect(d.ok, JSON.stringify(d)).toBe(true);
      expect(d.from).toBe('compute1');
      expect(d.migrations.map((m) => m.destination)).toEqual(['controller', 'compute2', 'compute3']);
      // the overlap is visible: two migrations ran at once, never three
      expect(d.maxOverlap).toBe(2);
      const w = d.migrations.map((m) => [m.startMs!, m.endMs!] as const).sort((a, b) => a[0] - b[0]);
      expect(w[1]![0]).toBeLessThan(w[0]![1]);
      // the third started only once one of the first two had ended
      expect(w[2]![0]).toBeGreaterThanOrEqual(Math.min(w[0]![1], w[1]![1]));
      expect(Math.min(...w.map((x) => x[0]))).toBe(0);
      expect(d.totalMs).toBeCloseTo(Math.max(...w.map((x) => x[1])), 6);
      expect(d.prepareMs).toBeGreaterThan(0);
      expect(d.wireBytes).toBeGreaterThan(3 * 60 * 2 ** 20); // three guests' RAM at least
      const its = res.iterations.filter((i) => i.drain?.id === d.id);
      expect(its).toHaveLength(3);
      for (const i of its) {
        expect(i.ok, `${i.drain!.guest}: ${i.error}`).toBe(true);
        expect(i.source).toBe('compute1');
        expect(i.verified).toEqual({ onDestination: true, sourceGone: true, diskIntact: true, ramIntact: true, answersPing: true });
        expect(d.migrations.find((m) => m.guest === i.drain!.guest)!.maxGapMs).toBe(i.ping.maxGapMs);
        // another migration left compute1 at the same time: its bytes are not this one's alone
        expect(i.link!.wireBytes).toBeNull();
        expect(i.harness!.cpuMs).toBeNull();
        expect(i.notes.join(' ')).toMatch(/link\.wireBytes and harness\.cpuMs not measured for this migration alone/);
      }
    }
    expect(res.summary!.drains!.map((s) => [s.strategy, s.concurrency, s.drains, s.failed])).toEqual([['block', 2, 1, 0], ['shared', 2, 1, 0]]);
    expect(r.stdout).toMatch(/drain of compute1, 3 guests .*\n.*\nblock, concurrency=2 +1\/1 +\d+\.\d/);
    // the report draws every drain's migrations on its timeline
    const rep = await cli(['report', dir, '-o', join(dir, 'report.html'), '--no-exports']);
    expect(rep.exitCode, rep.all).toBe(0);
    const html = readFileSync(join(dir, 'report.html'), 'utf8');
    expect(html.match(/<svg class="drain-timeline" data-drain="\d"/g)).toHaveLength(2);
    expect(html.match(/<rect class="drain-bar s-(block|shared)"/g)).toHaveLength(6);
    expect(existsSync(join(dir, 'summary.md')) && readFileSync(join(dir, 'summary.md'), 'utf8')).toMatch(/## Drains/);
    expect(await leftovers(plan)).toEqual([]);
  }, 300_000);
});
