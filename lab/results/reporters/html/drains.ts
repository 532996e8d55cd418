/**
 * The HTML report's drains (placement { drain: NODE }): drain time per strategy and
 * concurrency, and each drain's migrations on one timeline, drawn as inline SVG on the
 * server (every figure is in the DOM; nothing to fetch).
 */
import { summarizeDrains } from '../../drains.ts';
import { formatNumber } from '../../format.ts';
import type { DrainRecord, Results } from '../../schema.ts';
import { esc } from './escape.ts';

const ms = (v: number | null | undefined) => (typeof v === 'number' ? formatNumber(v, 'ms') : '—');
const mib = (b: number | null | undefined) => (typeof b === 'number' ? (b / 2 ** 20).toFixed(1) : '—');

/** One drain's migrations as bars from their request to their end, on the drain's own time axis. */
export function drainTimeline(d: DrainRecord): string {
  const rowH = 18;
  const left = 170;
  const width = 640;
  const end = Math.max(1, ...d.migrations.map((m) => m.endMs ?? 0));
  const x = (t: number) => left + (t / end) * (width - left - 10);
  const rows = d.migrations.map((m, i) => {
    const y = 8 + i * rowH;
    const label = `<text x="4" y="${y + 12}" font-size="11">${esc(m.guest)} → ${esc(m.destination)}</text>`;
    if (m.startMs === null || m.endMs === null) return `${label}<text x="${left}" y="${y + 12}" font-size="11">did not migrate</text>`;
    const w = Math.max(1, x(m.endMs) - x(m.startMs));
    return `${label}<rect class="drain-bar s-${esc(d.strategy)}${m.ok ? '' : ' failed'}" x="${x(m.startMs).toFixed(1)}" y="${y + 2}" width="${w.toFixed(1)}" height="${rowH - 6}" data-start-ms="${m.startMs.toFixed(1)}" data-end-ms="${m.endMs.toFixed(1)}"><title>${esc(`${m.guest}: ${ms(m.startMs)} to ${ms(m.endMs)} ms${m.maxGapMs !== null ? `, largest ping gap ${ms(m.maxGapMs)} ms` : ''}${m.ok ? '' : ', failed'}`)}</title></rect>`;
  });
  const h = 8 + d.migrations.length * rowH + 18;
  const axis = `<line x1="${left}" y1="${h - 16}" x2="${width - 10}" y2="${h - 16}" stroke="currentColor" stroke-width="0.5"/><text x="${left}" y="${h - 3}" font-size="10">0</text><text x="${width - 10}" y="${h - 3}" font-size="10" text-anchor="end">${ms(end)} ms</text>`;
  return `<svg class="drain-timeline" data-drain="${d.id}" viewBox="0 0 ${width} ${h}" width="${width}" height="${h}" role="img" aria-label="${esc(`drain ${d.id}: ${d.guests} guests leave ${d.from}, ${d.concurrency} at a time, in ${ms(d.totalMs)} ms; at most ${d.maxOverlap} at once`)}">${rows.join('')}${axis}</svg>`;
}

/** The drains section, or '' for a run without drains. */
export function drainsBlock(results: Results): string {
  const drains = results.drains ?? [];
  if (!drains.length) return '';
  const sum = summarizeDrains(drains);
  const manyDrivers = new Set(sum.map((d) => d.driver)).size > 1;
  const cell = (d: { median?: number; min?: number; max?: number; n: number }, f: (v: number) => string) => (d.n === 0 || d.median === undefined ? '—' : `${f(d.median)} <span class="fine">(${f(d.min!)}..${f(d.max!)})</span>`);
  const rows = sum
    .map(
      (d) =>
        `<tr data-strategy="${d.strategy}" data-concurrency="${d.concurrency}"><td class="strategy s-${d.strategy}">${d.strategy}${manyDrivers ? `, driver=${esc(d.driver)}` : ''}</td><td class="num">${d.concurrency}</td><td class="num">${d.drains - d.failed}/${d.drains}</td><td class="num drain-time">${cell(d.totalMs, (v) => ms(v))}</td><td class="num">${cell(d.worstGapMs, (v) => ms(v))}</td><td class="num">${cell(d.wireBytes, (v) => mib(v))}</td></tr>`,
    )
    .join('\n');
  const figs = drains
    .map(
      (d) => `<figure class="drain" data-drain="${d.id}"><figcaption><b class="s-${d.strategy}">drain ${d.id}: ${esc(d.cell)} #${d.repetition}</b> <span class="fine">${d.guests} guests leave ${esc(d.from)} in ${ms(d.totalMs)} ms, at most ${d.maxOverlap} at once, ${mib(d.wireBytes)} MiB sent${d.ok ? '' : ', <b class="bad">a migration failed</b>'}</span></figcaption>${drainTimeline(d)}</figure>`,
    )
    .join('\n');
  return `<h3>Drains</h3>
<p class="fine">Each drain: ${drains[0]!.guests} guests boot on ${esc(drains[0]!.from)}, are prepared, then leave it N at a time (the next starting as one ends). Drain time: from the first migration's request to the last one's end. MiB sent: what ${esc(drains[0]!.from)} sent over the drain, every migration together. Each migration's own figures and proofs are in the iterations below.</p>
<table class="drains"><thead><tr><th>strategy</th><th>concurrency</th><th>ok/drains</th><th>drain time ms</th><th>worst ping gap ms</th><th>MiB sent</th></tr></thead><tbody>
${rows}
</tbody></table>
<div class="grid drains">${figs}</div>`;
}
