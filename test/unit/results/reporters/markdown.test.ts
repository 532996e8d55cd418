import { describe, it, expect } from 'vitest';
import { toMarkdown, mdText } from '../../../../lab/results/reporters/markdown.ts';
import { formatNumber } from '../../../../lab/results/format.ts';
import { evaluateThresholds } from '../../../../lab/results/thresholds.ts';
import { bootstrapMedianDiff } from '../../../../lab/measure/stats.ts';
import { loadMatrix, makeResults, type IterationSpec } from '../fixtures.ts';
import { groups } from '../../../../lab/results/cells.ts';
import { metrics, phaseMetrics, valuesOf } from '../../../../lab/results/metrics.ts';
import { median, stats as statsOf } from '../../../../lab/measure/stats.ts';

const figs = (durations: number[], lost: number | null = 2): IterationSpec[] => durations.map((d) => ({ durationMs: d, downtimeMs: null, maxGapMs: d / 10, lost }));

/** The cells of the table row whose first cells are `first` (unescaped text). */
function row(md: string, ...first: string[]): string[] {
  const prefix = `| ${first.join(' | ')} |`;
  const lines = md.split('\n').filter((l) => l.startsWith(prefix));
  expect(lines, prefix).toHaveLength(1);
  return lines[0]!.slice(2, -2).split(' | ');
}

/** The lines under a `## heading`, up to the next heading. */
function section(md: string, heading: string): string {
  const lines = md.split('\n');
  const start = lines.indexOf(`## ${heading}`);
  expect(start, heading).toBeGreaterThanOrEqual(0);
  const end = lines.findIndex((l, i) => i > start && l.startsWith('## '));
  return lines.slice(start + 1, end < 0 ? undefined : end).join('\n');
}

const stats = (md: string) => section(md, 'Statistics');
const diff = (md: string) => section(md, 'block − shared');
const env = (md: string) => section(md, 'Environment');

const known = () => makeResults({ block: figs([300, 100, 500, 200, 400]), shared: figs([30, 50, 10, 40, 20]) });

describe('toMarkdown', () => {
  it('titles the summary with the scenario and lists iteration counts', () => {
    const md = toMarkdown(known());
    expect(md.split('\n')[0]).toBe('# ✅ migralab: fixture');
    expect(md).toContain('**block**: 5/5 iterations succeeded');
    expect(md).not.toContain('Interrupted');
  });

  it('tabulates per-strategy median, p90, p95, min, max, mean, sd and n of known data', () => {
    const md = toMarkdown(known());
    expect(row(stats(md), 'metric', 'strategy')).toEqual(['metric', 'strategy', 'median', 'p90', 'p95', 'min', 'max', 'mean', 'sd', 'n']);
    // block durations 100..500: median 300, p90 460, p95 480, mean 300, sd 158.11
    expect(row(stats(md), 'duration (ms)', 'block')).toEqual(['duration (ms)', 'block', '300.0', '460.0', '480.0', '100.0', '500.0', '300.0', '158.1', '5']);
    expect(row(stats(md), 'duration (ms)', 'shared')).toEqual(['duration (ms)', 'shared', '30.0', '46.0', '48.0', '10.0', '50.0', '30.0', '15.8', '5']);
    expect(row(stats(md), 'ping interruption (ms)', 'block')[2]).toBe('30.0');
    // counts as whole numbers
    expect(row(stats(md), 'lost pings', 'block')).toEqual(['lost pings', 'block', '2', '2', '2', '2', '2', '2', '0', '5']);
  });

  it('shows – for a statistic that is undefined, never a made-up 0', () => {
    const md = toMarkdown(makeResults({ block: figs([300], null), shared: figs([30, 50]) }));
    // no downtime recorded at all
    expect(row(stats(md), 'QEMU downtime (ms)', 'block')).toEqual(['QEMU downtime (ms)', 'block', '–', '–', '–', '–', '–', '–', '–', '0']);
    // sd of one value
    expect(row(stats(md), 'duration (ms)', 'block')[8]).toBe('–');
    expect(row(stats(md), 'lost pings', 'block').slice(2)).toEqual(['–', '–', '–', '–', '–', '–', '–', '0']);
    expect(row(diff(md), 'QEMU downtime (ms)')).toEqual(['QEMU downtime (ms)', '–', '–']);
  });

  it('gives block − shared with its 95% bootstrap interval, and no warning with enough repetitions', () => {
    const r = known();
    const md = toMarkdown(r);
    const d = bootstrapMedianDiff([300, 100, 500, 200, 400], [30, 50, 10, 40, 20], { seed: 1 })!;
    expect(row(diff(md), 'metric')).toEqual(['metric', 'block − shared (median)', '95% interval']);
    expect(row(diff(md), 'duration (ms)')).toEqual(['duration (ms)', '+270.0', `[${formatNumber(d.low, 'ms', true)}, ${formatNumber(d.high, 'ms', true)}]`]);
    expect(row(diff(md), 'duration (ms)')[2]).toMatch(/^\[[+-]?\d+\.\d, [+-]?\d+\.\d\]$/);
    expect(md).toContain('5000 resamples');
    expect(md).not.toContain('⚠️');
  });

  it('warns when the repetitions are too few for the interval', () => {
    const md = toMarkdown(makeResults({ block: figs([300, 100, 500]), shared: figs([30, 50, 10]) }));
    expect(row(diff(md), 'duration (ms)')[1]).toBe('+270.0');
    const warning = md.split('\n').filter((l) => l.startsWith('> ⚠️'));
    expect(warning).toHaveLength(1); // said once for all metrics
    expect(warning[0]).toMatch(/^> ⚠️ duration, ping interruption, lost pings: /);
    expect(warning[0]).toContain('only 3 and 3 values');
  });

  it('leaves the comparison out when only one strategy ran', () => {
    const md = toMarkdown(makeResults({ shared: figs([30, 50, 10]) }));
    expect(md).not.toContain('block − shared');
  });

  it('marks thresholds with ✅ and ❌ and lists failed iterations with their error', () => {
    const r = makeResults({ block: [...figs([300, 100, 500]), { ok: false }], shared: figs([30, 50, 10]) });
    r.iterations.find((i) => !i.ok)!.error = 'QMP: "migration failed" | <b>bold</b>\nsecond line';
    const checks = evaluateThresholds(r, { maxDurationMs: 250, statistic: 'median' });
    const md = toMarkdown(r, checks);
    const lines = md.split('\n');
    expect(lines).toContain('- ❌ block: duration median &lt;= 250 ms: observed median 300.0 ms over 3 successful iterations');
    expect(lines).toContain('- ✅ shared: duration median &lt;= 250 ms: observed median 30.0 ms over 3 successful iterations');
    expect(md).toContain('1 of 2 thresholds broken.');
    expect(lines[0]).toBe('# ❌ migralab: fixture');
    expect(md).toContain('## Failed iterations (1)');
    const failed = lines.filter((l) => l.startsWith('- ❌ **block #4**'));
    expect(failed).toHaveLength(1);
    // the error stays on one line, inert
    expect(failed[0]).toContain('QMP: "migration failed" \\| &lt;b&gt;bold&lt;/b&gt; second line');
  });

  it('shows the environment and the interrupted flag', () => {
    const r = makeResults({ block: figs([300]), shared: figs([30]) }, { accelerator: 'tcg', acceleratorReason: 'no /dev/kvm' });
    r.interrupted = true;
    const md = toMarkdown(r);
    expect(md.split('\n')[0]).toBe('# ⚠️ migralab: fixture');
    expect(md).toContain('**Interrupted**');
    expect(row(env(md), 'interrupted')).toEqual(['interrupted', 'yes']);
    expect(row(env(md), 'accelerator')).toEqual(['accelerator', 'tcg (no /dev/kvm)']);
    expect(row(env(md), 'QEMU')).toEqual(['QEMU', '8.2.2']);
    expect(row(env(md), 'NFS')[1]).toContain('kernel client');
  });
});

/** The lines under a `### heading` inside a section, up to the next heading. */
function subsection(text: string, heading: string): string {
  const lines = text.split('\n');
  const start = lines.indexOf(`### ${heading}`);
  expect(start, heading).toBeGreaterThanOrEqual(0);
  const end = lines.findIndex((l, i) => i > start && l.startsWith('#'));
  return lines.slice(start + 1, end < 0 ? undefined : end).join('\n');
}

describe('toMarkdown on a matrix run (2 link rates x block/shared)', () => {
  const m = loadMatrix();
  const md = toMarkdown(m);
  const labels = ['block, link.rate=unlimited', 'shared, link.rate=unlimited', 'block, link.rate=200Mbit', 'shared, link.rate=200Mbit'];

  it('counts and tabulates per cell, each row the statistics of that cell\'s successful iterations', () => {
    for (const label of labels) expect(md).toContain(`**${label}**: 1/1 iterations succeeded`);
    for (const metric of metrics)
      for (const g of groups(m)) {
        const s = statsOf(valuesOf(g.ok, metric));
        expect(row(stats(md), `${metric.label}${metric.unit === 'ms' ? ' (ms)' : ''}`, g.label).slice(2), `${g.label} ${metric.key}`).toEqual([
          ...(['median', 'p90', 'p95', 'min', 'max', 'mean', 'sd'] as const).map((c) => formatNumber(s[c], metric.unit)),
          String(s.n),
        ]);
      }
    expect(row(stats(md), 'metric', 'cell')[1]).toBe('cell');
    expect(row(stats(md), 'duration (ms)', 'block, link.rate=200Mbit')).toEqual(['duration (ms)', 'block, link.rate=200Mbit', '14561.1', '14561.1', '14561.1', '14561.1', '14561.1', '14561.1', '–', '1']);
  });

  it('gives block − shared per group, each from its own two cells', () => {
    const d = diff(md);
    expect(d.split('\n').filter((l) => l.startsWith('### '))).toEqual(['### link.rate=unlimited', '### link.rate=200Mbit']);
    const unlimited = subsection(d, 'link.rate=unlimited');
    const capped = subsection(d, 'link.rate=200Mbit');
    expect(unlimited).toContain('block, link.rate=unlimited − shared, link.rate=unlimited:');
    expect(row(unlimited, 'duration (ms)')).toEqual(['duration (ms)', '+370.0', '[+370.0, +370.0]']);
    expect(row(capped, 'duration (ms)')).toEqual(['duration (ms)', '-1062.3', '[-1062.3, -1062.3]']);
    expect(row(capped, 'QEMU downtime (ms)')).toEqual(['QEMU downtime (ms)', '-23.0', '[-23.0, -23.0]']);
    expect(row(capped, 'lost pings')).toEqual(['lost pings', '-9', '[-9, -9]']);
    for (const sub of [unlimited, capped]) expect(sub.split('\n').filter((l) => l.startsWith('> ⚠️'))).toEqual([expect.stringContaining('only 1 and 1 values')]);
    expect(d).toContain('5000 resamples (seed 1)');
  });

  it('shows the median phases per cell', () => {
    const ph = section(md, 'Phases');
    expect(row(ph, 'cell')).toEqual(['cell', 'mirror (ms)', 'pre-copy (ms)', 'RAM passes', 'switchover (ms)', 'resume (ms)', 'n']);
    for (const g of groups(m))
      expect(row(ph, g.label).slice(1, -1)).toEqual(phaseMetrics.map((p) => formatNumber(median(valuesOf(g.ok, p)), p.unit)));
    expect(row(ph, 'block, link.rate=200Mbit')).toEqual(['block, link.rate=200Mbit', '1282.5', '12996.3', '36', '282.0', '97.6', '1']);
    expect(row(ph, 'shared, link.rate=200Mbit')[1]).toBe('–'); // no disk mirror
  });

  it('shows the harness\'s CPU per cell, and ping\'s share of a core', () => {
    const h = section(md, 'Harness CPU');
    expect(row(h, 'block, link.rate=200Mbit')).toEqual(['block, link.rate=200Mbit', '1184.4', '9110.0', '15690.9', '58%', '1']);
    expect(row(h, 'block, link.rate=unlimited')[4]).toBe('20%');
  });

  it('says the views agree, or lists the iterations whose views contradict each other', () => {
    expect(section(md, 'Cross-checks')).toContain('The network, hypervisor and guest views agree in all 4 iterations checked.');
    const flagged = loadMatrix();
    flagged.iterations[3]!.crossCheck = ['ping gap 486 ms | QEMU <downtime>', 'guest clock lost 9 ms'];
    const text = toMarkdown(flagged);
    const cc = section(text, 'Cross-checks (1)');
    expect(cc.split('\n').filter((l) => l.startsWith('- '))).toEqual(['- ⚠️ **shared, link.rate=200Mbit #1** compute1 → controller: ping gap 486 ms \\| QEMU &lt;downtime&gt;; guest clock lost 9 ms']);
    expect(cc).toContain('1 of 4 iterations have views that contradict each other');
    expect(text.split('\n')[0]).toBe('# ✅ migralab: e2e-fidelity'); // a contradiction is not a failure
  });

  it('names failed iterations and thresholds after their cell', () => {
    const r = loadMatrix();
    r.iterations[2]!.ok = false;
    r.iterations[2]!.error = 'mirror job failed';
    const text = toMarkdown(r, evaluateThresholds(r, { maxDowntimeMs: 300, statistic: 'max' }));
    expect(text).toContain('- ❌ **block, link.rate=200Mbit #1** compute1 → controller: mirror job failed');
    expect(text).toContain('- ❌ shared, link.rate=200Mbit: QEMU downtime max &lt;= 300 ms: observed max 305.0 ms over 1 successful iteration');
    expect(text).toContain('- ❌ block, link.rate=200Mbit: QEMU downtime max &lt;= 300 ms: nothing to measure: the only iteration failed');
    expect(row(subsection(diff(text), 'link.rate=200Mbit'), 'duration (ms)')).toEqual(['duration (ms)', '–', '–']);
    expect(subsection(diff(text), 'link.rate=200Mbit')).toContain('Nothing to compare: a strategy has no successful iteration.');
  });

  it('leaves out phases, harness and cross-checks for results written before them', () => {
    const old = toMarkdown(known());
    for (const h of ['## Phases', '## Harness CPU', '## Cross-checks']) expect(old).not.toContain(h);
    expect(diff(old)).not.toContain('###');
  });
});

describe('formatNumber / mdText', () => {
  it('formats for reading without inventing', () => {
    expect(formatNumber(undefined, 'ms')).toBe('–');
    expect(formatNumber(null, 'count')).toBe('–');
    expect(formatNumber(NaN, 'ms')).toBe('–');
    expect(formatNumber(12.345, 'ms')).toBe('12.3');
    expect(formatNumber(-0.01, 'ms')).toBe('0.0');
    expect(formatNumber(3, 'count')).toBe('3');
    expect(formatNumber(2.3333, 'count')).toBe('2.3');
    expect(formatNumber(5, 'ms', true)).toBe('+5.0');
    expect(formatNumber(-5, 'ms', true)).toBe('-5.0');
    expect(formatNumber(0, 'ms', true)).toBe('0.0');
  });

  it('makes run text inert', () => {
    expect(mdText('a|b\n*c* <x> & `d` [e](f)')).toBe('a\\|b \\*c\\* &lt;x&gt; &amp; \\`d\\` \\[e\\](f)');
  });
});
