import { formatBytes } from '../../../config/size.ts';
import { blockMinusShared, cellGroups, cellOf, groups, hasAxes, type GroupDifference } from '../../cells.ts';
import { DASH, formatNumber, formatPercent, integrityText, unitSuffix } from '../../format.ts';
import { metrics, statColumns, type MetricUnit } from '../../metrics.ts';
import type { IterationResult, Results } from '../../schema.ts';
import { scenarioThresholdChecks } from '../../thresholds.ts';
import { esc } from './escape.ts';
import { BOOTSTRAP_SEED, type ReportData } from './view.ts';

/** The tables of the HTML report, rendered here so that their figures are in the DOM. */

/** A number cell: the figure as text, exactly in data-value, and what it is in data-* attributes. */
export function numCell(value: number | null | undefined, unit: MetricUnit, attrs: Record<string, string>, signed = false): string {
  const a = Object.entries(attrs)
    .map(([k, v]) => ` data-${k}="${esc(v)}"`)
    .join('');
  const has = typeof value === 'number' && Number.isFinite(value);
  return `<td class="num"${a}${has ? ` data-value="${value}"` : ''}>${esc(formatNumber(value, unit, signed))}</td>`;
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

/** Per metric, every statistic of every cell (group by group, each group's cells in order), each group followed by its block − shared row. */
export function summaryTable(results: Results, runId: string): string {
  const per = groups(results);
  const diffs = blockMinusShared(results, BOOTSTRAP_SEED);
  const blocks = cellGroups(results);
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
          `<td class="num" data-metric="${m.key}" data-strategy="${esc(p.strategy)}" data-cell="${esc(p.label)}" data-stat="n" data-value="${s.n}">${s.n}${p.iterations.length !== s.n ? `<span class="of">/${p.iterations.length}</span>` : ''}</td>`,
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
    .map((p) => {
      const expected = p.iterations.filter((i) => !i.ok && i.expected?.met).length;
      const failed = p.failed - expected;
      return `<span class="count s-${esc(p.strategy)}"><b>${esc(p.label)}</b>: ${p.iterations.length} iteration${p.iterations.length === 1 ? '' : 's'}, ${failed} failed${expected ? `, ${expected} failed as expected` : ''}</span>`;
    })
    .join(' ');
  const ds = diffs.flatMap((g) => Object.values(g.diffs)).filter((d) => d !== undefined);
  const warnings = [...new Set(ds.flatMap((d) => (d.warning ? [d.warning] : [])))];
  const method = ds[0]
    ? ` block − shared: difference of the medians${diffs.length > 1 ? ' of the two cells of each group' : ''}, with a ${formatPercent(ds[0].level)} percentile bootstrap interval (${ds[0].resamples} resamples of each strategy, seed ${ds[0].seed}).`
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
export function overviewTable(runs: ReportData['runs']): string {
  const rows: string[] = [];
  for (const run of runs) {
    const per = groups(run.results);
    per.forEach((p, k) => {
      const cells = [
        k === 0 ? `<th scope="rowgroup" rowspan="${per.length}"><a href="#${run.id}">${esc(run.results.scenario.name)}</a><div class="fine">${esc(run.path)}</div></th>` : '',
        `<th scope="row" class="strategy s-${esc(p.strategy)}">${esc(p.label)}</th>`,
        `<td class="num">${p.ok.length}/${p.iterations.length}</td>`,
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
  const text = !has ? DASH : unit === 'bytes' ? formatBytes(v) : formatPercent(v, 1, true);
  const title = unit === 'ratio' && !has && it.link ? ' title="the link was not capped"' : '';
  return `<td class="num" data-iteration="${it.index}" data-field="${field}"${has ? ` data-value="${v}"` : ''}${title}>${esc(text)}</td>`;
}

function crossCheckCell(it: IterationResult): string {
  if (it.crossCheck === undefined) return `<td class="fine">${DASH}</td>`;
  const n = it.crossCheck.length;
  if (n === 0) return `<td data-iteration="${it.index}" data-field="crossCheck" data-value="0"><span class="ok" title="the network, hypervisor and guest views agree">agree</span></td>`;
  return `<td data-iteration="${it.index}" data-field="crossCheck" data-value="${n}"><span class="flag" title="${esc(it.crossCheck.join('\n'))}">⚠ ${n} contradiction${n === 1 ? '' : 's'}</span></td>`;
}

/** An iteration's status as a short label: ok, failed, or failed as its cell expects (a fault, a known hypervisor defect). */
export function statusBadge(it: IterationResult): string {
  if (it.ok) return it.fault ? '<span class="ok" title="completed despite the fault, as expected">ok (as expected)</span>' : '<span class="ok">ok</span>';
  if (it.expected?.met) {
    const what = it.knownIssue?.reproduced ? `known issue ${it.knownIssue.id}` : `failed as expected`;
    return `<span class="expected" title="${esc(it.error ?? '')}">${esc(what)}</span>`;
  }
  return `<span class="bad" title="${esc(it.error ?? '')}">${it.expected ? 'NOT as expected' : 'failed'}</span>`;
}

/** Iterations whose cell expects an end other than plain success: injected faults, hypervisors with a known defect run on purpose. */
export function expectedEndsBlock(results: Results): string {
  const its = results.iterations.filter((i) => i.expected);
  if (!its.length) return '';
  const ms = (v: number | null | undefined) => (typeof v === 'number' ? `${formatNumber(v, 'ms')} ms` : DASH);
  const rows = its.map((it) => {
    const what = it.fault ? `fault ${it.fault.kind} (${it.fault.during})` : it.knownIssue ? `known issue ${it.knownIssue.id}` : DASH;
    const at = it.fault ? (it.fault.injectedAtMs !== null ? ms(it.fault.injectedAtMs) : `never: ${it.fault.detail ?? 'its moment never came'}`) : DASH;
    const end = it.ok ? `completed in ${ms(it.durationMs)}` : it.failure ? `${it.failure.kind}, noticed after ${ms(it.failure.detectedAfterMs)}` : it.knownIssue?.evidence ? it.knownIssue.evidence : (it.error ?? 'failed');
    const intact = it.ok ? 'yes' : integrityText(it.verified);
    return `<tr data-iteration="${it.index}"><td class="num">${it.index + 1}</td><td class="strategy s-${esc(it.strategy)}">${esc(cellOf(it).label)}</td><td>${esc(what)}</td><td class="num">${esc(at)}</td><td>${esc(it.expected!.outcome)}</td><td>${esc(end)}</td><td>${it.guestOn ? `${esc(it.guestOn.node)} (${esc(it.guestOn.status)})` : DASH}</td><td>${esc(intact)}</td><td>${statusBadge(it)}</td></tr>`;
  });
  const met = its.filter((i) => i.expected!.met).length;
  const head = ['#', 'cell', 'fault / known issue', 'injected at', 'expected end', 'how it ended', 'guest on', 'disk, RAM', 'verdict'].map((h) => `<th scope="col">${h}</th>`).join('');
  const refs = [...new Map(its.filter((i) => i.knownIssue).map((i) => [i.knownIssue!.id, i.knownIssue!.reference])).entries()];
  return `<h3>Faults and known issues</h3>
<p class="counts"><b>${met} of ${its.length}</b> iteration${its.length === 1 ? '' : 's'} ended as ${its.length === 1 ? 'its cell expects' : 'their cells expect'}.</p>
<div class="scroll"><table class="iterations expected-ends"><thead><tr>${head}</tr></thead><tbody>${rows.join('\n')}</tbody></table></div>
<p class="fine">A fault's expected end: <i>completes</i> (ridden out) or <i>stays-on-source</i> (the migration fails, the guest keeps running on the source with its disk and RAM intact). <i>known-issue</i>: the hypervisor has a known defect and the scenario runs it on purpose (hypervisor.allowKnownIssues); the migration completes, or fails as that defect.${refs.map(([id, ref]) => ` ${esc(id)}: ${esc(ref)}.`).join('')}</p>`;
}

/** One row per iteration: status, the four metrics, every other figure some iteration has, the cross-check; then the notes, each once. */
export function iterationTable(results: Results): string {
  // a column no iteration has a figure for (an older results.json, no capped link) is left out
  const columns = iterationColumns.filter(([, , get]) => results.iterations.some((it) => typeof get(it) === 'number'));
  const withCrossCheck = results.iterations.some((it) => it.crossCheck !== undefined);
  const rows = results.iterations.map((it) => {
    const status = statusBadge(it);
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

/** The checks of the run's own scenario thresholds, if it declared any. */
export function thresholdsBlock(results: Results): string {
  const checks = scenarioThresholdChecks(results);
  if (!checks.length) return '';
  const rows = checks
    .map((c) => `<tr class="${c.held ? 'pass' : 'fail'}"><td>${c.held ? '<span class="ok">PASS</span>' : '<span class="bad">FAIL</span>'}</td><td>${esc(c.name)}</td><td>${esc(c.reason)}</td></tr>`)
    .join('');
  return `<h3>Thresholds</h3><table class="thresholds"><tbody>${rows}</tbody></table>`;
}

export function environmentBlock(results: Results): string {
  const rows = Object.entries(results.environment)
    .map(([k, v]) => `<tr><th scope="row">${esc(k)}</th><td data-env="${esc(k)}">${esc(String(v))}</td></tr>`)
    .join('');
  return `<table class="kv environment">${rows}</table>`;
}
