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
    // the client says "connected" once, or exits saying why it could not
    const state = await new Promise<'connected' | 'exited' | 'timeout'>((resolve) => {
      const timer = setTimeout(() => resolve('timeout'), 10_000);
      const onData = () => {
        if (p.out.includes('connected\n')) done('connected');
      };
      const done = (v: 'connected' | 'exited' | 'timeout') => {
        clearTimeout(timer);
        p.proc.stdout.off('data', onData);
        resolve(v);
      };
      p.proc.stdout.on('data', onData);
      void p.proc.exited.then(() => done('exited'));
      onData();
    });
    if (state === 'connected') return p;
    p.proc.kill('SIGKILL');
    throw new MigralabError('LAB', `the TCP probe could not connect to ${host}:${port}: ${state === 'timeout' ? 'no connection within 10 s' : p.out.trim() || 'it exited'}`);
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
