import { describe, it, expect } from 'vitest';
import { parseConfig } from '../../../lab/config/load.ts';
import { scenarioSchema, loadScenario } from '../../../lab/config/scenario.ts';
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
