import type { Results } from '../schema.ts';
import { median, type DiffInterval } from '../../measure/stats.ts';
import type { ThresholdCheck } from '../thresholds.ts';
import { blockMinusShared, cellOf, groups, hasAxes, statsOf, type Differences } from '../cells.ts';
import { DASH, formatNumber, formatPercent, unitSuffix } from '../format.ts';
import { harnessMetrics, metrics, phaseMetrics, pingCpuShare, statColumns, type MetricUnit } from '../metrics.ts';
import { fileReporter } from './reporter.ts';
import { summarizeDrains } from '../drains.ts';

/**
 * Markdown summary for a CI job summary (`$GITHUB_STEP_SUMMARY`, GitHub-flavoured
 * Markdown): title, iteration counts, one statistics table (metric × matrix cell; a
 * cell is a strategy without matrix axes), block − shared differences of medians with
 * their bootstrap intervals per group of cells that differ only by strategy, the phases
 * and the harness's CPU per cell (medians), iterations whose views contradict each
 * other, thresholds, failed iterations, environment. Statistics are over successful
 * iterations, as everywhere else. Milliseconds are shown with one decimal, counts as
 * whole numbers (one decimal when a statistic of counts is not whole); a statistic that
 * is not defined (no values, sd of one value) is `–`, never 0.
 */

/**
 * Text from the run (errors, notes, names, reasons) made inert: HTML and Markdown
 * punctuation escaped, line breaks folded to spaces (a table cell is one line),
 * control characters replaced.
 */
export function mdText(s: string): string {
  return s
    .replace(/\r\n|[\r\n]/g, ' ')
    .replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, '\uFFFD')
    .replace(/[\\`*_[\]|~#!]/g, (c) => `\\${c}`)
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;');
}


function table(head: string[], rows: string[][], align: ('l' | 'r')[]): string[] {
  return [`| ${head.join(' | ')} |`, `|${align.map((a) => (a === 'r' ? ' ---: ' : ' --- ')).join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)];
}

function differenceRow(label: string, unit: MetricUnit, d: DiffInterval | undefined): string[] {
  if (!d) return [label, DASH, DASH];
  return [label, formatNumber(d.diff, unit, true), `[${formatNumber(d.low, unit, true)}, ${formatNumber(d.high, unit, true)}]`];
}

/** The same warning for several metrics, said once: `> ⚠️ duration, lost pings: …`. */
function warningLines(d: Differences): string[] {
  const warnings = new Map<string, string[]>();
  for (const m of metrics) {
    const w = d[m.key]?.warning;
    if (w) warnings.set(w, [...(warnings.get(w) ?? []), m.label]);
  }
  return [...warnings].flatMap(([w, labels]) => [`> ⚠️ ${labels.join(', ')}: ${mdText(w)}`, '']);
}

const percentText = (v: number | undefined) => (v === undefined ? DASH : formatPercent(v));

export function toMarkdown(results: Results, checks: ThresholdCheck[] = []): string {
  const cells = groups(results);
  const cellWord = hasAxes(results) ? 'cell' : 'strategy';
  // A failure its cell expects (a fault, a known hypervisor defect run on purpose) is listed, not counted against the run.
  const failedIts = results.iterations.filter((i) => !i.ok && !i.expected?.met);
  const expectedIts = results.iterations.filter((i) => !i.ok && i.expected?.met);
  const broken = checks.filter((c) => !c.held);
  const out: string[] = [];

  const verdict = failedIts.length > 0 || broken.length > 0 ? '❌' : results.interrupted ? '⚠️' : '✅';
  out.push(`# ${verdict} migralab: ${mdText(results.scenario.name)}`, '');
  if (results.interrupted)
    out.push('> [!WARNING]', '> **Interrupted**: the run was stopped before every iteration had run; the figures cover only the iterations that did.', '');
  out.push(`Scenario file ${mdText(results.scenario.file)}, started ${mdText(results.startedAt)}${results.finishedAt ? `, finished ${mdText(results.finishedAt)}` : ''}.`, '');
  out.push(
    cells.length === 0
      ? 'No iterations.'
      : cells.map((c) => `**${mdText(c.label)}**: ${c.ok.length}/${c.iterations.length} iterations succeeded`).join(' · '),
    '',
  );

  // statistics
  out.push('## Statistics', '');
  const statRows: string[][] = [];
  for (const m of metrics)
    for (const c of cells) {
      const s = c.stats[m.key];
      statRows.push([`${m.label}${unitSuffix(m.unit)}`, mdText(c.label), ...statColumns.map((col) => formatNumber(s[col], m.unit)), String(s.n)]);
    }
  out.push(...table(['metric', cellWord, ...statColumns, 'n'], statRows, ['l', 'l', ...statColumns.map(() => 'r' as const), 'r']), '');
  out.push(`Over successful iterations; p90/p95 interpolate linearly, sd is the sample standard deviation; ${DASH} where a statistic is undefined.`, '');

  // block − shared, per group of cells that differ only by strategy
  const diffs = blockMinusShared(results);
  if (diffs.length > 0) {
    const sample = diffs.flatMap((g) => Object.values(g.diffs)).find((d) => d !== undefined);
    const level = formatPercent(sample?.level ?? 0.95, 1);
    out.push('## block − shared', '');
    for (const g of diffs) {
      if (g.group) out.push(`### ${mdText(g.group)}`, '', `${mdText(g.block)} − ${mdText(g.shared)}:`, '');
      out.push(...table(['metric', 'block − shared (median)', `${level} interval`], metrics.map((m) => differenceRow(`${m.label}${unitSuffix(m.unit)}`, m.unit, g.diffs[m.key])), ['l', 'r', 'r']), '');
      if (!Object.values(g.diffs).some((d) => d !== undefined)) out.push('Nothing to compare: a strategy has no successful iteration.', '');
      out.push(...warningLines(g.diffs));
    }
    if (sample) out.push(`Difference of medians; percentile bootstrap interval from ${sample.resamples} resamples (seed ${sample.seed}). Positive: block is higher.`, '');
  }

  // drains
  if (results.drains?.length) {
    const ds = summarizeDrains(results.drains);
    const d0 = results.drains[0]!;
    out.push('## Drains', '');
    const f = (d: { median?: number }, k = 1) => (d.median === undefined ? DASH : formatNumber(d.median / k, 'ms'));
    const rows = ds.map((d) => [`${d.strategy}${new Set(ds.map((x) => x.driver)).size > 1 ? `, driver=${d.driver}` : ''}`, String(d.concurrency), `${d.drains - d.failed}/${d.drains}`, f(d.totalMs), f(d.worstGapMs), d.wireBytes.median === undefined ? DASH : (d.wireBytes.median / 2 ** 20).toFixed(1)]);
    out.push(...table(['strategy', 'concurrency', 'ok/drains', 'drain time (ms)', 'worst ping gap (ms)', 'MiB sent'], rows, ['l', 'r', 'r', 'r', 'r', 'r']), '');
    out.push(`${d0.guests} guests leave ${mdText(d0.from)}, N at a time. Medians over the drains whose every migration succeeded. Drain time: from the first migration's request to the last one's end.`, '');
  }

  // phases
  const withPhases = cells.filter((g) => g.ok.some((i) => i.phases));
  if (withPhases.length > 0) {
    out.push('## Phases', '');
    const rows = withPhases.map((g) => {
      const s = statsOf(g.ok, phaseMetrics);
      return [mdText(g.label), ...phaseMetrics.map((m) => formatNumber(s[m.key].median, m.unit)), String(g.ok.filter((i) => i.phases).length)];
    });
    out.push(...table([cellWord, ...phaseMetrics.map((m) => `${m.label}${unitSuffix(m.unit)}`), 'n'], rows, ['l', ...phaseMetrics.map(() => 'r' as const), 'r']), '');
    out.push('Medians over successful iterations. Mirror: until every disk mirror was ready (block only); pre-copy: the RAM passes while the guest ran; switchover: the guest stopped on the source; resume: from the source\'s completion until the destination ran.', '');
  }

  // harness cost
  const withHarness = cells.filter((g) => g.ok.some((i) => i.harness));
  if (withHarness.length > 0) {
    out.push('## Harness CPU', '');
    const rows = withHarness.map((g) => {
      const s = statsOf(g.ok, harnessMetrics);
      return [mdText(g.label), ...harnessMetrics.map((m) => formatNumber(s[m.key].median, m.unit)), percentText(median(g.ok.map(pingCpuShare))), String(g.ok.filter((i) => i.harness).length)];
    });
    out.push(...table([cellWord, ...harnessMetrics.map((m) => `${m.label}${unitSuffix(m.unit)}`), 'ping CPU / window', 'n'], rows, ['l', ...harnessMetrics.map(() => 'r' as const), 'r', 'r']), '');
    out.push('Medians over successful iterations: CPU time of the harness from the request to completion, and of ping over its window (the share of one core).', '');
  }

  // cross-checks
  const checked = results.iterations.filter((i) => i.crossCheck !== undefined);
  if (checked.length > 0) {
    const flagged = checked.filter((i) => i.crossCheck!.length > 0);
    out.push(`## Cross-checks${flagged.length > 0 ? ` (${flagged.length})` : ''}`, '');
    if (flagged.length === 0)
      out.push(`The network, hypervisor and guest views agree in all ${checked.length} iteration${checked.length === 1 ? '' : 's'} checked.`, '');
    else {
      for (const i of flagged)
        out.push(`- ⚠️ **${mdText(cellOf(i).label)} #${i.repetition}** ${mdText(i.source)} → ${mdText(i.destination)}: ${i.crossCheck!.map(mdText).join('; ')}`);
      out.push('', `${flagged.length} of ${checked.length} iterations have views that contradict each other: read their figures with care.`, '');
    }
  }

  // thresholds
  if (checks.length > 0) {
    out.push('## Thresholds', '');
    for (const c of checks) out.push(`- ${c.held ? '✅' : '❌'} ${mdText(c.name)}: ${mdText(c.reason)}`);
    out.push('', broken.length === 0 ? `All ${checks.length} thresholds held.` : `${broken.length} of ${checks.length} thresholds broken.`, '');
  }

  // failures
  if (failedIts.length > 0) {
    out.push(`## Failed iterations (${failedIts.length})`, '');
    for (const i of failedIts) {
      const where = i.guestOn ? ` (guest on ${mdText(i.guestOn.node)}, ${mdText(i.guestOn.status)})` : '';
      const notes = i.notes.length > 0 ? ` — notes: ${i.notes.map(mdText).join('; ')}` : '';
      out.push(`- ❌ **${mdText(cellOf(i).label)} #${i.repetition}** ${mdText(i.source)} → ${mdText(i.destination)}: ${mdText(i.error ?? 'failed')}${where}${notes}`);
    }
    out.push('');
  }

  if (expectedIts.length > 0) {
    out.push(`## Failed as expected (${expectedIts.length})`, '');
    for (const i of expectedIts) {
      const what = i.fault ? `fault ${mdText(i.fault.kind)}` : i.knownIssue ? `known issue ${mdText(i.knownIssue.id)}` : 'expected';
      const where = i.guestOn ? ` (guest on ${mdText(i.guestOn.node)}, ${mdText(i.guestOn.status)})` : '';
      out.push(`- ☑️ **${mdText(cellOf(i).label)} #${i.repetition}** ${mdText(i.source)} → ${mdText(i.destination)}, ${what}, expected ${mdText(i.expected!.outcome)}: ${mdText(i.knownIssue?.evidence ?? i.error ?? 'failed')}${where}`);
    }
    out.push('');
  }

  // environment
  const env = results.environment;
  out.push('## Environment', '');
  out.push(
    ...table(
      ['', ''],
      [
        ['accelerator', `${mdText(env.accelerator)} (${mdText(env.acceleratorReason)})`],
        ['QEMU', mdText(env.qemuVersion)],
        ['kernel', mdText(env.kernel)],
        ['CPU', `${env.cpus}× ${mdText(env.cpuModel)}`],
        ['NFS', `${mdText(env.nfsServer)} server, ${mdText(env.nfsClient)} client (${mdText(env.nfsClientReason)})`],
        ['Node.js', mdText(env.node)],
        ['migralab', mdText(env.migralab)],
        ['interrupted', results.interrupted ? 'yes' : 'no'],
      ],
      ['l', 'l'],
    ),
  );
  return out.join('\n') + '\n';
}

/** summary.md next to results.json (what a CI job appends to its step summary). */
export const markdownReporter = fileReporter('markdown', 'summary.md', (results, checks) => toMarkdown(results, checks));
