import { describe, it, expect } from 'vitest';
import { parseConfig } from '../../../lab/config/load.ts';
import { scenarioSchema, loadScenario, destinationFor } from '../../../lab/config/scenario.ts';
import { parseSize } from '../../../lab/config/size.ts';
import { ConfigError } from '../../../lab/errors.ts';

describe('scenario file', () => {
  it('loads the shipped block-vs-shared scenario', async () => {
    const s = await loadScenario('scenarios/block-vs-shared.yaml');
    expect(s.strategies).toEqual(['block', 'shared']);
    expect(s.repetitions).toBe(3);
    expect(s.guest).toEqual({ memory: 256 * 2 ** 20, disk: 512 * 2 ** 20, diskData: 200 * 2 ** 20 });
    expect(s.ping.intervalMs).toBe(10);
  });

  it('fills defaults for a minimal file', () => {
    const s = parseConfig('s.yaml', 'name: tiny\n', scenarioSchema);
    expect(s).toMatchObject({ strategies: ['block', 'shared'], repetitions: 3, ping: { intervalMs: 10 } });
  });

  const issuesOf = (text: string) => {
    try {
      parseConfig('s.yaml', text, scenarioSchema);
    } catch (e) {
      return (e as ConfigError).issues.map((i) => `${i.line}:${i.col} ${i.field}: ${i.expected}`);
    }
    return [];
  };

  it('refuses what cannot run, where it is written: a working set the guest cannot hold, a huge guest, duplicates', () => {
    expect(issuesOf('name: x\nguest: { memory: 128MiB }\nworkload: { memory: { rateMiBs: 5, workingSet: 512MiB } }\n')).toEqual([
      expect.stringMatching(/^3:48 workload\.memory\.workingSet: expected at most the guest memory minus 48MiB .*\(80MiB here\)/),
    ]);
    expect(issuesOf('name: x\nguest: { memory: 128MiB }\nworkload: { memory: { rateMiBs: 5 } }\naxes:\n  workload.memory.workingSet: [16MiB, 1GiB]\n')).toEqual([
      expect.stringMatching(/^5:39 axes\.workload\.memory\.workingSet\[1\]: expected at most/),
    ]);
    // no memory workload: its working set is not used, so not refused
    expect(issuesOf('name: x\nguest: { memory: 128MiB }\n')).toEqual([]);
    expect(issuesOf('name: x\nguest: { memory: 100000GiB }\n')).toEqual(['2:18 guest.memory: expected at most 64GiB']);
    // the measured minimum: 80 MiB never became ready here, 88 MiB did
    expect(issuesOf('name: x\nguest: { memory: 80MiB }\n')).toEqual(['2:18 guest.memory: expected guest memory of at least 96MiB (80MiB did not boot here)']);
    expect(issuesOf('name: x\nguest: { memory: 96MiB }\n')).toEqual([]);
    expect(issuesOf('name: x\nstrategies: [shared, shared]\n')).toEqual(['2:22 strategies[1]: strategy shared is listed twice']);
  });

  it('refuses a YAML alias bomb with a location instead of expanding it', () => {
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x]', ...'bcdefg'.split('').map((k, i) => `${k}: &${k} [${Array(9).fill(`*${'abcdef'[i]}`).join(', ')}]`), 'name: x', ''].join('\n');
    expect(issuesOf(bomb)).toEqual([expect.stringMatching(/^1:1 : invalid YAML: .*alias/i)]);
  });

  it('points at each bad field', () => {
    const text = ['name: x', 'strategies: [block, sharde]', 'guest:', '  memory: 12 apples', 'ping:', '  intervalMs: 0.5', ''].join('\n');
    try {
      parseConfig('bad.yaml', text, scenarioSchema);
      throw new Error('no error');
    } catch (e) {
      const issues = (e as ConfigError).issues;
      expect(issues.map((i) => `${i.line}:${i.col} ${i.field}`)).toEqual(['2:21 strategies[1]', '4:11 guest.memory', '6:15 ping.intervalMs']);
      expect(issues[1]!.expected).toMatch(/size like 256MiB/);
    }
  });

  it('refuses more disk data than the disk holds', () => {
    expect(() => parseConfig('s.yaml', 'name: x\nguest: { disk: 64MiB, diskData: 64MiB }\n', scenarioSchema)).toThrow(/guest\.diskData: expected at most the disk size/);
  });

  it('parses sizes', () => {
    expect(parseSize('256MiB')).toBe(256 * 2 ** 20);
    expect(parseSize('1GiB')).toBe(2 ** 30);
    expect(parseSize('512')).toBe(512);
    expect(parseSize('12 apples')).toBeUndefined();
  });
});

describe('a scenario as run (results.json) parses again to itself', () => {
  it('is idempotent', async () => {
    const s = await loadScenario('scenarios/block-vs-shared.yaml');
    expect(scenarioSchema.parse(JSON.parse(JSON.stringify(s)))).toEqual(s);
  });
});

describe('placement: where each migration goes', () => {
  const nodes = ['controller', 'compute1', 'compute2', 'compute3'].map((name) => ({ name }));
  const walk = (placement: 'back-and-forth' | 'round-robin', steps: number) => {
    let at = nodes[0]!;
    const out = [at.name];
    for (let i = 0; i < steps; i++) out.push((at = destinationFor(placement, nodes, at)).name);
    return out;
  };
  it('back-and-forth: between the first two compute nodes, whatever else the lab has', () => {
    expect(walk('back-and-forth', 3)).toEqual(['controller', 'compute1', 'controller', 'compute1']);
  });
  it('round-robin: the next compute node in topology order, wrapping around', () => {
    expect(walk('round-robin', 5)).toEqual(['controller', 'compute1', 'compute2', 'compute3', 'controller', 'compute1']);
  });
});
