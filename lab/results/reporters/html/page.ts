import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { cellGroups, cellOf, hasAxes } from '../../cells.ts';
import { DASH, formatNumber, unitSuffix } from '../../format.ts';
import { loadResults } from '../../load.ts';
import type { Results } from '../../schema.ts';
import { fileReporter } from '../reporter.ts';
import { esc, jsonForScript, scriptText } from './escape.ts';
import { environmentBlock, expectedEndsBlock, iterationTable, overviewTable, statusBadge, summaryTable, thresholdsBlock } from './tables.ts';
import { largestGap, reportData, type ReportData, type ReportRun } from './view.ts';
import { drainsBlock } from './drains.ts';

/**
 * The HTML report: one self-contained file that opens offline. Tables (summary
 * statistics per matrix cell, iterations, environment, scenario as run) are rendered
 * on the server (tables.ts), so their figures are in the DOM; the charts are drawn in
 * the page by Chart.js, whose UMD build is inlined from the npm package, and page.js,
 * inlined the same way, from the data embedded as JSON (view.ts). A
 * Content-Security-Policy forbids every fetch, so the page cannot reach the network
 * even by mistake. A matrix cell is a strategy and one value of every axis of the
 * scenario (without axes, a cell is a strategy); block − shared compares the two cells
 * of each group of cells that differ only by strategy.
 */

/** The Chart.js UMD build shipped in the npm package (its `exports` map hides dist/, so resolve the package and look next to it). */
export function chartJsSource(): string {
  const main = createRequire(import.meta.url).resolve('chart.js');
  return readFileSync(join(dirname(main), 'chart.umd.min.js'), 'utf8');
}

/** page.js (the drawing code, plain browser JavaScript) or page.css, next to this module: read when a page is rendered. */
function pageAsset(file: 'page.js' | 'page.css'): string {
  return readFileSync(new URL(file, import.meta.url), 'utf8');
}

function distributionFigures(run: ReportData['runs'][number]): string {
  return run.distributions
    .map((d) => {
      const n = d.cells.reduce((a, s) => a + s.points.length, 0);
      const failed = d.cells.reduce((a, s) => a + s.failed, 0);
      const asExpected = d.cells.reduce((a, s) => a + s.failedAsExpected, 0);
      const left = [failed ? `${failed} failed iteration${failed === 1 ? '' : 's'}` : '', asExpected ? `${asExpected} that failed as expected` : ''].filter(Boolean);
      const medians = d.cells.map((s) => `${s.label} median ${formatNumber(s.median, d.unit)}${d.unit === 'ms' ? ' ms' : ''}`).join('; ');
      const axes = [...new Set(d.cells.flatMap((c) => (c.group ? c.group.split(', ').map((part) => part.split('=')[0]!) : [])))];
      const xAxis = axes.length ? `, under each cell: strategy, ${axes.map(esc).join(', ')}` : '';
      return `<figure class="dist" data-metric="${d.metric}">
<figcaption><b>${esc(d.label)}</b>${unitSuffix(d.unit)} <span class="fine">${n} point${n === 1 ? '' : 's'}${left.length ? `, ${left.join(' and ')} not shown` : ''}${xAxis}</span></figcaption>
<div class="chart"><canvas id="${run.id}-dist-${d.metric}" data-kind="distribution" data-metric="${d.metric}" data-points="${n}" data-cells="${d.cells.length}" role="img" aria-label="${esc(`${d.label}: ${medians}`)}"></canvas></div>
</figure>`;
    })
    .join('\n');
}

function timelineFigures(run: ReportData['runs'][number]): string {
  const figs = run.results.iterations.map((it) => {
    const head = `<b class="s-${esc(it.strategy)}">${esc(cellOf(it).label)} #${it.repetition}</b> <span class="fine">iteration ${it.index + 1}, ${esc(it.source)} → ${esc(it.destination)}${it.ok ? '' : `, ${statusBadge(it)}`}</span>`;
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
      it.nova ? `nova migration ${it.nova.migrationId ?? '?'}: ${it.nova.phases.map((p) => `${p.status} at ${formatNumber(p.atMs, 'ms')} ms`).join(', ') || 'no phase seen'}${it.nova.apiToActiveMs !== null ? `, ACTIVE on ${it.destination} at ${formatNumber(it.nova.apiToActiveMs, 'ms')} ms` : ''}` : '',
      `${it.timeline.ping.length} replies`,
      samples ? `${samples} ${it.driver === 'libvirt' || it.driver === 'nova' ? 'libvirt' : 'QMP'} samples` : '',
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

/** One run: its facts, summary, thresholds, distributions, timelines, iterations, environment and scenario. */
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
${expectedEndsBlock(r)}
${drainsBlock(r)}
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
<style>\n${pageAsset('page.css')}</style>
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
<script>\n${scriptText(pageAsset('page.js'))}</script>
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

/** report.html of one run, next to its results.json (`migralab report` writes one page for several). */
export const htmlReporter = fileReporter('html', 'report.html', (results, _checks, dir) => renderHtml([{ path: dir, results }]));
