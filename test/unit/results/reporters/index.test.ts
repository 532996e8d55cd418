import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, it, expect } from 'vitest';
import { defaultReporters, exportFiles, reporters, writeReports } from '../../../../lab/results/reporters/index.ts';
import { toCsv } from '../../../../lab/results/reporters/csv.ts';
import { toJUnit } from '../../../../lab/results/reporters/junit.ts';
import { toMarkdown } from '../../../../lab/results/reporters/markdown.ts';
import { resultsSchema } from '../../../../lab/results/schema.ts';
import { evaluateThresholds } from '../../../../lab/results/thresholds.ts';
import { loadMatrix } from '../fixtures.ts';

describe('writeReports', () => {
  let dir: string;
  beforeAll(async () => void (dir = await mkdtemp(join(tmpdir(), 'mlreports-'))));
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const m = loadMatrix();
  const checks = evaluateThresholds(m, { maxDurationMs: 1000, statistic: 'max' });

  it('writes the CSV, JUnit and Markdown exports by default, with the checks given', async () => {
    const files = await writeReports(dir, m, checks);
    expect(files).toEqual([join(dir, exportFiles.csv), join(dir, exportFiles.junit), join(dir, exportFiles.markdown)]);
    expect(defaultReporters).toEqual(['csv', 'junit', 'markdown']);
    expect(await readFile(files[0]!, 'utf8')).toBe(toCsv(m));
    expect(await readFile(files[1]!, 'utf8')).toBe(toJUnit(m, checks));
    expect(await readFile(files[2]!, 'utf8')).toBe(toMarkdown(m, checks));
  });

  it('writes what the reporters named write: results.json reads back the same, report.html opens with the run', async () => {
    const [json, html] = await writeReports(dir, m, checks, ['json', 'html', 'console']);
    expect([json, html]).toEqual([join(dir, 'results.json'), join(dir, 'report.html')]);
    expect(resultsSchema.parse(JSON.parse(await readFile(json!, 'utf8')))).toEqual(m);
    expect(await readFile(html!, 'utf8')).toContain(`<title>migralab report: ${m.scenario.name}</title>`);
  });

  it('has every reporter answer to its name; only console follows a run live', () => {
    for (const [name, make] of Object.entries(reporters)) expect(make().name).toBe(name);
    const lines: string[] = [];
    const live = reporters.console({ tty: false, out: (l) => lines.push(l) });
    live.step?.('lab up');
    expect(lines).toEqual(['lab up']);
    expect(live.onRunEnd).toBeUndefined();
  });
});
