import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import type { Strategy } from '../config/scenario.ts';
import { formatBytes } from '../config/size.ts';
import type { Stats } from '../measure/stats.ts';
import type { IterationResult, Results } from '../runner/results.ts';
import { loadResults } from './compare.ts';
import { formatNumber } from './markdown.ts';
import {
  blockMinusShared,
  cellGroups,
  cellOf,
  groups,
  hasAxes,
  metricOf,
  metrics,
  strategyStats,
  type CellStats,
  type GroupDifference,
  type MetricKey,
  type MetricUnit,
} from './metrics.ts';
import { scenarioThresholdChecks } from './thresholds.ts';

/**
 * The HTML report: one self-contained file that opens offline. Tables (summary
 * statistics per matrix cell, iterations, environment, scenario as run) are rendered
 * here, so their figures are in the DOM; the charts are drawn in the page by Chart.js,
 * whose UMD build is inlined from the npm package, from the data embedded as JSON. A
 * Content-Security-Policy forbids every fetch, so the page cannot reach the network
 * even by mistake. A matrix cell is a strategy and one value of every axis of the
 * scenario (without axes, a cell is a strategy); block − shared compares the two cells
 * of each group of cells that differ only by strategy.
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
  /** One x category per matrix cell, in cell order. */
  cells: { label: string; strategy: Strategy; group: string; median: number | null; points: DistributionPoint[]; failed: number }[];
}

export interface Gap {
  /** ms after the migration request: the last reply before the gap, the first after it. */
  startMs: number;
  endMs: number;
  ms: number;
}

export interface TimelineView {
  index: number;
  /** The x range of this timeline: shared by the cells of its group (which differ only by strategy), so they compare by eye. */
  range: { min: number; max: number } | null;
  strategy: Strategy;
  /** The matrix cell's label (the strategy without axes). */
  cell: string;
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
    /** One x range covering every timeline of the run. */
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
      cells: gs.map((g) => {
        const points: DistributionPoint[] = [];
        for (const it of g.ok) {
          const value = m.get(it);
          if (typeof value === 'number' && !Number.isNaN(value)) points.push({ index: it.index, repetition: it.repetition, value });
        }
        const median = per.find((s) => s.label === g.label)?.stats[key].median;
        return { label: g.label, strategy: g.strategy, group: g.group, median: median ?? null, points, failed: g.iterations.length - g.ok.length };
      }),
    };
  });
}

function timelineRange(iterations: readonly IterationResult[]): { min: number; max: number } | null {
  let min = Infinity;
  let max = -Infinity;
  for (const it of iterations) {
    if (!it.timeline) continue;
    const m = it.timeline.marks;
    const xs = [0, ...it.timeline.ping.map(([o]) => o), ...(it.timeline.samples ?? []).map((s) => s.t), m.mirrorReady, m.ramStart, m.postcopyStart, m.completed, m.destRunning];
    for (const x of xs) if (typeof x === 'number') ((min = Math.min(min, x)), (max = Math.max(max, x)));
  }
  return min === Infinity ? null : { min: Math.floor(min / 50) * 50, max: Math.ceil(max / 50) * 50 };
}

/** Per group of cells (which differ only by strategy), the x range of their timelines. */
function groupRanges(results: Results): Map<string, { min: number; max: number } | null> {
  return new Map(cellGroups(results).map(({ group, cells }) => [group, timelineRange(cells.flatMap((c) => c.iterations))]));
}

export function reportData(runs: readonly ReportRun[], title: string, generatedAt: Date): ReportData {
  return {
    title,
    generatedAt: generatedAt.toISOString(),
    runs: runs.map((r, k) => {
      const ranges = groupRanges(r.results);
      return {
        id: `run-${k}`,
        path: r.path,
        results: r.results,
        distributions: distributions(r.results),
        timelines: r.results.iterations
          .filter((it) => it.timeline)
          .map((it) => ({
            index: it.index,
            range: ranges.get(cellOf(it).group) ?? null,
            strategy: it.strategy,
            cell: cellOf(it).label,
            repetition: it.repetition,
            ok: it.ok,
            gap: largestGap(it.timeline),
          })),
        timelineRange: timelineRange(r.results.iterations),
      };
    }),
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

/** The cells of a run in display order: group by group (in order of first appearance), each group's cells in order. */
function cellsInGroups(results: Results, per: CellStats[]): { group: string; cells: CellStats[] }[] {
  return cellGroups(results).map(({ group, cells }) => ({ group, cells: cells.map((c) => per.find((p) => p.label === c.label)!) }));
}

function differenceRow(m: (typeof metrics)[number], g: GroupDifference): string {
  const d = g.diffs[m.key];
  const at = { metric: m.key, strategy: 'block-shared', group: g.group };
  const span = (stat: 'low' | 'high', v: number) =>
    `<span data-metric="${m.key}" data-strategy="block-shared" data-group="${esc(g.group)}" data-stat="${stat}" data-value="${v}">${esc(formatNumber(v, m.unit, true))}</span>`;
  const interval = d
    ? `95% interval [${span('low', d.low)}, ${span('high', d.high)}]` +
      (d.warning ? ` <span class="warn" data-metric="${m.key}" data-group="${esc(g.group)}" data-stat="warning" title="${esc(d.warning)}">⚠ ${d.nA} vs ${d.nB} values: too few</span>` : '')
    : `<span class="fine">not measured in both strategies</span>`;
  const where = g.group ? `<div class="fine">${esc(g.group)}</div>` : '';
  return `<tr class="diff"><th scope="row">block − shared${where}</th><td></td>${numCell(d?.diff, m.unit, { ...at, stat: 'diff' }, true)}<td colspan="${statColumns.length - 1}" class="interval">${interval}</td></tr>`;
}

function summaryTable(results: Results, runId: string): string {
  const per = strategyStats(results);
  const diffs = blockMinusShared(results, BOOTSTRAP_SEED);
  const blocks = cellsInGroups(results, per);
  const rows: string[] = [];
  for (const m of metrics) {
    const span = per.length + diffs.length;
    let k = 0;
    for (const { group, cells } of blocks) {
      for (const p of cells) {
        const s = p.stats[m.key];
        const at = { metric: m.key, strategy: p.strategy, cell: p.label };
        const tds = [
          k === 0 ? `<th scope="rowgroup" rowspan="${span}" class="metric">${esc(m.label)}${unitSuffix(m.unit)}</th>` : '',
          `<th scope="row" class="strategy s-${esc(p.strategy)}">${esc(p.label)}</th>`,
          `<td class="num" data-metric="${m.key}" data-strategy="${esc(p.strategy)}" data-cell="${esc(p.label)}" data-stat="n" data-value="${s.n}">${s.n}${p.iterations !== s.n ? `<span class="of">/${p.iterations}</span>` : ''}</td>`,
          ...statColumns.map((c) => numCell(s[c], m.unit, { ...at, stat: c })),
        ];
        rows.push(`<tr${k === 0 ? ' class="first"' : ''}>${tds.join('')}</tr>`);
        k++;
      }
      const d = diffs.find((x) => x.group === group);
      if (d) rows.push(differenceRow(m, d));
    }
  }
  const head = ['metric', hasAxes(results) ? 'cell' : 'strategy', 'n', ...statColumns].map((h) => `<th scope="col">${h}</th>`).join('');
  const counts = per
    .map((p) => `<span class="count s-${esc(p.strategy)}"><b>${esc(p.label)}</b>: ${p.iterations} iteration${p.iterations === 1 ? '' : 's'}, ${p.failed} failed</span>`)
    .join(' ');
  const ds = diffs.flatMap((g) => Object.values(g.diffs)).filter((d) => d !== undefined);
  const warnings = [...new Set(ds.flatMap((d) => (d.warning ? [d.warning] : [])))];
  const method = ds[0]
    ? ` block − shared: difference of the medians${diffs.length > 1 ? ' of the two cells of each group' : ''}, with a ${Math.round(ds[0].level * 100)}% percentile bootstrap interval (${ds[0].resamples} resamples of each strategy, seed ${ds[0].seed}).`
    : '';
  const warnText = warnings.map((w) => `<p class="warn">⚠ ${esc(w)}: read the intervals as rough.</p>`).join('');
  return `<p class="counts">${counts}</p>
<table class="summary" id="${runId}-summary" data-run="${runId}">
<thead><tr>${head}</tr></thead>
<tbody>${rows.join('\n')}</tbody>
</table>
<p class="fine">Statistics over successful iterations; p90/p95 interpolate between ranks; sd is the sample standard deviation; – means not defined (no value, or sd of one value).${method}</p>${warnText}`;
}

/** With several runs, one table of the medians per cell side by side. */
function overviewTable(runs: ReportData['runs']): string {
  const rows: string[] = [];
  for (const run of runs) {
    const per = strategyStats(run.results);
    per.forEach((p, k) => {
      const cells = [
        k === 0 ? `<th scope="rowgroup" rowspan="${per.length}"><a href="#${run.id}">${esc(run.results.scenario.name)}</a><div class="fine">${esc(run.path)}</div></th>` : '',
        `<th scope="row" class="strategy s-${esc(p.strategy)}">${esc(p.label)}</th>`,
        `<td class="num">${p.iterations - p.failed}/${p.iterations}</td>`,
        ...metrics.map((m) => numCell(p.stats[m.key].median, m.unit, { run: run.id, metric: m.key, strategy: p.strategy, cell: p.label, stat: 'median' })),
      ];
      rows.push(`<tr${k === 0 ? ' class="first"' : ''}>${cells.join('')}</tr>`);
    });
  }
  const head = ['run', runs.some((r) => hasAxes(r.results)) ? 'cell' : 'strategy', 'ok', ...metrics.map((m) => `${m.label}${unitSuffix(m.unit)}`)].map((h) => `<th scope="col">${esc(h)}</th>`).join('');
  return `<section class="overview"><h2>Runs compared (medians)</h2>
<table class="summary overview-table"><thead><tr>${head}</tr></thead><tbody>${rows.join('\n')}</tbody></table></section>`;
}


/** The extra figures of the iteration table, after the four metrics: [header, unit, value, CSV-style field name]. */
const iterationColumns: readonly (readonly [string, MetricUnit | 'bytes' | 'ratio', (i: IterationResult) => number | null | undefined, string])[] = [
  ['prepare (ms)', 'ms', (i) => i.prepareMs, 'prepareMs'],
  ['mirror (ms)', 'ms', (i) => i.phases?.mirrorMs ?? i.mirrorMs, 'phases.mirrorMs'],
  ['pre-copy (ms)', 'ms', (i) => i.phases?.precopyMs, 'phases.precopyMs'],
  ['RAM passes', 'count', (i) => i.phases?.ramIterations, 'phases.ramIterations'],
  ['switchover (ms)', 'ms', (i) => i.phases?.switchoverMs, 'phases.switchoverMs'],
  ['resume (ms)', 'ms', (i) => i.phases?.resumeMs, 'phases.resumeMs'],
  ['RAM sent', 'bytes', (i) => i.qemu.ramBytes, 'qemu.ramBytes'],
  ['disk sent', 'bytes', (i) => i.qemu.diskBytes, 'qemu.diskBytes'],
  ['on the wire', 'bytes', (i) => i.link?.wireBytes, 'link.wireBytes'],
  ['link efficiency', 'ratio', (i) => i.link?.efficiency, 'link.efficiency'],
  ['guest clock loss (ms)', 'ms', (i) => i.guest?.clockLossMs, 'guest.clockLossMs'],
  ['harness CPU (ms)', 'ms', (i) => i.harness?.cpuMs, 'harness.cpuMs'],
  ['ping CPU (ms)', 'ms', (i) => i.harness?.pingCpuMs, 'harness.pingCpuMs'],
  ['pings sent', 'count', (i) => i.ping.sent, 'ping.sent'],
  ['ping interval kept (ms)', 'ms', (i) => i.ping.medianGapMs, 'ping.medianGapMs'],
];

function iterationColumn(it: IterationResult, [, unit, get, field]: (typeof iterationColumns)[number]): string {
  const v = get(it);
  const at = { iteration: String(it.index), field };
  if (unit === 'ms' || unit === 'count') return numCell(v, unit, at);
  const has = typeof v === 'number' && Number.isFinite(v);
  const text = !has ? DASH : unit === 'bytes' ? formatBytes(v) : `${(v * 100).toFixed(1)}%`;
  const title = unit === 'ratio' && !has && it.link ? ' title="the link was not capped"' : '';
  return `<td class="num" data-iteration="${it.index}" data-field="${field}"${has ? ` data-value="${v}"` : ''}${title}>${esc(text)}</td>`;
}

function crossCheckCell(it: IterationResult): string {
  if (it.crossCheck === undefined) return `<td class="fine">${DASH}</td>`;
  const n = it.crossCheck.length;
  if (n === 0) return `<td data-iteration="${it.index}" data-field="crossCheck" data-value="0"><span class="ok" title="the network, hypervisor and guest views agree">agree</span></td>`;
  return `<td data-iteration="${it.index}" data-field="crossCheck" data-value="${n}"><span class="flag" title="${esc(it.crossCheck.join('\n'))}">⚠ ${n} contradiction${n === 1 ? '' : 's'}</span></td>`;
}

function iterationTable(results: Results): string {
  // a column no iteration has a figure for (an older results.json, no capped link) is left out
  const columns = iterationColumns.filter(([, , get]) => results.iterations.some((it) => typeof get(it) === 'number'));
  const withCrossCheck = results.iterations.some((it) => it.crossCheck !== undefined);
  const rows = results.iterations.map((it) => {
    const status = it.ok ? '<span class="ok">ok</span>' : `<span class="bad" title="${esc(it.error ?? '')}">failed</span>`;
    const flags = it.crossCheck ?? [];
    const cells = [
      `<td class="num">${it.index + 1}</td>`,
      `<td class="strategy s-${esc(it.strategy)}">${esc(cellOf(it).label)}</td>`,
      `<td class="num">${it.repetition}</td>`,
      `<td>${esc(it.source)} → ${esc(it.destination)}</td>`,
      `<td>${status}</td>`,
      ...metrics.map((m) => numCell(m.get(it), m.unit, { iteration: String(it.index), metric: m.key })),
      ...columns.map((c) => iterationColumn(it, c)),
      ...(withCrossCheck ? [crossCheckCell(it)] : []),
    ];
    const err = it.ok ? '' : `<tr class="error"><td colspan="${cells.length}">${esc(it.error ?? 'failed')}${it.guestOn ? ` (guest on ${esc(it.guestOn.node)}, ${esc(it.guestOn.status)})` : ''}</td></tr>`;
    const flagRow = flags.length
      ? `<tr class="flags" data-iteration="${it.index}"><td colspan="${cells.length}"><b>cross-check:</b> the views contradict each other: <ul>${flags.map((f) => `<li>${esc(f)}</li>`).join('')}</ul></td></tr>`
      : '';
    return `<tr data-iteration="${it.index}"${flags.length ? ' class="flagged"' : ''}>${cells.join('')}</tr>${err}${flagRow}`;
  });
  const head = ['#', hasAxes(results) ? 'cell' : 'strategy', 'rep', 'from → to', 'status', ...metrics.map((m) => `${m.label}${unitSuffix(m.unit)}`), ...columns.map(([h]) => h), ...(withCrossCheck ? ['cross-check'] : [])]
    .map((h) => `<th scope="col">${esc(h)}</th>`)
    .join('');
  // Notes repeat from one iteration to the next: each once, with the iterations it concerns.
  const notes = new Map<string, number[]>();
  for (const it of results.iterations) for (const n of it.notes) notes.set(n, [...(notes.get(n) ?? []), it.index + 1]);
  const noteList = notes.size
    ? `<ul class="notes">${[...notes].map(([n, its]) => `<li>${esc(n)} <span class="fine">(iteration${its.length === 1 ? '' : 's'} ${its.join(', ')})</span></li>`).join('')}</ul>`
    : '';
  const flagged = results.iterations.filter((i) => (i.crossCheck ?? []).length > 0).length;
  const checked = results.iterations.filter((i) => i.crossCheck !== undefined).length;
  const crossNote = checked
    ? `<p class="fine">Cross-check: ${flagged === 0 ? `the network (ping), hypervisor (QMP) and guest views agree in all ${checked} iterations checked.` : `<span class="flag">${flagged} of ${checked} iterations</span> have views that contradict each other (highlighted): read their figures with care.`} Link efficiency: bytes on the wire / (duration × link rate), when the link is capped.</p>`
    : '';
  return `<div class="scroll"><table class="iterations"><thead><tr>${head}</tr></thead><tbody>${rows.join('\n')}</tbody></table></div>${crossNote}${noteList}`;
}

function distributionFigures(run: ReportData['runs'][number]): string {
  return run.distributions
    .map((d) => {
      const n = d.cells.reduce((a, s) => a + s.points.length, 0);
      const failed = d.cells.reduce((a, s) => a + s.failed, 0);
      const medians = d.cells.map((s) => `${s.label} median ${formatNumber(s.median, d.unit)}${d.unit === 'ms' ? ' ms' : ''}`).join('; ');
      const axes = [...new Set(d.cells.flatMap((c) => (c.group ? c.group.split(', ').map((part) => part.split('=')[0]!) : [])))];
      const xAxis = axes.length ? `, under each cell: strategy, ${axes.map(esc).join(', ')}` : '';
      return `<figure class="dist" data-metric="${d.metric}">
<figcaption><b>${esc(d.label)}</b>${unitSuffix(d.unit)} <span class="fine">${n} point${n === 1 ? '' : 's'}${failed ? `, ${failed} failed iteration${failed === 1 ? '' : 's'} not shown` : ''}${xAxis}</span></figcaption>
<div class="chart"><canvas id="${run.id}-dist-${d.metric}" data-kind="distribution" data-metric="${d.metric}" data-points="${n}" data-cells="${d.cells.length}" role="img" aria-label="${esc(`${d.label}: ${medians}`)}"></canvas></div>
</figure>`;
    })
    .join('\n');
}

function timelineFigures(run: ReportData['runs'][number]): string {
  const figs = run.results.iterations.map((it) => {
    const head = `<b class="s-${esc(it.strategy)}">${esc(cellOf(it).label)} #${it.repetition}</b> <span class="fine">iteration ${it.index + 1}, ${esc(it.source)} → ${esc(it.destination)}${it.ok ? '' : ', <span class="bad">failed</span>'}</span>`;
    if (!it.timeline) return `<figure class="timeline missing" data-iteration="${it.index}"><figcaption>${head}</figcaption><p class="fine">No timeline in this results.json (written before ping replies were kept).</p></figure>`;
    const gap = largestGap(it.timeline);
    const marks = it.timeline.marks;
    const at = (label: string, v: number | null | undefined) => (typeof v === 'number' ? `${label} ${formatNumber(v, 'ms')} ms` : '');
    const samples = it.timeline.samples?.length ?? 0;
    const facts = [
      gap ? `largest gap ${formatNumber(gap.ms, 'ms')} ms` : 'no gap (fewer than two replies)',
      at('mirror ready', marks.mirrorReady),
      at('RAM start', marks.ramStart),
      at('post-copy', marks.postcopyStart),
      at('completed', marks.completed),
      at('destination running', marks.destRunning),
      `${it.timeline.ping.length} replies`,
      samples ? `${samples} QMP samples` : '',
    ].filter(Boolean);
    return `<figure class="timeline" data-iteration="${it.index}">
<figcaption>${head}<br><span class="fine">${esc(facts.join(' · '))}</span></figcaption>
<div class="chart"><canvas id="${run.id}-timeline-${it.index}" data-kind="timeline" data-iteration="${it.index}" data-replies="${it.timeline.ping.length}" data-samples="${samples}" role="img" aria-label="${esc(`ping RTT${samples ? ' and RAM/disk remaining' : ''} over time, ${facts.join(', ')}`)}"></canvas></div>
</figure>`;
  });
  return figs.join('\n');
}

/** With matrix axes, one row of timelines per group (its cells side by side, in run order); otherwise as many as fit. */
function timelineColumns(results: Results): string {
  const gs = cellGroups(results);
  if (gs.length < 2) return '';
  const across = Math.max(...gs.map((g) => g.cells.length));
  return ` style="grid-template-columns: repeat(${across}, minmax(0, 1fr))"`;
}

function thresholdsBlock(results: Results): string {
  const checks = scenarioThresholdChecks(results);
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
  const hasSamples = r.iterations.some((i) => (i.timeline?.samples?.length ?? 0) > 0);
  const hasMark = (k: 'ramStart' | 'destRunning') => r.iterations.some((i) => typeof i.timeline?.marks[k] === 'number');
  return `<section class="run" id="${run.id}" data-run="${run.id}">
<h2>${several ? `${esc(r.scenario.name)} <span class="fine">${esc(run.path)}</span>` : `Scenario ${esc(r.scenario.name)}`}</h2>
${r.interrupted ? '<p class="banner">This run was interrupted: the figures cover the iterations that ran.</p>' : ''}
<table class="kv facts">${facts.map(([k, v]) => `<tr><th scope="row">${esc(k)}</th><td>${esc(v)}</td></tr>`).join('')}</table>
<h3>Summary per ${hasAxes(r) ? 'cell' : 'strategy'}</h3>
${summaryTable(r, run.id)}
${thresholdsBlock(r)}
<h3>Distributions</h3>
<p class="fine">Every successful repetition is a dot (spread sideways by repetition number); the bar across each cell is its median.</p>
<div class="grid dists">${distributionFigures(run)}</div>
<h3>Timelines</h3>
${
  hasTimelines
    ? `<p class="legend fine"><span class="sw rtt"></span>ping RTT (each reply a dot) <span class="sw gap"></span>largest gap between replies${
        hasSamples ? ' <span class="sw ram"></span>RAM remaining <span class="sw disk"></span>disk remaining (MiB, right axis; QMP every 50 ms)' : ''
      } <span class="sw line req"></span>migration requested (0 ms) <span class="sw line mirror"></span>disk mirror ready${hasMark('ramStart') ? ' <span class="sw line ramstart"></span>RAM start' : ''} <span class="sw line done"></span>completed${
        hasMark('destRunning') ? ' <span class="sw line dest"></span>destination running' : ''
      }</p>`
    : ''
}
<div class="grid timelines"${timelineColumns(r)}>${timelineFigures(run)}</div>
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
.timeline .chart { height: 240px; }
.timeline.missing { color: var(--muted); }
.legend .sw { display: inline-block; width: 14px; height: 10px; margin: 0 4px 0 12px; vertical-align: middle; }
.legend .sw:first-child { margin-left: 0; }
.sw.rtt { background: linear-gradient(90deg, var(--block) 50%, var(--shared) 50%); height: 4px; }
.sw.gap { background: rgba(224, 49, 49, 0.22); border: 1px solid rgba(224, 49, 49, 0.6); }
.sw.line { width: 0; height: 14px; border-left: 2px dashed; margin-right: 6px; }
.sw.req { border-left-style: solid; border-color: #343a40; }
.sw.mirror { border-color: #7048e8; }
.sw.done { border-color: #2b8a3e; }
.sw.ramstart { border-color: #0c8599; }
.sw.dest { border-color: #c2255c; }
.sw.ram { background: #0c8599; height: 3px; }
.sw.disk { background: #7048e8; height: 3px; }
.flag { color: #c92a2a; font-weight: 600; }
table.iterations tr.flagged td { background: #fff5f5; }
table.iterations tr.flags td { background: #fff5f5; color: #c92a2a; font-size: 12px; white-space: normal; border-top: none; }
tr.flags ul { margin: 2px 0 2px 18px; padding: 0; }
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
      var k = -1;
      (opts.lines || []).forEach(function (l) {
        if (l.at === null || l.at === undefined) return;
        var px = x.getPixelForValue(l.at);
        if (px < area.left || px > area.right) return;
        k++;
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
    var nCells = d.cells.length;
    d.cells.forEach(function (s, k) {
      var reps = s.points.map(function (p) { return p.repetition; });
      var lo = Math.min.apply(null, reps), hi = Math.max.apply(null, reps);
      var c = color(s.strategy, k);
      datasets.push({
        label: s.label,
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
          label: s.label + ' median',
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
            max: nCells - 0.5,
            grid: { display: false },
            afterBuildTicks: function (axis) { axis.ticks = d.cells.map(function (_s, k) { return { value: k }; }); },
            // a cell label on lines: the strategy, then the value of each axis (the caption names the axes)
            ticks: {
              callback: function (v) {
                var s = d.cells[v];
                return s ? s.label.split(', ').map(function (part) { var k = part.indexOf('='); return k < 0 ? part : part.slice(k + 1); }) : '';
              },
              font: { weight: '600' },
              maxRotation: 0,
              autoSkip: false,
            },
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
    var range = t.range || run.timelineRange || {};
    var MiB = 1024 * 1024;
    var samples = tl.samples || [];
    function series(field) {
      var pts = samples.map(function (s) { return { x: s.t, y: s[field] === null ? null : s[field] / MiB, phase: s.phase }; });
      return pts.some(function (p) { return p.y !== null; }) ? pts : null;
    }
    var remaining = [
      { label: 'RAM remaining', field: 'ramRemaining', color: '#0c8599' },
      { label: 'disk remaining', field: 'diskRemaining', color: '#7048e8' },
    ].map(function (r) { return { r: r, data: series(r.field) }; }).filter(function (x) { return x.data; });
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
        }].concat(remaining.map(function (x) {
          return {
            label: x.r.label,
            migralab: x.r.field,
            yAxisID: 'y2',
            data: x.data,
            showLine: true,
            spanGaps: false,
            borderColor: x.r.color,
            backgroundColor: x.r.color,
            borderWidth: 2,
            pointRadius: 0,
            pointHoverRadius: 3,
          };
        })),
      },
      options: {
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              label: function (item) {
                if (item.dataset.migralab !== 'rtt') return item.dataset.label + ' at ' + item.raw.x.toFixed(0) + ' ms (' + item.raw.phase + '): ' + item.raw.y.toFixed(1) + ' MiB';
                return 'icmp_seq ' + item.raw.seq + ' at ' + item.raw.x.toFixed(1) + ' ms: rtt ' + item.raw.y + ' ms';
              },
            },
          },
          migralabMarks: {
            gap: t.gap,
            lines: [
              { at: 0, label: 'request', color: '#343a40', dash: false },
              { at: tl.marks.mirrorReady, label: 'mirror ready', color: '#7048e8', dash: true },
              { at: tl.marks.ramStart, label: 'RAM start', color: '#0c8599', dash: true },
              { at: tl.marks.postcopyStart, label: 'post-copy', color: '#e67700', dash: true },
              { at: tl.marks.completed, label: 'completed', color: '#2b8a3e', dash: true },
              { at: tl.marks.destRunning, label: 'destination running', color: '#c2255c', dash: true },
            ],
          },
        },
        scales: {
          x: { type: 'linear', min: range.min, max: range.max, title: { display: true, text: 'ms after the migration request' } },
          y: { beginAtZero: true, title: { display: true, text: 'RTT (ms)' } },
          y2: {
            display: remaining.length > 0,
            position: 'right',
            beginAtZero: true,
            grid: { drawOnChartArea: false },
            title: { display: true, text: 'remaining (MiB)' },
          },
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
