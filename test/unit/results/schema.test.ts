import { readFileSync } from 'node:fs';
import { describe, it, expect } from 'vitest';
import { scenarioSchema } from '../../../lab/config/scenario.ts';
import { recordedScenario, resultsSchema, scenarioOf, UnreadScenario } from '../../../lab/results/schema.ts';
import { makeResults } from './fixtures.ts';

const fixtures = ['matrix', 'small', 'small-no-timeline'].map((f) => `test/fixtures/results/${f}.results.json`);

describe('scenario.asRun', () => {
  it.each(fixtures)('%s: reads into the scenario type, and reads again to the same scenario', (file) => {
    const raw = JSON.parse(readFileSync(file, 'utf8'));
    const r = resultsSchema.parse(raw);
    const s = scenarioOf(r)!;
    expect(s).toBeDefined();
    expect(s.name).toBe(raw.scenario.name);
    expect(s.strategies).toEqual(raw.scenario.asRun.strategies);
    expect(scenarioSchema.parse(s)).toEqual(s);
    // what the runner wrote reads back as written (an older file gains the defaults of newer settings)
    expect(s).toMatchObject(raw.scenario.asRun);
    expect(resultsSchema.parse(JSON.parse(JSON.stringify(r)))).toEqual(r);
  });

  it('keeps one the scenario schema refuses as written, without taking it for a scenario', () => {
    const recorded = { strategies: ['shared', 'block', 'rsync'], guest: { memory: 1 } };
    const r = makeResults({ block: [{ durationMs: 1 }] }, {}, { asRun: recorded });
    expect(r.scenario.asRun).toBeInstanceOf(UnreadScenario);
    expect(scenarioOf(r)).toBeUndefined();
    expect(recordedScenario(r)).toEqual(recorded);
    expect(r.scenario.asRun.strategies).toEqual(['shared', 'block']);
    expect(JSON.parse(JSON.stringify(r)).scenario.asRun).toEqual(recorded);
    expect(makeResults({}, {}, { asRun: { name: 'x', strategies: 'block' } }).scenario.asRun.strategies).toBeUndefined();
  });
});
