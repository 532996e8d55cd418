import { describe, it, expect } from 'vitest';
import { toJUnit } from '../../../../lab/results/reporters/junit.ts';
import { toMarkdown } from '../../../../lab/results/reporters/markdown.ts';
import { renderHtml } from '../../../../lab/results/reporters/html/page.ts';
import { summaryTable, iterationLine } from '../../../../lab/results/reporters/console.ts';
import { resultsSchema, type Results } from '../../../../lab/results/schema.ts';
import { makeResults } from '../fixtures.ts';

/** A run of 4: a fault ended as expected, a fault that did not, a known defect reproduced, a plain failure. */
function run(): Results {
  const r = makeResults({ shared: [{ durationMs: 600 }, { ok: false }, { ok: false }, { ok: false }] });
  const [a, b, c, d] = r.iterations;
  Object.assign(a!, { fault: { kind: 'cut-link', during: 'ram', injectedAtMs: 120 }, expected: { outcome: 'completes', met: true } });
  Object.assign(b!, {
    error: 'migration failed: destination died',
    failure: { kind: 'destination-died', detectedAfterMs: 12, message: 'migration failed: destination died' },
    guestOn: { node: 'controller', status: 'running' },
    fault: { kind: 'kill-destination', during: 'ram', injectedAtMs: 80 },
    expected: { outcome: 'stays-on-source', met: false },
  });
  Object.assign(c!, {
    error: 'verification failed: guest RAM: 3 of 4096 pages wrong',
    knownIssue: { id: 'qemu-tcg-lost-writes', reference: 'QEMU commit 03bfc2188f06', reproduced: true, evidence: '3 of 4096 guest pages wrong after the migration' },
    expected: { outcome: 'known-issue', met: true },
  });
  Object.assign(d!, { error: 'verification failed: source still there' });
  return resultsSchema.parse(r);
}

describe('iterations that end as their cell expects, in every report', () => {
  it('JUnit: a failure its cell expects is a passing case that says how it ended; an unmet expectation and a plain failure are failures', () => {
    const xml = toJUnit(run());
    expect(xml).toMatch(/<testsuites[^>]*failures="2"/);
    expect(xml).toMatch(/expected: known-issue, met/);
  });

  it('Markdown: expected failures listed apart, not counted as failed iterations', () => {
    const md = toMarkdown(run());
    expect(md).toMatch(/## Failed iterations \(2\)/);
    expect(md).toMatch(/## Failed as expected \(1\)[\s\S]*known issue qemu-tcg-lost-writes, expected known-issue: 3 of 4096 guest pages wrong/);
  });

  it('HTML: a table of faults and known issues with each verdict, and the iteration status says which kind of failure', () => {
    const html = renderHtml([{ path: 'r/results.json', results: run() }]);
    expect(html).toMatch(/<h3>Faults and known issues<\/h3>/);
    expect(html).toMatch(/<b>2 of 3<\/b> iterations ended as their cells expect/);
    expect(html).toMatch(/fault kill-destination \(ram\)<\/td><td class="num">80.0 ms<\/td><td>stays-on-source<\/td><td>destination-died, noticed after 12.0 ms<\/td><td>controller \(running\)<\/td>/);
    expect(html).toMatch(/<span class="expected"[^>]*>known issue qemu-tcg-lost-writes<\/span>/);
    expect(html).toMatch(/<span class="bad"[^>]*>NOT as expected<\/span>/);
    // of the 3 failures one was expected: the unmet fault and the plain failure remain
    expect(html).toContain('<b>shared</b>: 4 iterations, 2 failed, 1 failed as expected</span>');
    // the distribution captions count them apart too, and the long "how it ended" cells wrap
    expect(html).toContain('2 failed iterations and 1 that failed as expected not shown');
    expect(html).toMatch(/table\.expected-ends td \{ white-space: normal; \}/);
  });

  it('console: the known defect line and a per-cell count of reproductions', () => {
    const r = run();
    expect(iterationLine(r.iterations[2]!)).toBe('known issue qemu-tcg-lost-writes reproduced, as this cell allows: 3 of 4096 guest pages wrong after the migration');
    expect(summaryTable(r)).toMatch(/known issues, run on purpose \(hypervisor.allowKnownIssues\): reproduced\/runs per cell\n {2}shared: qemu-tcg-lost-writes 1\/1 \(QEMU commit 03bfc2188f06\)/);
  });
});
