import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { chartJsSource, renderHtml } from '../../../../../lab/results/reporters/html/page.ts';
import { jsonForScript, scriptText } from '../../../../../lab/results/reporters/html/escape.ts';
import { distributionMetrics, largestGap, type ReportData } from '../../../../../lab/results/reporters/html/view.ts';
import { blockMinusShared, groups } from '../../../../../lab/results/cells.ts';
import { metricOf, metrics, statColumns, valuesOf } from '../../../../../lab/results/metrics.ts';
import { stats } from '../../../../../lab/measure/stats.ts';
import { scenarioSchema } from '../../../../../lab/config/scenario.ts';
import { resultsSchema, type Results } from '../../../../../lab/results/schema.ts';
import { loadMatrix, makeResults, series } from '../../fixtures.ts';

const load = (file: string): Results => resultsSchema.parse(JSON.parse(readFileSync(file, 'utf8')));
const small = load('test/fixtures/results/small.results.json');
const older = load('test/fixtures/results/small-no-timeline.results.json');
const generatedAt = new Date('2026-01-02T03:04:05.000Z');

/** The embedded data block, parsed back. */
function dataOf(html: string): ReportData {
  const m = /<script type="application\/json" id="data">([\s\S]*?)<\/script>/.exec(html);
  expect(m, 'data block').not.toBeNull();
  return JSON.parse(m![1]!);
}

/** Every element carrying data-stat, as its attributes and text. */
function statCells(html: string): { attrs: Record<string, string>; text: string }[] {
  const out: { attrs: Record<string, string>; text: string }[] = [];
  for (const m of html.matchAll(/<(td|span)((?:\s+data-[a-z]+="[^"]*"|\s+class="[^"]*"|\s+title="[^"]*")*)>([^<]*)/g)) {
    const attrs = Object.fromEntries([...m[2]!.matchAll(/data-([a-z]+)="([^"]*)"/g)].map((a) => [a[1]!, a[2]!]));
    if (attrs.stat) out.push({ attrs, text: m[3]! });
  }
  return out;
}

function cell(html: string, metric: string, strategy: string, stat: string, run?: string) {
  return statCells(html).filter((c) => c.attrs.metric === metric && c.attrs.strategy === strategy && c.attrs.stat === stat && (run === undefined || c.attrs.run === run));
}

/** The first match of re with some text around it (a failure names the spot without printing the whole document), or null. */
function around(text: string, re: RegExp): string | null {
  const m = re.exec(text);
  return m ? text.slice(Math.max(0, m.index - 60), m.index + m[0].length + 60) : null;
}

/** The document without the inlined Chart.js build (whose licence banner names its home page). */
const withoutChartJs = (html: string) => html.replace(scriptText(chartJsSource()), '');

describe('renderHtml on a real run (6 migrations of a small guest)', () => {
  const html = renderHtml([{ path: 'results/small', results: small }], { generatedAt });

  it('is one HTML document with its title and generation time', () => {
    expect(html.startsWith('<!DOCTYPE html>\n<html lang="en">')).toBe(true);
    expect(html.trimEnd().endsWith('</html>')).toBe(true);
    expect(html).toContain('<title>migralab report: e2e-small</title>');
    expect(html).toContain('2026-01-02T03:04:05.000Z');
    expect(renderHtml([{ path: 'x', results: small }], { title: 'Nightly <run>', generatedAt })).toContain('<title>Nightly &lt;run&gt;</title>');
  });

  it('shows every statistic stats() computes, per metric and strategy, exactly in data-value and to 0.1 ms in the text', () => {
    for (const g of groups(small))
      for (const m of metrics) {
        const s = stats(valuesOf(g.ok, m));
        const n = cell(html, m.key, g.strategy, 'n');
        expect(n.map((c) => Number(c.attrs.value))).toEqual([s.n]);
        for (const stat of statColumns) {
          const c = cell(html, m.key, g.strategy, stat);
          expect(c, `${g.strategy} ${m.key} ${stat}`).toHaveLength(1);
          expect(Number(c[0]!.attrs.value)).toBe(s[stat]);
          if (m.unit === 'ms') expect(c[0]!.text).toBe(s[stat]!.toFixed(1));
        }
      }
    // the figures of this run, by hand
    expect(cell(html, 'durationMs', 'block', 'median')[0]!.text).toBe('760.6');
    expect(cell(html, 'durationMs', 'shared', 'median')[0]!.text).toBe('512.6');
    expect(cell(html, 'interruptionMs', 'block', 'median')[0]!.text).toBe('188.2');
    expect(cell(html, 'downtimeMs', 'shared', 'max')[0]!.text).toBe('55.0');
  });

  it('gives block − shared per metric: the difference of medians inside its 95% interval, and a warning for 3 repetitions', () => {
    for (const m of metrics) {
      const med = (strategy: string) => stats(valuesOf(groups(small).find((g) => g.strategy === strategy)!.ok, m)).median!;
      const diff = Number(cell(html, m.key, 'block-shared', 'diff')[0]!.attrs.value);
      const low = Number(cell(html, m.key, 'block-shared', 'low')[0]!.attrs.value);
      const high = Number(cell(html, m.key, 'block-shared', 'high')[0]!.attrs.value);
      expect(diff).toBeCloseTo(med('block') - med('shared'), 9);
      expect(low).toBeLessThanOrEqual(diff);
      expect(high).toBeGreaterThanOrEqual(diff);
    }
    expect(cell(html, 'durationMs', 'block-shared', 'diff')[0]!.text).toBe('+248.0');
    expect(html.match(/data-stat="warning"/g)).toHaveLength(metrics.length);
    expect(html).toMatch(/only 3 and 3 values: a bootstrap interval needs at least 5/);
  });

  it('embeds the data as JSON that parses back to the results, with one distribution point per successful repetition', () => {
    const data = dataOf(html);
    expect(data.generatedAt).toBe(generatedAt.toISOString());
    expect(data.runs).toHaveLength(1);
    expect(data.runs[0]!.results).toEqual(small);
    const dists = data.runs[0]!.distributions;
    expect(dists.map((d) => d.metric)).toEqual([...distributionMetrics]);
    for (const d of dists) {
      const m = metricOf(d.metric);
      expect(d.cells.map((s) => [s.strategy, s.label, s.group])).toEqual([
        ['block', 'block', ''],
        ['shared', 'shared', ''],
      ]);
      for (const s of d.cells) {
        const g = groups(small).find((x) => x.strategy === s.strategy)!;
        expect(s.points.map((p) => p.value)).toEqual(g.ok.map((i) => m.get(i)));
        expect(s.points.map((p) => p.repetition)).toEqual([1, 2, 3]);
        expect(s.median).toBe(stats(valuesOf(g.ok, m)).median);
      }
    }
    expect(data.runs[0]!.timelines.map((t) => t.index)).toEqual(small.iterations.map((i) => i.index));
  });

  it('marks on each timeline the gap ping.maxGapMs measured, and has one canvas per iteration and per distribution', () => {
    const data = dataOf(html);
    for (const t of data.runs[0]!.timelines) {
      const it = small.iterations[t.index]!;
      expect(t.gap!.ms).toBeCloseTo(it.ping.maxGapMs!, 6);
      expect(t.gap!.startMs).toBeCloseTo(Date.parse(it.ping.maxGapStart!) - it.timeline!.t0, -1);
    }
    expect(html.match(/<canvas [^>]*data-kind="timeline"/g)).toHaveLength(small.iterations.length);
    expect(html.match(/<canvas [^>]*data-kind="distribution"/g)).toHaveLength(distributionMetrics.length);
    expect(html).toMatch(/mirror ready 244\.6 ms/);
  });

  it('shows the environment fingerprint and the scenario as run', () => {
    for (const [k, v] of Object.entries(small.environment)) expect(html).toContain(`<td data-env="${k}">${String(v)}</td>`);
    const pre = /<pre class="json scenario">([\s\S]*?)<\/pre>/.exec(html)![1]!;
    expect(JSON.parse(pre.replaceAll('&quot;', '"'))).toEqual(small.scenario.asRun);
    expect(html).toContain(small.scenario.file);
    expect(html).toContain(small.topologyFile);
  });

  it('fetches nothing: no external URL in src or href, no stylesheet or font link, no fetch/XHR, and a CSP that forbids them', () => {
    expect(around(html, /\b(src|href)\s*=\s*["']?\s*(https?:)?\/\//i)).toBeNull();
    expect(around(html, /<link\b|<iframe\b|<img\b|<object\b|<embed\b|@import|\burl\(/i)).toBeNull();
    expect(around(html, /\bfetch\(|XMLHttpRequest|sendBeacon|WebSocket|EventSource|\bimport\(|importScripts/)).toBeNull();
    expect(around(withoutChartJs(html), /https?:/)).toBeNull();
    expect(around(html, /<script\b[^>]*\ssrc=/)).toBeNull();
    expect(html).toMatch(/<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'/);
  });

  it('inlines the Chart.js UMD build from the npm package, and nothing else as script but the data and the drawing code', () => {
    const js = chartJsSource();
    expect(js).toMatch(/^\/\*!\n \* Chart\.js v4\./);
    expect(js.length).toBeGreaterThan(100_000);
    expect(html).toContain(scriptText(js));
    expect(html.match(/<script\b/g)).toHaveLength(3);
    expect(html.match(/<\/script>/g)).toHaveLength(3);
  });
});

describe('renderHtml on a matrix run (2 link rates x block/shared, every per-iteration view)', () => {
  const m = loadMatrix();
  const html = renderHtml([{ path: 'results/matrix', results: m }], { generatedAt });
  const labels = ['block, link.rate=unlimited', 'shared, link.rate=unlimited', 'block, link.rate=200Mbit', 'shared, link.rate=200Mbit'];
  const byCell = (label: string) => statCells(html).filter((c) => c.attrs.cell === label);

  it('has a summary row per cell: every statistic stats() computes over that cell\'s successful iterations', () => {
    expect(html).toContain('<h3>Summary per cell</h3>');
    expect(renderHtml([{ path: 'x', results: small }], { generatedAt })).toContain('<h3>Summary per strategy</h3>');
    for (const label of labels) {
      const ok = m.iterations.filter((i) => i.cell!.label === label && i.ok);
      for (const metric of metrics) {
        const s = stats(valuesOf(ok, metric));
        const mine = byCell(label).filter((c) => c.attrs.metric === metric.key);
        expect(mine.filter((c) => c.attrs.stat === 'n').map((c) => Number(c.attrs.value))).toEqual([s.n]);
        for (const stat of statColumns) {
          const c = mine.filter((x) => x.attrs.stat === stat);
          expect(c, `${label} ${metric.key} ${stat}`).toHaveLength(1);
          if (s[stat] === undefined) expect(c[0]!.attrs.value).toBeUndefined();
          else expect(Number(c[0]!.attrs.value)).toBe(s[stat]);
        }
      }
    }
    expect(byCell('shared, link.rate=200Mbit').find((c) => c.attrs.metric === 'durationMs' && c.attrs.stat === 'median')!.text).toBe('15623.3');
    expect(html).toContain('<b>block, link.rate=200Mbit</b>: 1 iteration, 0 failed');
  });

  it('gives block − shared per group, right after the group\'s two cells', () => {
    const diffs = blockMinusShared(m, 1);
    for (const metric of metrics)
      for (const d of diffs) {
        const at = (stat: string) => statCells(html).filter((c) => c.attrs.metric === metric.key && c.attrs.strategy === 'block-shared' && c.attrs.group === d.group && c.attrs.stat === stat);
        expect(at('diff').map((c) => Number(c.attrs.value))).toEqual([d.diffs[metric.key]!.diff]);
        expect(at('low').map((c) => Number(c.attrs.value))).toEqual([d.diffs[metric.key]!.low]);
        expect(at('high').map((c) => Number(c.attrs.value))).toEqual([d.diffs[metric.key]!.high]);
      }
    const duration = statCells(html).filter((c) => c.attrs.metric === 'durationMs' && c.attrs.strategy === 'block-shared' && c.attrs.stat === 'diff');
    expect(duration.map((c) => [c.attrs.group, c.text])).toEqual([
      ['link.rate=unlimited', '+370.0'],
      ['link.rate=200Mbit', '-1062.3'],
    ]);
    expect(html.match(/data-stat="warning"/g)).toHaveLength(2 * metrics.length);
    // in the table: block, shared, difference of the first group, then the second group
    const body = /<table class="summary" id="run-0-summary"[\s\S]*?<\/table>/.exec(html)![0];
    const rowHeads = [...body.matchAll(/<th scope="row"[^>]*>([^<]*)(?:<div class="fine">([^<]*))?/g)].slice(0, 6).map((x) => (x[2] ? `${x[1]} @ ${x[2]}` : x[1]));
    expect(rowHeads).toEqual([labels[0], labels[1], 'block − shared @ link.rate=unlimited', labels[2], labels[3], 'block − shared @ link.rate=200Mbit']);
  });

  it('draws distributions with one x category per cell', () => {
    const data = dataOf(html);
    for (const d of data.runs[0]!.distributions) {
      expect(d.cells.map((c) => c.label)).toEqual(labels);
      expect(d.cells.map((c) => c.group)).toEqual(['link.rate=unlimited', 'link.rate=unlimited', 'link.rate=200Mbit', 'link.rate=200Mbit']);
      for (const c of d.cells) {
        const ok = m.iterations.filter((i) => i.cell!.label === c.label && i.ok);
        expect(c.points.map((p) => p.value)).toEqual(ok.map((i) => metricOf(d.metric).get(i)));
        expect(c.median).toBe(stats(valuesOf(ok, metricOf(d.metric))).median);
      }
    }
    expect(html).toMatch(/data-kind="distribution" data-metric="durationMs" data-points="4" data-cells="4"/);
    expect(html).toContain('under each cell: strategy, link.rate');
  });

  it('puts the QMP samples and the phase marks on each timeline, on one x range per group', () => {
    const data = dataOf(html);
    const tl = data.runs[0]!.timelines;
    expect(tl.map((t) => t.cell)).toEqual(labels);
    // cells that differ only by strategy share a range, and it holds every reply, sample and mark of both
    expect(tl[0]!.range).toEqual(tl[1]!.range);
    expect(tl[2]!.range).toEqual(tl[3]!.range);
    expect(tl[0]!.range!.max).toBeLessThan(tl[2]!.range!.max);
    for (const t of tl) {
      const it = m.iterations[t.index]!;
      const xs = [...it.timeline!.ping.map(([x]) => x), ...it.timeline!.samples!.map((s) => s.t), it.timeline!.marks.destRunning!];
      expect(Math.min(...xs)).toBeGreaterThanOrEqual(t.range!.min);
      expect(Math.max(...xs)).toBeLessThanOrEqual(t.range!.max);
      expect(html).toContain(`data-kind="timeline" data-iteration="${t.index}" data-replies="${it.timeline!.ping.length}" data-samples="${it.timeline!.samples!.length}"`);
      expect(t.gap!.ms).toBeCloseTo(it.ping.maxGapMs!, 6);
    }
    expect(html).toContain('RAM start 1282.7 ms');
    expect(html).toContain('destination running 14658.6 ms');
    expect(html).toContain('270 QMP samples');
    expect(html).toMatch(/<span class="sw ram"><\/span>RAM remaining <span class="sw disk"><\/span>disk remaining/);
  });

  it('lists each iteration with its cell, phases, link efficiency, guest clock loss and harness CPU', () => {
    const head = /<table class="iterations"><thead><tr>([\s\S]*?)<\/tr>/.exec(html)![1]!;
    for (const h of ['cell', 'pre-copy (ms)', 'RAM passes', 'switchover (ms)', 'resume (ms)', 'link efficiency', 'guest clock loss (ms)', 'harness CPU (ms)', 'cross-check'])
      expect(head).toContain(`<th scope="col">${h}</th>`);
    const field = (index: number, name: string) => new RegExp(`<td class="num" data-iteration="${index}" data-field="${name.replace('.', '\\.')}"(?: data-value="([^"]*)")?[^>]*>([^<]*)</td>`).exec(html);
    for (const it of m.iterations) {
      expect(html).toContain(`<td class="strategy s-${it.strategy}">${it.cell!.label}</td>`);
      expect(Number(field(it.index, 'phases.precopyMs')![1])).toBe(it.phases!.precopyMs);
      expect(Number(field(it.index, 'phases.ramIterations')![1])).toBe(it.phases!.ramIterations);
      expect(Number(field(it.index, 'phases.resumeMs')![1])).toBe(it.phases!.resumeMs);
      expect(Number(field(it.index, 'guest.clockLossMs')![1])).toBe(it.guest!.clockLossMs);
      expect(Number(field(it.index, 'harness.cpuMs')![1])).toBe(it.harness!.cpuMs);
    }
    expect(field(2, 'link.efficiency')!.slice(1)).toEqual(['0.9555335428692382', '95.6%']);
    expect(field(0, 'link.efficiency')![1]).toBeUndefined(); // link not capped
    expect(field(0, 'link.efficiency')![2]).toBe('–');
    expect(html.match(/<span class="ok" title="the network, hypervisor and guest views agree">agree<\/span>/g)).toHaveLength(4);
    expect(html).toContain('the network (ping), hypervisor (QMP) and guest views agree in all 4 iterations checked');
  });

  it('highlights an iteration whose views contradict each other, and lists the contradictions', () => {
    const flagged = loadMatrix();
    flagged.iterations[1]!.crossCheck = ['ping gap <92 ms> shorter than QEMU downtime', 'guest clock lost 2 ms'];
    const page = renderHtml([{ path: 'x', results: flagged }], { generatedAt });
    expect(page.match(/<tr data-iteration="\d+" class="flagged">/g)).toEqual(['<tr data-iteration="1" class="flagged">']);
    expect(page).toContain('<span class="flag" title="ping gap &lt;92 ms&gt; shorter than QEMU downtime\nguest clock lost 2 ms">⚠ 2 contradictions</span>');
    expect(page).toContain('<tr class="flags" data-iteration="1"><td colspan="');
    expect(page).toContain('<li>ping gap &lt;92 ms&gt; shorter than QEMU downtime</li><li>guest clock lost 2 ms</li>');
    expect(page).toContain('<span class="flag">1 of 4 iterations</span> have views that contradict each other');
  });
});

describe('renderHtml on several runs', () => {
  const html = renderHtml(
    [
      { path: 'results/a', results: small },
      { path: 'results/b', results: older },
    ],
    { generatedAt },
  );

  it('gives each run a section and puts their medians side by side', () => {
    expect(html.match(/<section class="run" id="run-\d"/g)).toEqual(['<section class="run" id="run-0"', '<section class="run" id="run-1"']);
    expect(html).toContain('Runs compared (medians)');
    for (const [k, r] of [small, older].entries())
      for (const g of groups(r))
        for (const m of metrics) {
          const c = cell(html, m.key, g.strategy, 'median', `run-${k}`);
          expect(c, `run-${k} ${g.strategy} ${m.key}`).toHaveLength(1);
          expect(Number(c[0]!.attrs.value)).toBe(stats(valuesOf(g.ok, m)).median);
        }
  });

  it('says so for iterations recorded without a timeline, and draws none for them', () => {
    const data = dataOf(html);
    expect(data.runs.map((r) => r.timelines.length)).toEqual([small.iterations.length, 0]);
    expect(data.runs[1]!.timelineRange).toBeNull();
    expect(html.match(/figure class="timeline missing"/g)).toHaveLength(older.iterations.length);
    expect(html.match(/<canvas [^>]*data-kind="timeline"/g)).toHaveLength(small.iterations.length);
  });

  it('has no single-run overview when there is one run', () => {
    expect(renderHtml([{ path: 'a', results: small }], { generatedAt })).not.toContain('Runs compared');
  });
});

describe('renderHtml on hand-made results', () => {
  const base = { durationMs: 1000, downtimeMs: 40, maxGapMs: 120, lost: 2 };

  it('counts only successful iterations, and says how many failed ones the distributions leave out', () => {
    const r = makeResults({ block: [...series(3, base, 2), { durationMs: 50, ok: false }], shared: series(3, base) });
    const html = renderHtml([{ path: 'x', results: r }], { generatedAt });
    expect(Number(cell(html, 'durationMs', 'block', 'n')[0]!.attrs.value)).toBe(3);
    expect(Number(cell(html, 'durationMs', 'block', 'median')[0]!.attrs.value)).toBe(2000);
    expect(html).toContain('1 failed iteration not shown');
    expect(html).toContain('<b>block</b>: 4 iterations, 1 failed');
    expect(html).toContain('migration failed (fixture)');
    const d = dataOf(html).runs[0]!.distributions.find((x) => x.metric === 'durationMs')!;
    expect(d.cells.map((s) => s.points.length)).toEqual([3, 3]);
  });

  it('warns of too few repetitions only below five per strategy', () => {
    const five = renderHtml([{ path: 'x', results: makeResults({ block: series(5, base, 2), shared: series(5, base) }) }], { generatedAt });
    expect(five).not.toContain('data-stat="warning"');
    expect(Number(cell(five, 'durationMs', 'block-shared', 'diff')[0]!.attrs.value)).toBe(1000);
  });

  it('has no block − shared row when only one strategy ran, and – for what is not defined', () => {
    const html = renderHtml([{ path: 'x', results: makeResults({ shared: [{ durationMs: 500, downtimeMs: 30, maxGapMs: null, lost: 1 }] }) }], { generatedAt });
    expect(html).not.toContain('block − shared</th>');
    expect(cell(html, 'durationMs', 'shared', 'sd')[0]).toEqual({ attrs: { metric: 'durationMs', strategy: 'shared', cell: 'shared', stat: 'sd' }, text: '–' });
    expect(cell(html, 'interruptionMs', 'shared', 'median')[0]!.text).toBe('–');
    expect(Number(cell(html, 'interruptionMs', 'shared', 'n')[0]!.attrs.value)).toBe(0);
  });

  it('leaves out iteration columns and legend entries results.json has no figures for', () => {
    const html = renderHtml([{ path: 'x', results: small }], { generatedAt });
    const head = /<table class="iterations"><thead><tr>([\s\S]*?)<\/tr>/.exec(html)![1]!;
    const cols = [...head.matchAll(/<th scope="col">([^<]*)<\/th>/g)].map((x) => x[1]);
    expect(cols).toEqual(['#', 'strategy', 'rep', 'from → to', 'status', 'duration (ms)', 'QEMU downtime (ms)', 'ping interruption (ms)', 'lost pings', 'prepare (ms)', 'mirror (ms)', 'RAM sent', 'disk sent', 'pings sent', 'ping interval kept (ms)']);
    const legend = /<p class="legend fine">([\s\S]*?)<\/p>/.exec(html)![1]!;
    expect(legend).toContain('disk mirror ready');
    for (const absent of ['RAM remaining', 'RAM start', 'destination running']) expect(legend).not.toContain(absent);
    expect(html).not.toContain('Cross-check:');
  });

  it('lists the scenario thresholds with whether they held', () => {
    const asRun = scenarioSchema.parse({ name: 'limits', strategies: ['block', 'shared'], thresholds: { maxDurationMs: 1500 } });
    const r = makeResults({ block: series(3, base, 2), shared: series(3, base) }, {}, { name: 'limits', asRun });
    const html = renderHtml([{ path: 'x', results: r }], { generatedAt });
    expect(html).toMatch(/<tr class="fail"><td><span class="bad">FAIL<\/span><\/td><td>block: duration max &lt;= 1500 ms<\/td>/);
    expect(html).toMatch(/<tr class="pass"><td><span class="ok">PASS<\/span><\/td><td>shared: duration max &lt;= 1500 ms<\/td>/);
  });

  it('keeps hostile text inert: in the page, in the data block, and in scripts', () => {
    const evil = '</script><script>alert(1)</script><!-- <b>&';
    const r = makeResults({ block: [{ ...base, ok: false }], shared: series(1, base) }, { kernel: evil }, { asRun: { name: evil } });
    r.iterations[0]!.error = evil;
    r.iterations[1]!.notes.push(evil);
    const html = renderHtml([{ path: evil, results: r }], { generatedAt });
    expect(html.match(/<script\b/g)).toHaveLength(3);
    expect(html).not.toContain('<b>&');
    expect(html).toContain('&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;!-- &lt;b&gt;&amp;');
    const data = dataOf(html);
    expect(data.runs[0]!.path).toBe(evil);
    expect(data.runs[0]!.results.environment.kernel).toBe(evil);
    expect(data.runs[0]!.results.iterations[0]!.error).toBe(evil);
  });
});

describe('escaping and gaps', () => {
  it('jsonForScript leaves no "<" and parses back to the same value', () => {
    const v = { a: '</script>', b: '<!--', c: 'line\u2028sep', d: [1.5, null] };
    const s = jsonForScript(v);
    expect(s).not.toContain('<');
    expect(JSON.parse(s)).toEqual(v);
  });

  it('scriptText keeps JavaScript the same program but unable to close its element', () => {
    const js = 'var s = "</script>" + "</SCRIPT >"; var c = "<!--";';
    const out = scriptText(js);
    expect(out).not.toMatch(/<\/script/i);
    expect(out).not.toContain('<!--');
    expect(new Function(`${out}; return [s, c];`)()).toEqual(['</script>' + '</SCRIPT >', '<!--']);
  });

  it('largestGap is the largest spacing of consecutive replies, in arrival order or not', () => {
    const marks = { mirrorReady: null, completed: 300 };
    expect(largestGap({ t0: 0, ping: [[-20, 0.5, 1], [0, 0.4, 2], [10, 0.4, 3], [250, 90, 4], [260, 0.5, 5]], marks })).toEqual({ startMs: 10, endMs: 250, ms: 240 });
    expect(largestGap({ t0: 0, ping: [[250, 90, 4], [-20, 0.5, 1], [10, null, 3]], marks })).toEqual({ startMs: 10, endMs: 250, ms: 240 });
    expect(largestGap({ t0: 0, ping: [[5, 1, 1]], marks })).toBeNull();
    expect(largestGap(undefined)).toBeNull();
  });
});
