/**
 * Guest workloads: memory dirtying and disk writes at a given rate, run in the guest by
 * `/bin/mlload` (lab/image/guest-programs/mlload.c) in the background, started and
 * stopped through the control shell.
 *
 * Everything needed to stop a workload and read its counters is in the RunningWorkload
 * value (plain JSON: guest PIDs and file names) plus the status files the programs keep
 * in the guest's /run, so stopWorkload works on another GuestShell connection than the
 * one that started it, e.g. the destination's after a migration.
 *
 * The helpers for background guest programs (start, wait until they report, stop, read
 * the final status line) are shared with the pause probe (probe.ts).
 */
import { randomBytes } from 'node:crypto';
import { MigralabError } from '../errors.ts';
import type { GuestShell } from '../qemu/guest-shell.ts';

const MiB = 1024 * 1024;
const PAGE = 4096;

export interface WorkloadSpec {
  /** Dirty `rateMiBs` MiB of 4 KiB pages per second, cyclically over a working set of this many bytes. */
  memory?: { rateMiBs: number; workingSetBytes: number };
  /** Write `rateMiBs` MiB/s with O_DIRECT, cyclically over [offsetMiB, offsetMiB + sizeMiB) of the guest's disk. */
  disk?: { rateMiBs: number; offsetMiB: number; sizeMiB: number };
}

/** A program started in the guest's background: enough to find it again from any connection. */
export interface GuestProcess {
  /** The guest's PID of the program. */
  pid: number;
  /** Program name, checked against /proc/<pid>/cmdline before it is signalled (PIDs get reused). */
  program: string;
  /** Status file in the guest (one key=value line, rewritten atomically by the program). */
  statusFile: string;
  /** stdout+stderr of the program in the guest. */
  logFile: string;
}

export interface RunningWorkload {
  /** Random tag shared by the guest files of this workload. */
  id: string;
  /** Block device the disk load writes to. */
  device: string;
  spec: WorkloadSpec;
  memory?: GuestProcess;
  disk?: GuestProcess;
}

export interface LoadFigures {
  /** The rate asked for, MiB/s. */
  targetMiBs: number;
  /** Seconds of load, on the guest's CLOCK_MONOTONIC, from the start of the paced phase to the final report. */
  seconds: number;
  /** Achieved rate: bytes / seconds, MiB/s. */
  rateMiBs: number;
  /** Times the program fell more than 0.5 s behind and gave up on the backlog (a stalled vCPU or slow disk). */
  backlogDrops: number;
  droppedBytes: number;
}

/** The memory load's own check of its working set after it stopped (mlload.c, ramcheck.h). */
export interface RamCheck {
  pagesChecked: number;
  pagesBad: number;
  /** The first page that did not hold what the writer last wrote there; null when every page did. */
  firstBad: { index: number; expected: number; found: number; kind: 'stale' | 'corrupt' } | null;
}

export interface WorkloadReport {
  memory?: LoadFigures & { bytesDirtied: number; workingSetBytes: number; ram?: RamCheck };
  disk?: LoadFigures & { bytesWritten: number };
}

/** One mlload status line, parsed. */
export interface LoadStatus {
  state: 'running' | 'final' | 'error';
  pid: number;
  mode: 'mem' | 'disk';
  targetMiBs: number;
  bytes: number;
  seconds: number;
  rateMiBs: number;
  backlogDrops: number;
  droppedBytes: number;
  workingSetBytes?: number;
  /** mem, final line only */
  ram?: RamCheck;
}

/** Default block device of the disk load: the guest's first virtio disk. */
export const DEFAULT_WORKLOAD_DEVICE = '/dev/vda';
/** Where the guest programs keep their status and log files (the guest's RAM). */
export const GUEST_RUN_DIR = '/run';

/** `a=1 b=x` → { a: '1', b: 'x' }; the last status line of the text counts. */
export function parseStatusFields(text: string): Record<string, string> {
  const line = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .pop();
  if (line === undefined) throw new MigralabError('LAB', 'guest program status: empty');
  const out: Record<string, string> = {};
  for (const word of line.split(/\s+/)) {
    const eq = word.indexOf('=');
    if (eq <= 0) throw new MigralabError('LAB', `guest program status: not key=value: ${JSON.stringify(word)} in ${JSON.stringify(line)}`);
    out[word.slice(0, eq)] = word.slice(eq + 1);
  }
  return out;
}

/** A numeric field of a status line, or an error naming it. */
export function numberField(fields: Record<string, string>, key: string): number {
  const raw = fields[key];
  const v = raw === undefined ? NaN : Number(raw);
  if (raw === undefined || raw === '' || !Number.isFinite(v)) {
    throw new MigralabError('LAB', `guest program status: field ${key} ${raw === undefined ? 'missing' : `not a number: ${JSON.stringify(raw)}`}`);
  }
  return v;
}

function stateField(fields: Record<string, string>): 'running' | 'final' | 'error' {
  const s = fields.state;
  if (s !== 'running' && s !== 'final' && s !== 'error') throw new MigralabError('LAB', `guest program status: bad state ${JSON.stringify(s)}`);
  return s;
}

/** Parses mlload's status line. */
export function parseLoadStatus(text: string): LoadStatus {
  const f = parseStatusFields(text);
  const mode = f.mode;
  if (mode !== 'mem' && mode !== 'disk') throw new MigralabError('LAB', `mlload status: bad mode ${JSON.stringify(mode)}`);
  const st: LoadStatus = {
    state: stateField(f),
    pid: numberField(f, 'pid'),
    mode,
    targetMiBs: numberField(f, 'targetMiBs'),
    bytes: numberField(f, 'bytes'),
    seconds: numberField(f, 'seconds'),
    rateMiBs: numberField(f, 'rateMiBs'),
    backlogDrops: numberField(f, 'backlogDrops'),
    droppedBytes: numberField(f, 'droppedBytes'),
  };
  if (mode === 'mem') st.workingSetBytes = numberField(f, 'workingSetBytes');
  if (mode === 'mem' && f.ramPagesChecked !== undefined) st.ram = parseRamCheck(f);
  return st;
}

/** The ram* fields of mlload's final mem line. */
export function parseRamCheck(f: Record<string, string>): RamCheck {
  const bad = numberField(f, 'ramPagesBad');
  const kind = f.ramFirstBadKind;
  if (bad > 0 && kind !== 'stale' && kind !== 'corrupt') throw new MigralabError('LAB', `mlload status: bad ramFirstBadKind ${JSON.stringify(kind)}`);
  return {
    pagesChecked: numberField(f, 'ramPagesChecked'),
    pagesBad: bad,
    firstBad:
      bad > 0
        ? { index: numberField(f, 'ramFirstBadIndex'), expected: numberField(f, 'ramFirstBadExpected'), found: numberField(f, 'ramFirstBadFound'), kind: kind as 'stale' | 'corrupt' }
        : null,
  };
}

function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** A decimal for the C side's strtod: no exponent notation. */
function decimal(n: number): string {
  return n.toFixed(6).replace(/\.?0+$/, '');
}

/** `/run/<program>-<id>-<role>.{status,log}` */
export function guestFiles(program: string, id: string, role: string): { statusFile: string; logFile: string } {
  const base = `${GUEST_RUN_DIR}/${program}-${id}-${role}`;
  return { statusFile: `${base}.status`, logFile: `${base}.log` };
}

export function newGuestRunId(): string {
  return randomBytes(4).toString('hex');
}

/**
 * Starts `argv` (program first; its status file must be among the arguments) in the
 * guest's background and waits until it wrote its first status line (it is set up and
 * running), or fails with its log when it exits first.
 */
export async function startGuestProgram(
  shell: GuestShell,
  argv: readonly string[],
  files: { statusFile: string; logFile: string },
  opts: { startTimeoutMs?: number } = {},
): Promise<GuestProcess> {
  const program = argv[0];
  if (!program) throw new Error('startGuestProgram: empty argv');
  const startTimeoutMs = opts.startTimeoutMs ?? 30_000;
  const polls = Math.max(1, Math.ceil(startTimeoutMs / 50));
  const f = shq(files.statusFile);
  const l = shq(files.logFile);
  const script = [
    // builtins where they do (read, not cut): every fork costs under TCG
    `[ ! -e ${f} ] && [ ! -e ${f}.tmp ] || rm -f ${f} ${f}.tmp`,
    `${argv.map(shq).join(' ')} >${l} 2>&1 </dev/null &`,
    'p=$!',
    'i=0',
    `while [ ! -s ${f} ]; do`,
    '  s=; { read -r _ _ s _ </proc/$p/stat; } 2>/dev/null',
    `  if [ -z "$s" ] || [ "$s" = Z ]; then echo "@@exited"; cat ${l}; rm -f ${f} ${f}.tmp ${l}; exit 1; fi`,
    `  i=$((i + 1)); if [ $i -ge ${polls} ]; then echo "@@timeout"; kill $p; cat ${l}; exit 1; fi`,
    '  sleep 0.05',
    'done',
    'echo "pid=$p"',
  ].join('\n');
  const r = await shell.exec(script, { timeoutMs: startTimeoutMs + 10_000 });
  const m = /^pid=(\d+)$/m.exec(r.output);
  if (r.status !== 0 || !m) {
    const why = r.output.includes('@@timeout') ? `did not report within ${startTimeoutMs} ms` : 'exited at once';
    const log = r.output.replace(/@@(exited|timeout)\n?/, '').trim();
    throw new MigralabError('LAB', `guest program ${argv.join(' ')} ${why}${log ? `: ${log}` : ''}`);
  }
  return { pid: Number(m[1]), program: program.split('/').pop()!, ...files };
}

/**
 * Sends SIGTERM to every program (only if its PID still runs that program), waits until
 * each wrote its final status line (or is gone), and returns each one's last status line
 * ('' when there is none) and log, in the given order; with `remove`, their files are removed
 * in the same command. The script uses the shell's builtins where it can (read, kill, case):
 * right after a migration every fork and exec in the guest is slow (the destination's TCG has
 * translated nothing yet), and this runs there first.
 */
export async function stopGuestPrograms(
  shell: GuestShell,
  procs: readonly GuestProcess[],
  opts: { stopTimeoutMs?: number; remove?: boolean } = {},
): Promise<{ status: string; log: string }[]> {
  if (procs.length === 0) return [];
  const stopTimeoutMs = opts.stopTimeoutMs ?? 10_000;
  const polls = Math.max(1, Math.ceil(stopTimeoutMs / 50));
  // /proc/PID/cmdline holds NUL-separated words; read drops the NULs, the program's name is in what is left.
  // { ...; } 2>/dev/null: a redirection's own error (a file gone) is printed before a 2>/dev/null after it applies
  const ours = (p: GuestProcess) => `c=; { read -r c </proc/${p.pid}/cmdline; } 2>/dev/null; case "$c" in *${p.program}*) true ;; *) false ;; esac`;
  const lines: string[] = [];
  for (const p of procs) lines.push(`if ${ours(p)}; then kill -TERM ${p.pid}; fi`);
  procs.forEach((p, i) => {
    const f = shq(p.statusFile);
    lines.push(
      'i=0',
      'while :; do',
      `  l=; { read -r l <${f}; } 2>/dev/null`,
      '  case "$l" in "state=final "*|"state=error "*) break ;; esac',
      `  s=; { read -r _ _ s _ </proc/${p.pid}/stat; } 2>/dev/null`,
      `  if [ -z "$s" ] || [ "$s" = Z ] || ! { ${ours(p)}; }; then break; fi`,
      `  i=$((i + 1)); [ $i -lt ${polls} ] || break`,
      '  sleep 0.05',
      'done',
      `echo "@@status ${i}"`,
      `l=; { read -r l <${f}; } 2>/dev/null; [ -z "$l" ] || echo "$l"`,
      `echo "@@log ${i}"`,
      `[ ! -s ${shq(p.logFile)} ] || tail -c 2000 ${shq(p.logFile)}`,
    );
  });
  lines.push('echo "@@end"');
  if (opts.remove) lines.push(`rm -f ${guestFileList(procs).map(shq).join(' ')}`);
  const r = await shell.exec(lines.join('\n'), { timeoutMs: stopTimeoutMs * procs.length + 10_000 });
  return splitStopOutput(r.output, procs.length);
}

/**
 * Splits the stop script's output (`@@status <i>`, the status file, `@@log <i>`, the log's
 * tail, ..., `@@end`) into each program's status line and log (pure).
 */
export function splitStopOutput(output: string, count: number): { status: string; log: string }[] {
  const out: { status: string; log: string }[] = [];
  for (let i = 0; i < count; i++) {
    const status = new RegExp(`@@status ${i}\\n([\\s\\S]*?)@@log ${i}\\n`).exec(output)?.[1] ?? '';
    const log = new RegExp(`@@log ${i}\\n([\\s\\S]*?)@@(?:status ${i + 1}|end)\\n`).exec(output)?.[1] ?? '';
    out.push({ status: status.trim(), log: log.trim() });
  }
  return out;
}

/** Removes the guest files of stopped programs. */
export async function removeGuestFiles(shell: GuestShell, procs: readonly GuestProcess[]): Promise<void> {
  if (procs.length === 0) return;
  await shell.exec(`rm -f ${guestFileList(procs).map(shq).join(' ')}`, { timeoutMs: 10_000 });
}

/** Every file a guest program leaves: its status (and the temporary one it renames), its log. */
function guestFileList(procs: readonly GuestProcess[]): string[] {
  return procs.flatMap((p) => [p.statusFile, `${p.statusFile}.tmp`, p.logFile]);
}

/** The final status line of a stopped program, or an error that says what happened instead. */
export function finalStatus(proc: GuestProcess, got: { status: string; log: string }): string {
  const what = `${proc.program} (guest PID ${proc.pid})`;
  const logPart = got.log ? `; its log: ${got.log.split('\n').slice(-5).join(' | ')}` : '';
  if (got.status === '') throw new MigralabError('LAB', `${what}: no status in ${proc.statusFile}${logPart}`);
  const state = parseStatusFields(got.status).state;
  if (state === 'error') throw new MigralabError('LAB', `${what} failed in the guest${logPart}`);
  if (state !== 'final') {
    throw new MigralabError('LAB', `${what} did not write a final status (last: ${got.status}); it was gone or did not stop${logPart}`);
  }
  return got.status;
}

function validRate(what: string, v: number): void {
  if (!Number.isFinite(v) || v <= 0) throw new MigralabError('USAGE', `workload ${what}: expected a positive rate in MiB/s, got ${v}`);
}

/** mlload's argv for one part of a spec (pure). */
export function mlloadArgv(kind: 'memory' | 'disk', spec: WorkloadSpec, statusFile: string, device = DEFAULT_WORKLOAD_DEVICE): string[] {
  if (kind === 'memory') {
    const m = spec.memory;
    if (!m) throw new Error('mlloadArgv: no memory spec');
    validRate('memory.rateMiBs', m.rateMiBs);
    if (!Number.isFinite(m.workingSetBytes) || m.workingSetBytes < PAGE) {
      throw new MigralabError('USAGE', `workload memory.workingSetBytes: expected at least ${PAGE} bytes, got ${m.workingSetBytes}`);
    }
    return ['mlload', '-o', statusFile, 'mem', decimal(m.rateMiBs), decimal(m.workingSetBytes / MiB)];
  }
  const d = spec.disk;
  if (!d) throw new Error('mlloadArgv: no disk spec');
  validRate('disk.rateMiBs', d.rateMiBs);
  const aligned = (n: number) => Number.isFinite(n) && n >= 0 && Number.isInteger((n * MiB) / PAGE);
  if (!aligned(d.offsetMiB) || !aligned(d.sizeMiB) || d.sizeMiB <= 0) {
    throw new MigralabError('USAGE', `workload disk: offsetMiB and sizeMiB must be multiples of 4 KiB (sizeMiB > 0), got ${d.offsetMiB}, ${d.sizeMiB}`);
  }
  return ['mlload', '-o', statusFile, 'disk', decimal(d.rateMiBs), device, decimal(d.offsetMiB), decimal(d.sizeMiB)];
}

/**
 * Starts the spec's loads in the guest; resolves once each one runs at its pace (the
 * memory working set is populated). On a failure, whatever was started is stopped again.
 */
export async function startWorkload(shell: GuestShell, spec: WorkloadSpec, opts: { device?: string } = {}): Promise<RunningWorkload> {
  const id = newGuestRunId();
  const device = opts.device ?? DEFAULT_WORKLOAD_DEVICE;
  const running: RunningWorkload = { id, device, spec };
  // validate both before starting either
  const memArgv = spec.memory ? mlloadArgv('memory', spec, guestFiles('mlload', id, 'mem').statusFile, device) : undefined;
  const diskArgv = spec.disk ? mlloadArgv('disk', spec, guestFiles('mlload', id, 'disk').statusFile, device) : undefined;
  try {
    if (memArgv) running.memory = await startGuestProgram(shell, memArgv, guestFiles('mlload', id, 'mem'));
    if (diskArgv) running.disk = await startGuestProgram(shell, diskArgv, guestFiles('mlload', id, 'disk'));
  } catch (e) {
    const started = [running.memory, running.disk].filter((p): p is GuestProcess => p !== undefined);
    await stopGuestPrograms(shell, started).catch(() => undefined);
    await removeGuestFiles(shell, started).catch(() => undefined);
    throw e;
  }
  return running;
}

function figures(st: LoadStatus): LoadFigures {
  return {
    targetMiBs: st.targetMiBs,
    seconds: st.seconds,
    rateMiBs: st.rateMiBs,
    backlogDrops: st.backlogDrops,
    droppedBytes: st.droppedBytes,
  };
}

/** The report of a workload from the final status lines of its programs (pure). */
export function workloadReport(final: { memory?: string; disk?: string }): WorkloadReport {
  const report: WorkloadReport = {};
  if (final.memory !== undefined) {
    const st = parseLoadStatus(final.memory);
    report.memory = { bytesDirtied: st.bytes, workingSetBytes: st.workingSetBytes ?? 0, ...figures(st), ...(st.ram ? { ram: st.ram } : {}) };
  }
  if (final.disk !== undefined) {
    const st = parseLoadStatus(final.disk);
    report.disk = { bytesWritten: st.bytes, ...figures(st) };
  }
  return report;
}

/** Stops the workload's programs and reads back what they did (any connection to the same guest). */
export async function stopWorkload(shell: GuestShell, w: RunningWorkload): Promise<WorkloadReport> {
  const procs = [w.memory, w.disk].filter((p): p is GuestProcess => p !== undefined);
  const got = await stopGuestPrograms(shell, procs, { remove: true });
  const final: { memory?: string; disk?: string } = {};
  let i = 0;
  if (w.memory) final.memory = finalStatus(w.memory, got[i++]!);
  if (w.disk) final.disk = finalStatus(w.disk, got[i++]!);
  return workloadReport(final);
}
