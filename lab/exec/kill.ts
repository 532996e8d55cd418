import { processAlive as alive, processStartTime } from './proc.ts';

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


