import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { scenarioSchema, type Strategy } from '../config/scenario.ts';
import { formatBytes } from '../config/size.ts';
import type { Stats } from '../measure/stats.ts';
import type { IterationResult, Results } from '../runner/results.ts';
import { loadResults } from './compare.ts';
import { formatNumber } from './markdown.ts';
import { blockMinusShared, groups, metricOf, metrics, strategyStats, type MetricKey, type MetricUnit } from './metrics.ts';
import { evaluateThresholds, type ThresholdCheck } from './thresholds.ts';

/**
 * The HTML report: one self-contained file that opens offline. Tables (summary
 * statistics, iterations, environment, scenario as run) are rendered here, so their
 * figures are in the DOM; the charts are drawn in the page by Chart.js, whose UMD
 * build is inlined from the npm package, from the data embedded as JSON. A
 * Content-Security-Policy forbids every fetch, so the page cannot reach the network
 * even by mistake.
 */

export interface ReportRun {
  /** The results directory (or file) the run was read from; shown as the run's name. */
  path: string;
  results: Results;
}

/** The metrics drawn as distributions (every repetition a point). */
export const distributionMetrics = ['durationMs', 'downtimeMs', 'interruptionMs'] as const satisfies readonly MetricKey[];

/** The statistics columns of the summary table, after n. */
export const statColumns = ['median', 'p90', 'p95', 'min', 'max', 'mean', 'sd'] as const satisfies readonly (keyof Stats)[];

/** Seed of the bootstrap intervals, so a report is reproducible. */
export const BOOTSTRAP_SEED = 1;

export interface DistributionPoint {
  index: number;
  repetition: number;
  value: number;
}

export interface Distribution {
  metric: MetricKey;
  label: string;
  unit: MetricUnit;
  strategies: { strategy: Strategy; median: number | null; points: DistributionPoint[]; failed: number }[];
}

export interface Gap {
  /** ms after the migration request: the last reply before the gap, the first after it. */
  startMs: number;
  endMs: number;
  ms: number;
}

export interface TimelineView {
  index: number;
  strategy: Strategy;
  repetition: number;
  ok: boolean;
  gap: Gap | null;
}

/** What the page script reads from the `<script type="application/json" id="data">` block. */
export interface ReportData {
  title: string;
  generatedAt: string;
  runs: {
    id: string;
    path: string;
    results: Results;
    distributions: Distribution[];
    timelines: TimelineView[];
    /** One x range for every timeline of the run, so they compare by eye. */
    timelineRange: { min: number; max: number } | null;
  }[];
}

/** The largest gap between consecutive ping replies of an iteration's timeline (what ping.maxGapMs measures). */
export function largestGap(timeline: IterationResult['timeline']): Gap | null {
  if (!timeline || timeline.ping.length < 2) return null;
  const t = timeline.ping.map(([offset]) => offset).sort((a, b) => a - b);
  let best: Gap | null = null;
  for (let k = 1; k < t.length; k++) {
    const ms = (t[k] as number) - (t[k - 1] as number);
    if (!best || ms > best.ms) best = { startMs: t[k - 1] as number, endMs: t[k] as number, ms };
  }
  return best;
}

export function distributions(results: Results): Distribution[] {
  const gs = groups(results);
  const per = strategyStats(results);
  return distributionMetrics.map((key) => {
    const m = metricOf(key);
    return {
      metric: key,
      label: m.label,
      unit: m.unit,
      strategies: gs.map((g) => {
        const points: DistributionPoint[] = [];
        for (const it of g.ok) {
          const value = m.get(it);
          if (typeof value === 'number' && !Number.isNaN(value)) points.push({ index: it.index, repetition: it.repetition, value });
        }
        const median = per.find((s) => s.strategy === g.strategy)?.stats[key].median;
        return { strategy: g.strategy, median: median ?? null, points, failed: g.iterations.length - g.ok.length };
      }),
    };
  });
}

function timelineRange(results: Results): { min: number; max: number } | null {
  let min = Infinity;
  let max = -Infinity;
  for (const it of results.iterations) {
    if (!it.timeline) continue;
    const xs = [0, ...it.timeline.ping.map(([o]) => o), it.timeline.marks.mirrorReady, it.timeline.marks.completed];
    for (const x of xs) if (typeof x === 'number') ((min = Math.min(min, x)), (max = Math.max(max, x)));
  }
  return min === Infinity ? null : { min: Math.floor(min / 50) * 50, max: Math.ceil(max / 50) * 50 };
}

export function reportData(runs: readonly ReportRun[], title: string, generatedAt: Date): ReportData {
  return {
    title,
    generatedAt: generatedAt.toISOString(),
    runs: runs.map((r, k) => ({
      id: `run-${k}`,
      path: r.path,
      results: r.results,
      distributions: distributions(r.results),
      timelines: r.results.iterations
        .filter((it) => it.timeline)
        .map((it) => ({ index: it.index, strategy: it.strategy, repetition: it.repetition, ok: it.ok, gap: largestGap(it.timeline) })),
      timelineRange: timelineRange(r.results),
    })),
  };
}

// ---------------------------------------------------------------------------------
// Escaping

/** Text or attribute value made inert. */
export function esc(s: string | number): string {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

/** JSON that can sit in a `<script>` element: no `<`, so no `</script>` and no `<!--`. */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

/** JavaScript that can sit in a `<script>` element: `</script` and `<!--` cannot end or bend it. */
export function scriptText(js: string): string {
  return js.replace(/<\/(script)/gi, '<\\/$1').replace(/<!--/g, '<\\!--');
}

/** The Chart.js UMD build shipped in the npm package (its `exports` map hides dist/, so resolve the package and look next to it). */
export function chartJsSource(): string {
  const main = createRequire(import.meta.url).resolve('chart.js');
  return readFileSync(join(dirname(main), 'chart.umd.min.js'), 'utf8');
}

// ---------------------------------------------------------------------------------
// Server-side HTML

const DASH = '–';

function numCell(value: number | null | undefined, unit: MetricUnit, attrs: Record<string, string>, signed = false): string {
  const a = Object.entries(attrs)
    .map(([k, v]) => ` data-${k}="${esc(v)}"`)
    .join('');
  const has = typeof value === 'number' && Number.isFinite(value);
  return `<td class="num"${a}${has ? ` data-value="${value}"` : ''}>${esc(formatNumber(value, unit, signed))}</td>`;
}

const unitSuffix = (unit: MetricUnit) => (unit === 'ms' ? ' (ms)' : '');

function summaryTable(results: Results, runId: string): string {
  const per = strategyStats(results);
  const diff = blockMinusShared(results, BOOTSTRAP_SEED);
  const hasBoth = per.some((p) => p.strategy === 'block') && per.some((p) => p.strategy === 'shared');
  const rows: string[] = [];
  for (const m of metrics) {
    const span = per.length + (hasBoth ? 1 : 0);
    per.forEach((p, k) => {
      const s = p.stats[m.key];
      const cells = [
        k === 0 ? `<th scope="rowgroup" rowspan="${span}" class="metric">${esc(m.label)}${unitSuffix(m.unit)}</th>` : '',
        `<th scope="row" class="strategy s-${esc(p.strategy)}">${esc(p.strategy)}</th>`,
        `<td class="num" data-metric="${m.key}" data-strategy="${esc(p.strategy)}" data-stat="n" data-value="${s.n}">${s.n}${p.iterations !== s.n ? `<span class="of">/${p.iterations}</span>` : ''}</td>`,
        ...statColumns.map((c) => numCell(s[c], m.unit, { metric: m.key, strategy: p.strategy, stat: c })),
      ];
      rows.push(`<tr${k === 0 ? ' class="first"' : ''}>${cells.join('')}</tr>`);
    });
    if (hasBoth) {
      const d = diff[m.key];
      const attrs = (stat: string) => ({ metric: m.key, strategy: 'block-shared', stat });
      const interval = d
        ? `95% interval [<span data-metric="${m.key}" data-strategy="block-shared" data-stat="low" data-value="${d.low}">${esc(formatNumber(d.low, m.unit, true))}</span>, ` +
          `<span data-metric="${m.key}" data-strategy="block-shared" data-stat="high" data-value="${d.high}">${esc(formatNumber(d.high, m.unit, true))}</span>]` +
          (d.warning ? ` <span class="warn" data-metric="${m.key}" data-stat="warning" title="${esc(d.warning)}">⚠ ${d.nA} vs ${d.nB} values: too few</span>` : '')
        : `<span class="fine">not measured in both strategies</span>`;
      rows.push(
        `<tr class="diff"><th scope="row">block − shared</th><td></td>${numCell(d?.diff, m.unit, attrs('diff'), true)}<td colspan="${statColumns.length - 1}" class="interval">${interval}</td></tr>`,
      );
    }
  }
  const head = ['metric', 'strategy', 'n', ...statColumns].map((h) => `<th scope="col">${h}</th>`).join('');
  const counts = per
    .map((p) => `<span class="count s-${esc(p.strategy)}"><b>${esc(p.strategy)}</b>: ${p.iterations} iteration${p.iterations === 1 ? '' : 's'}, ${p.failed} failed</span>`)
    .join(' ');
  const ds = Object.values(diff).filter((d) => d !== undefined);
  const warnings = [...new Set(ds.flatMap((d) => (d.warning ? [d.warning] : [])))];
  const method = ds[0]
    ? ` block − shared: difference of the medians, with a ${Math.round(ds[0].level * 100)}% percentile bootstrap interval (${ds[0].resamples} resamples of each strategy, seed ${ds[0].seed}).`
    : '';
  const warnText = warnings.map((w) => `<p class="warn">⚠ ${esc(w)}: read the intervals as rough.</p>`).join('');
  return `<p class="counts">${counts}</p>
<table class="summary" id="${runId}-summary" data-run="${runId}">
<thead><tr>${head}</tr></thead>
<tbody>${rows.join('\n')}</tbody>
</table>
<p class="fine">Statistics over successful iterations; p90/p95 interpolate between ranks; sd is the sample standard deviation; – means not defined (no value, or sd of one value).${method}</p>${warnText}`;
}

/** With several runs (matrix cells), one table of the medians side by side. */
function overviewTable(runs: ReportData['runs']): string {
  const rows: string[] = [];
  for (const run of runs) {
    const per = strategyStats(run.results);
    per.forEach((p, k) => {
      const cells = [
        k === 0 ? `<th scope="rowgroup" rowspan="${per.length}"><a href="#${run.id}">${esc(run.results.scenario.name)}</a><div class="fine">${esc(run.path)}</div></th>` : '',
        `<th scope="row" class="strategy s-${esc(p.strategy)}">${esc(p.strategy)}</th>`,
        `<td class="num">${p.iterations - p.failed}/${p.iterations}</td>`,
        ...metrics.map((m) => numCell(p.stats[m.key].median, m.unit, { run: run.id, metric: m.key, strategy: p.strategy, stat: 'median' })),
      ];
      rows.push(`<tr${k === 0 ? ' class="first"' : ''}>${cells.join('')}</tr>`);
    });
  }
  const head = ['run', 'strategy', 'ok', ...metrics.map((m) => `${m.label}${unitSuffix(m.unit)}`)].map((h) => `<th scope="col">${esc(h)}</th>`).join('');
  return `<section class="overview"><h2>Runs compared (medians)</h2>
<table class="summary overview-table"><thead><tr>${head}</tr></thead><tbody>${rows.join('\n')}</tbody></table></section>`;
}

const msText = (v: number | null | undefined) => formatNumber(v, 'ms');

function iterationTable(results: Results): string {
  const rows = results.iterations.map((it) => {
    const status = it.ok ? '<span class="ok">ok</span>' : `<span class="bad" title="${esc(it.error ?? '')}">failed</span>`;
    const cells = [
      `<td class="num">${it.index + 1}</td>`,
      `<td class="strategy s-${esc(it.strategy)}">${esc(it.strategy)}</td>`,
      `<td class="num">${it.repetition}</td>`,
      `<td>${esc(it.source)} → ${esc(it.destination)}</td>`,
      `<td>${status}</td>`,
      ...metrics.map((m) => numCell(m.get(it), m.unit, { iteration: String(it.index), metric: m.key })),
      `<td class="num">${esc(msText(it.prepareMs))}</td>`,
      `<td class="num">${esc(msText(it.mirrorMs))}</td>`,
      `<td class="num">${it.qemu.ramBytes === null ? DASH : esc(formatBytes(it.qemu.ramBytes))}</td>`,
      `<td class="num">${it.qemu.diskBytes === null ? DASH : esc(formatBytes(it.qemu.diskBytes))}</td>`,
      `<td class="num">${it.ping.sent ?? DASH}</td>`,
      `<td class="num">${esc(msText(it.ping.medianGapMs))}</td>`,
    ];
    const err = it.ok ? '' : `<tr class="error"><td colspan="${cells.length}">${esc(it.error ?? 'failed')}${it.guestOn ? ` (guest on ${esc(it.guestOn.node)}, ${esc(it.guestOn.status)})` : ''}</td></tr>`;
    return `<tr data-iteration="${it.index}">${cells.join('')}</tr>${err}`;
  });
  const head = [
    '#',
    'strategy',
    'rep',
    'from → to',
    'status',
    ...metrics.map((m) => `${m.label}${unitSuffix(m.unit)}`),
    'prepare (ms)',
    'mirror (ms)',
    'RAM sent',
    'disk sent',
    'pings sent',
    'ping interval kept (ms)',
  ]
    .map((h) => `<th scope="col">${esc(h)}</th>`)
    .join('');
  // Notes repeat from one iteration to the next: each once, with the iterations it concerns.
  const notes = new Map<string, number[]>();
  for (const it of results.iterations) for (const n of it.notes) notes.set(n, [...(notes.get(n) ?? []), it.index + 1]);
  const noteList = notes.size
    ? `<ul class="notes">${[...notes].map(([n, its]) => `<li>${esc(n)} <span class="fine">(iteration${its.length === 1 ? '' : 's'} ${its.join(', ')})</span></li>`).join('')}</ul>`
    : '';
  return `<div class="scroll"><table class="iterations"><thead><tr>${head}</tr></thead><tbody>${rows.join('\n')}</tbody></table></div>${noteList}`;
}

function distributionFigures(run: ReportData['runs'][number]): string {
  return run.distributions
    .map((d) => {
      const n = d.strategies.reduce((a, s) => a + s.points.length, 0);
      const failed = d.strategies.reduce((a, s) => a + s.failed, 0);
      const medians = d.strategies.map((s) => `${s.strategy} median ${formatNumber(s.median, d.unit)}${d.unit === 'ms' ? ' ms' : ''}`).join(', ');
      return `<figure class="dist" data-metric="${d.metric}">
<figcaption><b>${esc(d.label)}</b>${unitSuffix(d.unit)} <span class="fine">${n} point${n === 1 ? '' : 's'}${failed ? `, ${failed} failed iteration${failed === 1 ? '' : 's'} not shown` : ''}</span></figcaption>
<div class="chart"><canvas id="${run.id}-dist-${d.metric}" data-kind="distribution" data-metric="${d.metric}" data-points="${n}" role="img" aria-label="${esc(`${d.label}: ${medians}`)}"></canvas></div>
</figure>`;
    })
    .join('\n');
}

function timelineFigures(run: ReportData['runs'][number]): string {
  const figs = run.results.iterations.map((it) => {
    const head = `<b class="s-${esc(it.strategy)}">${esc(it.strategy)} #${it.repetition}</b> <span class="fine">iteration ${it.index + 1}, ${esc(it.source)} → ${esc(it.destination)}${it.ok ? '' : ', <span class="bad">failed</span>'}</span>`;
    if (!it.timeline) return `<figure class="timeline missing" data-iteration="${it.index}"><figcaption>${head}</figcaption><p class="fine">No timeline in this results.json (written before ping replies were kept).</p></figure>`;
    const gap = largestGap(it.timeline);
    const marks = it.timeline.marks;
    const facts = [
      gap ? `largest gap ${formatNumber(gap.ms, 'ms')} ms` : 'no gap (fewer than two replies)',
      marks.mirrorReady !== null ? `mirror ready ${formatNumber(marks.mirrorReady, 'ms')} ms` : '',
      marks.completed !== null ? `completed ${formatNumber(marks.completed, 'ms')} ms` : '',
      `${it.timeline.ping.length} replies`,
    ].filter(Boolean);
    return `<figure class="timeline" data-iteration="${it.index}">
<figcaption>${head}<br><span class="fine">${esc(facts.join(' · '))}</span></figcaption>
<div class="chart"><canvas id="${run.id}-timeline-${it.index}" data-kind="timeline" data-iteration="${it.index}" data-replies="${it.timeline.ping.length}" role="img" aria-label="${esc(`ping RTT over time, ${facts.join(', ')}`)}"></canvas></div>
</figure>`;
  });
  return figs.join('\n');
}

function thresholdsBlock(results: Results): string {
  const parsed = scenarioSchema.safeParse(results.scenario.asRun);
  if (!parsed.success || !parsed.data.thresholds || results.interrupted) return '';
  const checks: ThresholdCheck[] = evaluateThresholds(results, parsed.data.thresholds);
  if (!checks.length) return '';
  const rows = checks
    .map((c) => `<tr class="${c.held ? 'pass' : 'fail'}"><td>${c.held ? '<span class="ok">PASS</span>' : '<span class="bad">FAIL</span>'}</td><td>${esc(c.name)}</td><td>${esc(c.reason)}</td></tr>`)
    .join('');
  return `<h3>Thresholds</h3><table class="thresholds"><tbody>${rows}</tbody></table>`;
}

function environmentBlock(results: Results): string {
  const rows = Object.entries(results.environment)
    .map(([k, v]) => `<tr><th scope="row">${esc(k)}</th><td data-env="${esc(k)}">${esc(String(v))}</td></tr>`)
    .join('');
  return `<table class="kv environment">${rows}</table>`;
}

function runSection(run: ReportData['runs'][number], several: boolean): string {
  const r = run.results;
  const facts: [string, string][] = [
    ['results', run.path],
    ['scenario file', r.scenario.file],
    ['topology file', r.topologyFile],
    ['lab', r.lab],
    ['started', r.startedAt],
    ['finished', r.finishedAt ?? DASH],
  ];
  const hasTimelines = run.timelines.length > 0;
  return `<section class="run" id="${run.id}" data-run="${run.id}">
<h2>${several ? `${esc(r.scenario.name)} <span class="fine">${esc(run.path)}</span>` : `Scenario ${esc(r.scenario.name)}`}</h2>
${r.interrupted ? '<p class="banner">This run was interrupted: the figures cover the iterations that ran.</p>' : ''}
<table class="kv facts">${facts.map(([k, v]) => `<tr><th scope="row">${esc(k)}</th><td>${esc(v)}</td></tr>`).join('')}</table>
<h3>Summary per strategy</h3>
${summaryTable(r, run.id)}
${thresholdsBlock(r)}
<h3>Distributions</h3>
<p class="fine">Every successful repetition is a dot (spread sideways by repetition number); the bar across each strategy is its median.</p>
<div class="grid dists">${distributionFigures(run)}</div>
<h3>Timelines</h3>
${
  hasTimelines
    ? `<p class="legend fine"><span class="sw rtt"></span>ping RTT (each reply a dot) <span class="sw gap"></span>largest gap between replies <span class="sw line req"></span>migration requested (0 ms) <span class="sw line mirror"></span>disk mirror ready <span class="sw line done"></span>completed</p>`
    : ''
}
<div class="grid timelines">${timelineFigures(run)}</div>
<h3>Iterations</h3>
${iterationTable(r)}
<div class="cols">
<div><h3>Environment</h3>${environmentBlock(r)}</div>
<div><h3>Scenario as run</h3><pre class="json scenario">${esc(JSON.stringify(r.scenario.asRun, null, 2) ?? 'null')}</pre></div>
</div>
</section>`;
}

const CSS = `
:root { --block: #d9480f; --shared: #1c7ed6; --ink: #1f2328; --muted: #59636e; --rule: #d1d9e0; --bg: #fff; --soft: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px 48px; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--ink); background: var(--bg); }
header { border-bottom: 2px solid var(--ink); margin-bottom: 16px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 28px 0 8px; border-bottom: 1px solid var(--rule); padding-bottom: 4px; }
h3 { font-size: 15px; margin: 22px 0 6px; }
.fine { color: var(--muted); font-size: 12px; font-weight: normal; }
.banner { background: #fff3bf; border: 1px solid #f08c00; padding: 6px 10px; }
table { border-collapse: collapse; }
th, td { padding: 3px 8px; text-align: left; vertical-align: top; }
thead th { border-bottom: 1px solid var(--ink); font-weight: 600; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.summary tbody tr.first { border-top: 1px solid var(--rule); }
table.summary tr.diff { background: var(--soft); }
table.summary tr.diff th { font-weight: 600; font-style: italic; }
table.summary .interval { white-space: normal; font-variant-numeric: tabular-nums; }
th.metric { max-width: 140px; }
.of { color: var(--muted); }
.warn { color: #b35900; font-size: 12px; white-space: nowrap; }
p.warn { white-space: normal; margin: 4px 0; }
table.summary { min-width: 760px; }
.strategy.s-block, b.s-block, .count.s-block b { color: var(--block); }
.strategy.s-shared, b.s-shared, .count.s-shared b { color: var(--shared); }
.counts .count { margin-right: 16px; }
table.kv th { color: var(--muted); font-weight: normal; white-space: nowrap; }
table.kv td { word-break: break-all; }
table.iterations { font-size: 13px; }
table.iterations thead th { white-space: normal; vertical-align: bottom; max-width: 92px; }
table.iterations td { white-space: nowrap; }
table.iterations tbody tr { border-top: 1px solid var(--rule); }
tr.error td { color: #c92a2a; border-top: none; font-size: 12px; }
.ok { color: #2b8a3e; font-weight: 600; }
.bad { color: #c92a2a; font-weight: 600; }
.scroll { overflow-x: auto; }
.notes { font-size: 13px; }
.grid { display: grid; gap: 12px; }
.grid.dists { grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); }
.grid.timelines { grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); }
figure { margin: 0; border: 1px solid var(--rule); border-radius: 6px; padding: 8px 10px; background: var(--bg); }
figcaption { margin-bottom: 4px; }
.chart { position: relative; height: 240px; }
.timeline .chart { height: 220px; }
.timeline.missing { color: var(--muted); }
.legend .sw { display: inline-block; width: 14px; height: 10px; margin: 0 4px 0 12px; vertical-align: middle; }
.legend .sw:first-child { margin-left: 0; }
.sw.rtt { background: linear-gradient(90deg, var(--block) 50%, var(--shared) 50%); height: 4px; }
.sw.gap { background: rgba(224, 49, 49, 0.22); border: 1px solid rgba(224, 49, 49, 0.6); }
.sw.line { width: 0; height: 14px; border-left: 2px dashed; margin-right: 6px; }
.sw.req { border-left-style: solid; border-color: #343a40; }
.sw.mirror { border-color: #7048e8; }
.sw.done { border-color: #2b8a3e; }
.cols { display: grid; grid-template-columns: repeat(auto-fit, minmax(380px, 1fr)); gap: 24px; }
pre.json { background: var(--soft); border: 1px solid var(--rule); padding: 8px 10px; font-size: 12px; overflow: auto; max-height: 420px; margin: 0; }
table.thresholds td { border-top: 1px solid var(--rule); }
footer { margin-top: 32px; color: var(--muted); font-size: 12px; }
`;

/**
 * Draws the charts from the embedded data. Plain browser JavaScript (kept as text:
 * transpiled TypeScript could carry bundler helpers the page does not have).
 */
const CLIENT = String.raw`
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('data').textContent);
  var css = getComputedStyle(document.documentElement);
  var palette = { block: css.getPropertyValue('--block').trim() || '#d9480f', shared: css.getPropertyValue('--shared').trim() || '#1c7ed6' };
  var spare = ['#2b8a3e', '#7048e8', '#e8590c', '#0c8599'];
  function color(strategy, k) { return palette[strategy] || spare[k % spare.length]; }
  function fmt(v, unit) { return v === null || v === undefined ? '–' : unit === 'ms' ? v.toFixed(1) + ' ms' : String(Math.round(v * 10) / 10); }
  function alpha(hex, a) {
    var n = parseInt(hex.slice(1), 16);
    return 'rgba(' + (n >> 16) + ',' + ((n >> 8) & 255) + ',' + (n & 255) + ',' + a + ')';
  }

  Chart.defaults.animation = false;
  Chart.defaults.responsive = true;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.color = '#59636e';

  /** Shaded largest gap, and vertical lines at the request and the phase marks. */
  var marksPlugin = {
    id: 'migralabMarks',
    beforeDatasetsDraw: function (chart, _args, opts) {
      var x = chart.scales.x, area = chart.chartArea, ctx = chart.ctx;
      if (!opts.gap) return;
      var a = Math.max(area.left, x.getPixelForValue(opts.gap.startMs));
      var b = Math.min(area.right, x.getPixelForValue(opts.gap.endMs));
      if (b <= a) return;
      ctx.save();
      ctx.fillStyle = 'rgba(224, 49, 49, 0.18)';
      ctx.fillRect(a, area.top, b - a, area.bottom - area.top);
      ctx.strokeStyle = 'rgba(224, 49, 49, 0.6)';
      ctx.lineWidth = 1;
      ctx.strokeRect(a + 0.5, area.top + 0.5, b - a - 1, area.bottom - area.top - 1);
      ctx.restore();
    },
    afterDraw: function (chart, _args, opts) {
      if (!opts.gap) return;
      var x = chart.scales.x, area = chart.chartArea, ctx = chart.ctx;
      var a = Math.max(area.left, x.getPixelForValue(opts.gap.startMs));
      var b = Math.min(area.right, x.getPixelForValue(opts.gap.endMs));
      var text = 'gap ' + opts.gap.ms.toFixed(1) + ' ms';
      ctx.save();
      ctx.font = '600 11px ' + Chart.defaults.font.family;
      var w = ctx.measureText(text).width + 8;
      var cx = Math.min(Math.max(b + 4 + w / 2, area.left + w / 2), area.right - w / 2);
      var cy = area.top + (area.bottom - area.top) * 0.55;
      ctx.fillStyle = 'rgba(255, 255, 255, 0.85)';
      ctx.fillRect(cx - w / 2, cy - 9, w, 16);
      ctx.fillStyle = '#c92a2a';
      ctx.textAlign = 'center';
      ctx.fillText(text, cx, cy + 3);
      ctx.restore();
    },
    afterDatasetsDraw: function (chart, _args, opts) {
      var x = chart.scales.x, area = chart.chartArea, ctx = chart.ctx;
      (opts.lines || []).forEach(function (l, k) {
        if (l.at === null || l.at === undefined) return;
        var px = x.getPixelForValue(l.at);
        if (px < area.left || px > area.right) return;
        ctx.save();
        ctx.strokeStyle = l.color;
        ctx.lineWidth = 1.5;
        ctx.setLineDash(l.dash ? [5, 4] : []);
        ctx.beginPath();
        ctx.moveTo(px, area.top);
        ctx.lineTo(px, area.bottom);
        ctx.stroke();
        ctx.fillStyle = l.color;
        ctx.font = '11px ' + Chart.defaults.font.family;
        ctx.textAlign = px > area.right - 80 ? 'right' : 'left';
        ctx.fillText(l.label, px + (ctx.textAlign === 'right' ? -4 : 4), area.top + 12 + 13 * k);
        ctx.restore();
      });
    },
  };

  function distributionChart(canvas, d) {
    var datasets = [];
    var nStrategies = d.strategies.length;
    d.strategies.forEach(function (s, k) {
      var reps = s.points.map(function (p) { return p.repetition; });
      var lo = Math.min.apply(null, reps), hi = Math.max.apply(null, reps);
      var c = color(s.strategy, k);
      datasets.push({
        label: s.strategy,
        migralab: 'points',
        data: s.points.map(function (p) {
          var spread = hi > lo ? (p.repetition - lo) / (hi - lo) - 0.5 : 0;
          return { x: k + spread * 0.5, y: p.value, repetition: p.repetition, iteration: p.index };
        }),
        backgroundColor: alpha(c, 0.75),
        borderColor: c,
        pointRadius: 4.5,
        pointHoverRadius: 6,
      });
      if (s.median !== null) {
        datasets.push({
          label: s.strategy + ' median',
          migralab: 'median',
          type: 'line',
          data: [{ x: k - 0.36, y: s.median }, { x: k + 0.36, y: s.median }],
          borderColor: c,
          borderWidth: 3,
          pointRadius: 0,
          pointHoverRadius: 0,
        });
      }
    });
    return new Chart(canvas, {
      type: 'scatter',
      data: { datasets: datasets },
      options: {
        plugins: {
          legend: { display: false },
          tooltip: {
            filter: function (item) { return item.dataset.migralab === 'points'; },
            callbacks: {
              label: function (item) {
                var p = item.raw;
                return item.dataset.label + ' #' + p.repetition + ' (iteration ' + (p.iteration + 1) + '): ' + fmt(p.y, d.unit);
              },
            },
          },
        },
        scales: {
          x: {
            type: 'linear',
            min: -0.5,
            max: nStrategies - 0.5,
            grid: { display: false },
            afterBuildTicks: function (axis) { axis.ticks = d.strategies.map(function (_s, k) { return { value: k }; }); },
            ticks: { callback: function (v) { var s = d.strategies[v]; return s ? s.strategy : ''; }, font: { weight: '600' } },
          },
          y: { beginAtZero: true, title: { display: true, text: d.unit === 'ms' ? d.label + ' (ms)' : d.label } },
        },
      },
    });
  }

  function timelineChart(canvas, run, t) {
    var it = run.results.iterations.filter(function (i) { return i.index === t.index; })[0];
    var tl = it.timeline;
    var c = color(it.strategy, 0);
    var points = tl.ping
      .filter(function (p) { return p[1] !== null; })
      .map(function (p) { return { x: p[0], y: p[1], seq: p[2] }; })
      .sort(function (a, b) { return a.x - b.x; });
    var range = run.timelineRange || {};
    // No line across a silence (more than 2.5 times the usual spacing of replies): a line there would draw replies that never came.
    var steps = points.slice(1).map(function (p, k) { return p.x - points[k].x; }).sort(function (a, b) { return a - b; });
    var usual = steps.length ? steps[steps.length >> 1] : 0;
    var silent = function (seg) { return usual > 0 && seg.p1.parsed.x - seg.p0.parsed.x > 2.5 * usual; };
    return new Chart(canvas, {
      type: 'scatter',
      data: {
        datasets: [{
          label: 'RTT',
          migralab: 'rtt',
          data: points,
          showLine: true,
          spanGaps: false,
          borderColor: alpha(c, 0.55),
          borderWidth: 1,
          backgroundColor: c,
          pointRadius: 1.8,
          pointHoverRadius: 4,
          segment: { borderColor: function (seg) { return silent(seg) ? 'rgba(0, 0, 0, 0)' : undefined; } },
        }],
      },
      options: {
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: function (item) { return 'icmp_seq ' + item.raw.seq + ' at ' + item.raw.x.toFixed(1) + ' ms: rtt ' + item.raw.y + ' ms'; } } },
          migralabMarks: {
            gap: t.gap,
            lines: [
              { at: 0, label: 'request', color: '#343a40', dash: false },
              { at: tl.marks.mirrorReady, label: 'mirror ready', color: '#7048e8', dash: true },
              { at: tl.marks.completed, label: 'completed', color: '#2b8a3e', dash: true },
            ],
          },
        },
        scales: {
          x: { type: 'linear', min: range.min, max: range.max, title: { display: true, text: 'ms after the migration request' } },
          y: { beginAtZero: true, title: { display: true, text: 'RTT (ms)' } },
        },
      },
      plugins: [marksPlugin],
    });
  }

  data.runs.forEach(function (run) {
    run.distributions.forEach(function (d) {
      var canvas = document.getElementById(run.id + '-dist-' + d.metric);
      if (canvas) distributionChart(canvas, d);
    });
    run.timelines.forEach(function (t) {
      var canvas = document.getElementById(run.id + '-timeline-' + t.index);
      if (canvas) timelineChart(canvas, run, t);
    });
  });
  document.body.setAttribute('data-charts', 'ready');
})();
`;

const CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'";

/** The whole report as one HTML document (no external reference: it opens offline). */
export function renderHtml(runs: { path: string; results: Results }[], opts: { title?: string; generatedAt?: Date } = {}): string {
  const generatedAt = opts.generatedAt ?? new Date();
  const names = [...new Set(runs.map((r) => r.results.scenario.name))];
  const title = opts.title ?? `migralab report: ${names.join(', ') || 'no run'}`;
  const data = reportData(runs, title, generatedAt);
  const several = runs.length > 1;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="migralab">
<title>${esc(title)}</title>
<style>${CSS}</style>
</head>
<body>
<header>
<h1>${esc(title)}</h1>
<p class="fine">Generated ${esc(data.generatedAt)} from ${runs.length} run${runs.length === 1 ? '' : 's'}: ${runs.map((r) => esc(r.path)).join(', ')}. Block migration copies the disk over NBD while the guest runs; shared storage moves only RAM and device state.</p>
</header>
${several ? overviewTable(data.runs) : ''}
${data.runs.map((run) => runSection(run, several)).join('\n')}
<footer>Charts drawn with Chart.js (MIT), inlined. Data: the results.json of each run, embedded below as JSON.</footer>
<script type="application/json" id="data">${jsonForScript(data)}</script>
<script>${scriptText(chartJsSource())}</script>
<script>${scriptText(CLIENT)}</script>
</body>
</html>
`;
}

/** Loads `<dir>/results.json` of every directory (validated), writes the report to outFile, returns its path. */
export async function writeReport(dirs: string[], outFile: string): Promise<string> {
  const runs: ReportRun[] = [];
  for (const dir of dirs) runs.push({ path: dir, results: await loadResults(dir) });
  const out = resolve(outFile);
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, renderHtml(runs));
  return out;
}
