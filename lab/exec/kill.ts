import { LocalProcess } from './local.ts';
import { stopProcess } from './transport.ts';

/** SIGTERM, then SIGKILL after graceMs; resolves once the process is gone. Only touches this exact PID (and start time, when given). */
export async function terminate(pid: number, { graceMs = 500, startTime }: { graceMs?: number; startTime?: string } = {}): Promise<void> {
  await stopProcess(new LocalProcess(pid, startTime), { graceMs });
}
