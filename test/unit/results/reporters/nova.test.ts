import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { renderHtml } from '../../../../lab/results/reporters/html/page.ts';
import { iterationLine } from '../../../../lab/results/reporters/console.ts';
import { resultsSchema, type Results } from '../../../../lab/results/schema.ts';
import { makeResults } from '../fixtures.ts';

const nova = {
  microversion: '2.80',
  serverId: 'd16095a7-b5f2-44e6-818f-411ffaad1b65',
  migrationId: 3,
  blockMigration: true,
  diskOverCommit: null,
  apiToActiveMs: 6695.7,
  requestId: 'req-1',
  phases: [
    { status: 'preparing', atMs: 1426.2 },
    { status: 'running', atMs: 2734.0 },
    { status: 'completed', atMs: 7005.6 },
  ],
  phaseSpans: [
    { from: 'preparing', to: 'running', ms: 1307.8 },
    { from: 'running', to: 'completed', ms: 4271.6 },
  ],
  status: 'completed',
  fault: null,
  location: null,
};

function run(): Results {
  const r = makeResults({ block: [{ durationMs: 6695.7 }] });
  Object.assign(r.iterations[0]!, { driver: 'nova', nova, libvirt: { timeElapsedMs: 996, downtimeMs: 59, dataProcessedBytes: 1, memoryProcessedBytes: 1, diskProcessedBytes: 1, iterations: 3, virshMs: null, raw: {} } });
  return resultsSchema.parse(r);
}

describe('a migration nova drove, in the reports', () => {
  it('results.json keeps nova\'s record as written', () => {
    expect(run().iterations[0]!.nova).toEqual(nova);
  });
  it('the console line says nova\'s phases and how much of it was libvirt\'s job', () => {
    const line = iterationLine(run().iterations[0]!);
    expect(line).toContain('nova migration 3: preparing at 1426.2 ms, running at 2734.0 ms, completed at 7005.6 ms');
    expect(line).toContain("libvirt's job 996.0 ms of it");
  });
  it('the HTML timeline says them too, and calls its samples libvirt\'s', () => {
    const small = JSON.parse(readFileSync('test/fixtures/results/small.results.json', 'utf8')) as Results;
    small.iterations = small.iterations.slice(0, 1);
    Object.assign(small.iterations[0]!, { driver: 'nova', nova });
    const html = renderHtml([{ path: '/tmp/r', results: resultsSchema.parse(small) }]);
    expect(html).toMatch(/nova migration 3: preparing at 1[,.]?426\.2 ms, running at 2[,.]?734\.0 ms, completed at 7[,.]?005\.6 ms, ACTIVE on \w+ at 6[,.]?695\.7 ms/);
    expect(html).not.toMatch(/\d+ QMP samples/);
  });
});
