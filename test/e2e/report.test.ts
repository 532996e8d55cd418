import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { XMLParser } from 'fast-xml-parser';
import { cli, leftovers, testPlan, testTopologyFile } from './helpers.ts';

let dir: string;
let run: Awaited<ReturnType<typeof cli>>;

/** A real run whose thresholds are set to fail; its exports, HTML report and compare. */
describe('thresholds, exports, report and compare on a real run', () => {
  beforeAll(async () => {
    await cli(['down', testTopologyFile]);
    dir = mkdtempSync(join(tmpdir(), 'mlreport-'));
    run = await cli(['run', 'test/fixtures/thresholds.yaml', '--results-dir', dir], { timeoutMs: 240_000 });
  }, 300_000);
  afterAll(async () => {
    await cli(['down', testTopologyFile]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('exits non-zero and prints which thresholds held and which did not', async () => {
    expect(run.exitCode, run.all).toBe(1);
    expect(run.stderr).toMatch(/thresholds did not hold: .*duration/);
    expect(run.stdout).toMatch(/FAIL .*duration/);
    expect(run.stdout).toMatch(/PASS .*interruption/);
    expect(await leftovers(await testPlan())).toEqual([]);
  });

  it('its JUnit file says why', () => {
    const xml = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '' }).parse(readFileSync(join(dir, 'junit.xml'), 'utf8'));
    const suites = [xml.testsuites.testsuite].flat();
    const cases = suites.flatMap((s: { testcase: unknown }) => [s.testcase].flat()) as { name: string; failure?: { message: string } }[];
    expect(cases.filter((c) => / #\d /.test(c.name))).toHaveLength(4);
    const failed = cases.filter((c) => c.failure);
    expect(failed.length).toBeGreaterThanOrEqual(2);
    for (const f of failed) expect(f.name).toMatch(/duration/);
    expect(failed[0]!.failure!.message).toMatch(/> 1 ms|exceeds|limit/);
    expect(Number(xml.testsuites.failures)).toBe(failed.length);
  });

  it('writes the CSV and Markdown exports next to results.json', () => {
    const csv = readFileSync(join(dir, 'results.csv'), 'utf8').trim().split(/\r?\n/);
    expect(csv).toHaveLength(5);
    expect(readFileSync(join(dir, 'summary.md'), 'utf8')).toMatch(/e2e-thresholds/);
  });

  it('compare of the run against itself reports no regression', async () => {
    const r = await cli(['compare', dir, dir, '--json']);
    expect(r.exitCode, r.all).toBe(0);
    const c = JSON.parse(r.stdout);
    expect(c.regressions).toBe(0);
    expect(c.environmentWarnings).toEqual([]);
  });

  it('report writes one self-contained HTML file', async () => {
    const out = join(dir, 'out.html');
    const r = await cli(['report', dir, '-o', out]);
    expect(r.exitCode, r.all).toBe(0);
    const html = readFileSync(out, 'utf8');
    expect(html).toMatch(/<html/i);
    expect(html).not.toMatch(/(src|href)=["']https?:/);
    expect(existsSync(join(dir, 'junit.xml'))).toBe(true);
  });

  it('refuses a file that is not a results.json, exit 2', async () => {
    const r = await cli(['compare', 'package.json', dir]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/not a migralab results\.json/);
  });
});
