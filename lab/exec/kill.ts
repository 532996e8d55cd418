import { readFileSync } from 'node:fs';
import { processStartTime } from '../state/ledger.ts';

/** Running (a zombie waiting for its parent to reap it counts as gone). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** SIGTERM, then SIGKILL after graceMs; resolves once the process is gone. Only touches this exact PID. */
export async function terminate(pid: number, { graceMs = 500, startTime }: { graceMs?: number; startTime?: string } = {}): Promise<void> {
  if (startTime !== undefined && processStartTime(pid) !== startTime) return; // gone, or the PID was reused
  if (!alive(pid)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  if (alive(pid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
    const hard = Date.now() + 5000;
    while (alive(pid) && Date.now() < hard) await new Promise((r) => setTimeout(r, 10));
  }
}

export { alive as processAlive };

/** CPU time (user + system) a process has used so far, ms; undefined when it is gone. */
export function processCpuMs(pid: number, ticksPerSecond = 100): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / ticksPerSecond;
  } catch {
    return undefined;
  }
}
