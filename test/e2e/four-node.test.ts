/**
 * A four-node lab (controller + compute1..compute3, three NFS clients) and placement:
 * round-robin, for real: every node a source and a destination, both strategies, every
 * migration proven, nothing left after down.
 */
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
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
});
