/**
 * A TCP observer: one connection from the observer to a port of the guest (an echo service
 * the test runs there) kept open across a migration, a numbered line sent every intervalMs,
 * and the echoes timed (tcp-probe-client.mjs, run inside the observer's namespace). What it
 * gives: whether the connection survived, and its longest stall, the largest time between
 * two echoes while lines kept being sent.
 */
import { fileURLToPath } from 'node:url';
import { MigralabError } from '../errors.ts';
import type { NodeTransport, StreamingProcess } from '../exec/transport.ts';
import { waitFor } from '../time/wait.ts';

export interface TcpProbeResult {
  sent: number;
  received: number;
  /** ms between two echoes at most (null: none came back). */
  longestStallMs: number | null;
  /** When that stall began, ms from the probe's start. */
  longestStallStartMs: number | null;
  maxRttMs: number | null;
  durationMs: number;
  /** The connection stayed open until stop(). */
  survived: boolean;
  /** How it ended when it did not survive. */
  closed: string | null;
}

const CLIENT = fileURLToPath(new URL('./tcp-probe-client.mjs', import.meta.url));

export class TcpProbe {
  private out = '';
  private constructor(private readonly proc: StreamingProcess) {
    proc.stdout.on('data', (b: Buffer) => (this.out += b.toString('utf8')));
  }

  static async start(observer: NodeTransport, host: string, port: number, intervalMs: number): Promise<TcpProbe> {
    const p = new TcpProbe(observer.stream([process.execPath, CLIENT, host, String(port), String(intervalMs)]));
    let exited = false;
    void p.proc.exited.then(() => (exited = true));
    const state = await waitFor(`the TCP probe to connect to ${host}:${port}`, async () => (p.out.includes('connected\n') ? 'connected' : exited ? 'exited' : undefined), { timeoutMs: 10_000, intervalMs: 20 }).catch((e) => {
      p.proc.kill('SIGKILL');
      throw e;
    });
    if (state === 'exited') throw new MigralabError('LAB', `the TCP probe could not connect to ${host}:${port}: ${p.out.trim() || 'it exited'}`);
    return p;
  }

  async stop(): Promise<TcpProbeResult> {
    this.proc.kill('SIGTERM');
    await this.proc.exited;
    const line = this.out.trim().split('\n').at(-1) ?? '';
    try {
      const r = JSON.parse(line) as TcpProbeResult & { ended: string };
      const { ended: _e, ...rest } = r;
      return rest;
    } catch {
      throw new MigralabError('LAB', `the TCP probe gave no result: ${this.out.trim()}`);
    }
  }
}
