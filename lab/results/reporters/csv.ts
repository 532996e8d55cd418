import type { IterationResult, Results } from '../schema.ts';
import { cellOf } from '../cells.ts';
import { fileReporter } from './reporter.ts';

/**
 * CSV export: RFC 4180, one header row then one row per iteration, in the order of
 * results.json. Lines end with CRLF (the RFC's line break, what spreadsheets expect),
 * the last row included. A field is quoted when it holds a comma, a double quote, CR
 * or LF; quotes inside are doubled. null/undefined give an empty field; numbers are
 * written as results.json holds them (JavaScript's shortest round-trip form, the same
 * text JSON.stringify writes), never rounded; booleans as `true`/`false`. A figure
 * that results.json does not hold (an older file without phases, link, guest or harness
 * views) is an empty field. `cell` is the matrix cell's label, the strategy for a run
 * without matrix axes; lists (notes, crossCheck) are joined with "; ".
 */

type Cell = string | number | boolean | null | undefined;

export const csvColumns: ReadonlyArray<readonly [header: string, get: (i: IterationResult) => Cell]> = [
  ['index', (i) => i.index],
  ['strategy', (i) => i.strategy],
  ['cell', (i) => cellOf(i).label],
  ['drain.id', (i) => i.drain?.id],
  ['drain.guest', (i) => i.drain?.guest],
  ['repetition', (i) => i.repetition],
  ['source', (i) => i.source],
  ['destination', (i) => i.destination],
  ['ok', (i) => i.ok],
  ['error', (i) => i.error],
  ['durationMs', (i) => i.durationMs],
  ['prepareMs', (i) => i.prepareMs],
  ['mirrorMs', (i) => i.mirrorMs],
  ['qemu.totalTimeMs', (i) => i.qemu.totalTimeMs],
  ['qemu.downtimeMs', (i) => i.qemu.downtimeMs],
  ['qemu.setupTimeMs', (i) => i.qemu.setupTimeMs],
  ['qemu.ramBytes', (i) => i.qemu.ramBytes],
  ['qemu.diskBytes', (i) => i.qemu.diskBytes],
  ['ping.intervalMs', (i) => i.ping.intervalMs],
  ['ping.sent', (i) => i.ping.sent],
  ['ping.received', (i) => i.ping.received],
  ['ping.lost', (i) => i.ping.lost],
  ['ping.maxGapMs', (i) => i.ping.maxGapMs],
  ['ping.maxRttMs', (i) => i.ping.maxRttMs],
  ['ping.medianGapMs', (i) => i.ping.medianGapMs],
  ['phases.mirrorMs', (i) => i.phases?.mirrorMs],
  ['phases.precopyMs', (i) => i.phases?.precopyMs],
  ['phases.ramIterations', (i) => i.phases?.ramIterations],
  ['phases.switchoverMs', (i) => i.phases?.switchoverMs],
  ['phases.resumeMs', (i) => i.phases?.resumeMs],
  ['link.rateBitsPerSec', (i) => i.link?.rateBitsPerSec],
  ['link.wireBytes', (i) => i.link?.wireBytes],
  ['link.efficiency', (i) => i.link?.efficiency],
  ['guest.clockLossMs', (i) => i.guest?.clockLossMs],
  ['guest.probeMaxGapMs', (i) => i.guest?.probeMaxGapMs],
  ['harness.cpuMs', (i) => i.harness?.cpuMs],
  ['harness.pingCpuMs', (i) => i.harness?.pingCpuMs],
  ['verified.onDestination', (i) => i.verified.onDestination],
  ['verified.sourceGone', (i) => i.verified.sourceGone],
  ['verified.diskIntact', (i) => i.verified.diskIntact],
  ['verified.answersPing', (i) => i.verified.answersPing],
  ['notes', (i) => i.notes.join('; ')],
  ['crossCheck', (i) => i.crossCheck?.join('; ')],
];

export const CSV_EOL = '\r\n';

/** One RFC 4180 field. */
export function csvField(v: Cell): string {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'number' ? (Number.isFinite(v) ? String(v) : '') : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

export function toCsv(results: Results): string {
  const rows = [csvColumns.map(([h]) => csvField(h))];
  for (const it of results.iterations) rows.push(csvColumns.map(([, get]) => csvField(get(it))));
  return rows.map((r) => r.join(',') + CSV_EOL).join('');
}

/** results.csv next to results.json. */
export const csvReporter = fileReporter('csv', 'results.csv', (results) => toCsv(results));
