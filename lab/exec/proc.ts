import { readFileSync } from 'node:fs';

/** The fields of /proc/PID/stat we use; undefined when the process is gone. */
export interface ProcStat {
  /** R, S, D, Z (zombie), X (dead), ... */
  state: string;
  /** user and system CPU time, clock ticks */
  utime: number;
  stime: number;
  /** start time after boot, clock ticks: tells a reused PID from ours */
  starttime: string;
  /** the parent's PID */
  ppid: number;
}

export function procStat(pid: number): ProcStat | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // fields after "(comm)": the command name may itself hold spaces or parentheses
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state: f[0]!, ppid: Number(f[1]), utime: Number(f[11]), stime: Number(f[12]), starttime: f[19]! };
}

/** Field 22 of /proc/PID/stat (start time in clock ticks): tells a reused PID from ours. */
export function processStartTime(pid: number): string | undefined {
  return procStat(pid)?.starttime;
}

/** Running (a zombie waiting for its parent to reap it counts as gone). */
export function processAlive(pid: number): boolean {
  const s = procStat(pid);
  return s !== undefined && s.state !== 'Z' && s.state !== 'X';
}

/** CPU time (user + system) a process has used so far, ms; undefined when it is gone. */
export function processCpuMs(pid: number, ticksPerSecond = 100): number | undefined {
  const s = procStat(pid);
  return s === undefined ? undefined : ((s.utime + s.stime) * 1000) / ticksPerSecond;
}

/** Is `pid` one of `ancestors` or a descendant of one (its parent chain, read from /proc)? */
export function descendsFrom(pid: number, ancestors: ReadonlySet<number>): boolean {
  for (let p = pid, hops = 0; p > 1 && hops < 64; hops++) {
    if (ancestors.has(p)) return true;
    const s = procStat(p);
    if (!s) return false;
    p = s.ppid;
  }
  return false;
}
