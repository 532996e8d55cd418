import cliProgress from 'cli-progress';
import { formatBytes } from '../../config/size.ts';
import { summarize } from '../cells.ts';
import { summarizeDrains } from '../drains.ts';
import { consoleStyle, formatNumber, formatPercent, integrityText } from '../format.ts';
import type { MetricUnit } from '../metrics.ts';
import type { DrainSummary, IterationResult, Results, StrategySummary } from '../schema.ts';
import type { Reporter } from './reporter.ts';

type Out = (line: string) => void;

export interface ConsoleOptions {
  tty: boolean;
  /** Where lines go (default: stderr). */
  out?: Out;
  quiet?: boolean;
}

/**
 * Console reporter: cli-progress bars for the disk mirror and the RAM copy on a TTY,
 * plain step lines otherwise (CI logs, pipes).
 */
export function consoleReporter(opts: ConsoleOptions): Reporter & { close(): void } {
  const out: Out = opts.out ?? ((l) => process.stderr.write(l + '\n'));
  let bars: cliProgress.MultiBar | undefined;
  let mirror: cliProgress.SingleBar | undefined;
  let ram: cliProgress.SingleBar | undefined;
  let lastPhase: string | undefined;
  const stopBars = () => {
    bars?.stop();
    bars = mirror = ram = undefined;
  };
  const MiB = 1024 ** 2;
  return {
    name: 'console',
    step(msg) {
      if (!opts.quiet) (bars ? bars.log(msg + '\n') : out(msg));
    },
    iterationStart(it) {
      lastPhase = undefined;
      const head = `[${it.index + 1}/${it.total}] ${it.cell} #${it.repetition}: ${it.guest ? `${it.guest} ` : ''}${it.source} -> ${it.destination}`;
      // a drain's migrations run several at once: lines, no bars
      if (it.guest) {
        if (!opts.quiet) out(head);
      } else if (opts.tty) {
        bars = new cliProgress.MultiBar(
          { format: '  {phase} [{bar}] {percentage}% {value}/{total} MiB', hideCursor: true, clearOnComplete: false, stream: process.stderr },
          cliProgress.Presets.shades_classic,
        );
        bars.log(head + '\n');
      } else if (!opts.quiet) out(head);
    },
    progress(p) {
      const done = Math.round(p.done / MiB);
      const total = Math.max(1, Math.round(p.total / MiB));
      if (bars) {
        const label = p.phase === 'mirror' ? 'disk mirror' : 'RAM copy   ';
        const bar = p.phase === 'mirror' ? (mirror ??= bars.create(total, 0, { phase: label })) : (ram ??= bars.create(total, 0, { phase: label }));
        bar.setTotal(total);
        bar.update(done, { phase: label });
      } else if (!opts.quiet && p.phase !== lastPhase) {
        out(`  ${p.phase === 'mirror' ? 'disk mirror' : 'RAM copy'} started (${formatBytes(p.total)})`);
      }
      lastPhase = p.phase;
    },
    iterationEnd(r) {
      stopBars();
      if (!opts.quiet) out(`  ${r.drain ? `${r.drain.guest}: ` : ''}${iterationLine(r)}`);
    },
    close: stopBars,
  };
}

const ms = (v: number | null | undefined) => formatNumber(v, 'ms', false, { ...consoleStyle, fine: true });

export function iterationLine(r: IterationResult): string {
  if (r.fault) return faultLine(r);
  if (!r.ok && r.knownIssue?.reproduced) return `known issue ${r.knownIssue.id} reproduced, as this cell allows: ${r.knownIssue.evidence}${r.guestOn ? ` (guest on ${r.guestOn.node}, ${r.guestOn.status})` : ''}`;
  if (!r.ok) return `FAILED: ${r.error}${r.guestOn ? ` (guest on ${r.guestOn.node}, ${r.guestOn.status})` : ''}`;
  const parts = [
    `ok in ${ms(r.durationMs)}`,
    `qemu downtime ${ms(r.qemu.downtimeMs)}`,
    `ping gap ${ms(r.ping.maxGapMs)} (${r.ping.lost}/${r.ping.sent} lost)`,
  ];
  if (r.guest?.clockLossMs != null) parts.push(`guest lost ${ms(r.guest.clockLossMs)}`);
  if (r.nova) parts.push(`nova migration ${r.nova.migrationId ?? '?'}: ${r.nova.phases.map((p) => `${p.status} at ${ms(p.atMs)}`).join(', ') || 'no phase seen'}; libvirt's job ${ms(r.libvirt?.timeElapsedMs)} of it`);
  parts.push(`RAM ${formatBytes(r.qemu.ramBytes ?? 0)}`, `disk ${formatBytes(r.qemu.diskBytes ?? 0)}`);
  if (r.link?.efficiency != null) parts.push(`link efficiency ${formatPercent(r.link.efficiency)}`);
  const flags = (r.crossCheck ?? []).map((f) => `\n    ! ${f}`).join('');
  return parts.join(', ') + flags;
}

/** A faulted iteration: when the fault came, how the migration ended, where the guest is, and whether that was the expected end. */
function faultLine(r: IterationResult): string {
  const f = r.fault!;
  const at = f.injectedAtMs !== null ? `at ${ms(f.injectedAtMs)}` : 'never injected';
  const end = r.ok
    ? `completed in ${ms(r.durationMs)}, ping gap ${ms(r.ping.maxGapMs)}`
    : r.failure
      ? `failed: ${r.failure.kind}${r.failure.detectedAfterMs !== null ? ` after ${ms(r.failure.detectedAfterMs)}` : ''}`
      : `not migrated`;
  const where = r.guestOn ? `, guest on ${r.guestOn.node} (${r.guestOn.status})` : '';
  const intact = r.failure ? `, ${integrityText(r.verified)}` : '';
  const verdict = r.expected?.met ? 'as expected' : `NOT as expected (${r.expected?.outcome ?? '?'}): ${r.error ?? r.notes.at(-1) ?? ''}`;
  return `fault ${f.kind} ${at}: ${end}${where}${intact}; ${verdict}`;
}

function cell(d: StrategySummary['durationMs'], unit: MetricUnit): string {
  if (d.n === 0 || d.median === undefined) return '-';
  const f = (v: number | undefined) => formatNumber(v, unit, false, { dash: '-' });
  return `${f(d.median)} (${f(d.min)}..${f(d.max)})`;
}

/** Iterations by their cell's label, in run order. */
function byCellLabel(its: readonly IterationResult[]): Map<string, IterationResult[]> {
  const m = new Map<string, IterationResult[]>();
  for (const i of its) m.set(i.cell?.label ?? i.strategy, [...(m.get(i.cell?.label ?? i.strategy) ?? []), i]);
  return m;
}

/**
 * With one axis (and no fault cells): what each of its values costs against the first, per
 * strategy, as ratios of the medians ("security.tls psk/none, block: duration 1.75x").
 */
export function oneAxisRatios(cells: readonly StrategySummary[]): string[] {
  const parts = cells.map((c) => (c.group && !c.group.includes(', ') ? c.group.split('=') : undefined));
  if (!parts.length || parts.some((p) => !p || p.length !== 2)) return [];
  const keys = new Set(parts.map((p) => p![0]));
  if (keys.size !== 1) return [];
  const key = [...keys][0]!;
  const values = [...new Set(parts.map((p) => p![1]!))];
  if (values.length < 2) return [];
  const fr = (a?: number, b?: number) => (a === undefined || b === undefined || b === 0 ? '-' : `${(a / b).toFixed(2)}x`);
  const out: string[] = [];
  for (const strategy of [...new Set(cells.map((c) => c.strategy))]) {
    const at = (v: string) => cells.find((c) => c.strategy === strategy && c.group === `${key}=${v}`);
    const base = at(values[0]!);
    for (const v of values.slice(1)) {
      const c = at(v);
      if (!c || !base) continue;
      out.push(`${key} ${v}/${values[0]} (ratio of medians), ${strategy}: duration ${fr(c.durationMs.median, base.durationMs.median)}, qemu downtime ${fr(c.downtimeMs.median, base.downtimeMs.median)}, ping interruption ${fr(c.maxGapMs.median, base.maxGapMs.median)}`);
    }
  }
  return out;
}

/** Rows as columns padded to their widest cell, a rule under the first (the header). */
function aligned(rows: readonly string[][]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const lines = rows.map((r) => r.map((v, c) => v.padEnd(widths[c]!)).join('  '));
  lines.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  return lines;
}

/** The comparison table: per cell median (min..max) as results.summary has them, and block/shared ratios of the medians. */
export function summaryTable(results: Results): string {
  const s = summarize(results.iterations, results.scenario.asRun.strategies ?? []);
  const rows: string[][] = [['cell', 'ok/runs', 'duration ms', 'qemu downtime ms', 'ping interruption ms', 'lost pings']];
  for (const p of s.strategies)
    rows.push([p.cell ?? p.strategy, `${p.iterations - p.failed}/${p.iterations}`, cell(p.durationMs, 'ms'), cell(p.downtimeMs, 'ms'), cell(p.maxGapMs, 'ms'), cell(p.lost, 'count')]);
  const lines = aligned(rows);
  const fr = (v?: number) => (v === undefined ? '-' : `${v.toFixed(2)}x`);
  const ratioLine = (r: { durationMs?: number; downtimeMs?: number; maxGapMs?: number }, where: string) =>
    `block/shared (ratio of medians)${where}: duration ${fr(r.durationMs)}, qemu downtime ${fr(r.downtimeMs)}, ping interruption ${fr(r.maxGapMs)}`;
  const ratios = s.ratiosByGroup ?? [{ group: '', ...s.blockToSharedRatio }];
  const shown = ratios.filter((r) => r.durationMs !== undefined || r.downtimeMs !== undefined);
  if (shown.length) lines.push('', ...shown.map((r) => ratioLine(r, r.group ? ` at ${r.group}` : '')));
  const axisLines = oneAxisRatios(s.strategies);
  if (axisLines.length) lines.push('', ...axisLines);
  if (results.drains?.length) lines.push('', ...drainTable(results));
  const faulted = results.iterations.filter((i) => i.fault);
  if (faulted.length) {
    lines.push('', 'faults (expected end: met/runs, how they ended, median ms from the request to the failure being noticed):');
    for (const [label, its] of byCellLabel(faulted)) {
      const met = its.filter((i) => i.expected?.met).length;
      const kinds = [...new Set(its.map((i) => (i.ok ? 'completed' : (i.failure?.kind ?? 'not migrated'))))].join(', ');
      const detect = its.map((i) => i.failure?.detectedAfterMs).filter((v): v is number => typeof v === 'number').sort((a, b) => a - b);
      const median = detect.length ? ms(detect[Math.floor((detect.length - 1) / 2)]) : '-';
      lines.push(`  ${label}: ${its[0]!.expected?.outcome ?? '?'} ${met}/${its.length}; ${kinds}; detected ${median}`);
    }
  }
  const known = results.iterations.filter((i) => i.knownIssue);
  if (known.length) {
    lines.push('', 'known issues, run on purpose (hypervisor.allowKnownIssues): reproduced/runs per cell');
    for (const [label, its] of byCellLabel(known)) {
      const k = its[0]!.knownIssue!;
      const other = its.filter((i) => !i.ok && !i.knownIssue?.reproduced).length;
      lines.push(`  ${label}: ${k.id} ${its.filter((i) => i.knownIssue?.reproduced).length}/${its.length}${other ? `, ${other} failed otherwise` : ''} (${k.reference})`);
    }
  }
  const env = results.environment;
  lines.push(`environment: ${env.accelerator} (${env.acceleratorReason}), QEMU ${env.qemuVersion}, kernel ${env.kernel}, NFS client ${env.nfsClient}, ${env.cpus}x ${env.cpuModel}`);
  const sizing = sizingLine(results.sizing);
  if (sizing) lines.push(sizing);
  lines.push('median (min..max) over successful iterations');
  return lines.join('\n');
}

/** Drain time per strategy and concurrency (results.drains), and how it changes with N and between the strategies. */
export function drainTable(results: Results): string[] {
  const ds = summarizeDrains(results.drains ?? []);
  if (!ds.length) return [];
  const d0 = results.drains![0]!;
  const manyDrivers = new Set(ds.map((d) => d.driver)).size > 1;
  const mib = (d: DrainSummary['wireBytes']) => (d.median === undefined ? '-' : `${(d.median / 2 ** 20).toFixed(1)}`);
  const rows: string[][] = [[`drain of ${d0.from}, ${d0.guests} guests`, 'ok/drains', 'drain time ms', 'worst ping gap ms', 'MiB sent']];
  for (const d of ds) rows.push([`${d.strategy}${manyDrivers ? `, driver=${d.driver}` : ''}, concurrency=${d.concurrency}`, `${d.drains - d.failed}/${d.drains}`, cell(d.totalMs, 'ms'), cell(d.worstGapMs, 'ms'), mib(d.wireBytes)]);
  const out = aligned(rows);
  const fr = (a?: number, b?: number) => (a === undefined || b === undefined || b === 0 ? '-' : `${(a / b).toFixed(2)}x`);
  const at = (strategy: string, driver: string, n: number) => ds.find((d) => d.strategy === strategy && d.driver === driver && d.concurrency === n)?.totalMs.median;
  const ns = [...new Set(ds.map((d) => d.concurrency))];
  for (const driver of [...new Set(ds.map((d) => d.driver))]) {
    const where = manyDrivers ? ` (${driver})` : '';
    const bs = ns.map((n) => `N=${n} ${fr(at('block', driver, n), at('shared', driver, n))}`).filter((x) => !x.endsWith(' -'));
    if (bs.length) out.push(`drain time block/shared${where}: ${bs.join(', ')}`);
    for (const strategy of [...new Set(ds.map((d) => d.strategy))]) {
      const vs = ns.slice(1).map((n) => `N=${n} ${fr(at(strategy, driver, n), at(strategy, driver, ns[0]!))}`).filter((x) => !x.endsWith(' -'));
      if (vs.length) out.push(`drain time against N=${ns[0]}, ${strategy}${where}: ${vs.join(', ')}`);
    }
  }
  return out;
}

/**
 * What the run cost its host: the harness's CPU time, each guest's QEMU peak memory, how
 * many QEMUs of the largest peak the host's available memory holds (memory alone: under TCG
 * each running guest also wants a core), and how its guests started.
 */
export function sizingLine(s: Results['sizing']): string | undefined {
  if (!s) return undefined;
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  const guests = Object.entries(s.peakRssBytesByGuest);
  const largest = Math.max(0, ...guests.map(([, b]) => b));
  const fit = s.hostMemAvailableBytes !== null && largest > 0 ? `; this host had ${(s.hostMemAvailableBytes / 2 ** 30).toFixed(1)} GiB available at the start: room for ${Math.floor(s.hostMemAvailableBytes / largest)} QEMUs of ${mib(largest)} by memory alone` : '';
  const modes = (['snapshot', 'cold'] as const).flatMap((m) => {
    const b = (s.boot ?? []).filter((x) => x.mode === m);
    return b.length ? [`${b.length} ${m === 'snapshot' ? 'restored from a booted snapshot' : 'booted cold'} (slowest ${(Math.max(...b.map((x) => x.ms)) / 1000).toFixed(1)} s)`] : [];
  });
  const boots = modes.length ? `; guests: ${modes.join(', ')}` : '';
  return `sizing: harness CPU ${(s.harnessCpuMs / 1000).toFixed(1)} s over ${(s.wallMs / 1000).toFixed(1)} s${guests.length ? `; QEMU peak RSS ${guests.map(([g, b]) => `${g} ${mib(b)}`).join(', ')}` : ''}${fit}${boots}`;
}
