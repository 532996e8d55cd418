import { join } from 'node:path';
import { processStartTime } from '../exec/proc.ts';
import type { NodeTransport, ProcessHandle } from '../exec/transport.ts';
import { stopProcess } from '../exec/transport.ts';
import type { Ledger, Owner } from '../state/ledger.ts';
import { MigralabError } from '../errors.ts';
import { waitFor } from '../time/wait.ts';
import { QmpClient } from './qmp.ts';
import { qemuArgv, type GuestLaunch } from './argv.ts';

/** Where one QEMU process runs: a node (by name), its transport, and the node's own directory. */
export interface QemuPlacement {
  node: string;
  transport: NodeTransport;
  /** The node's directory (NodePlan.dir): run files live in <dir>/run/<instance>. */
  dir: string;
  /** The bridge the guest's tap joins (default br0). */
  bridge?: string;
}

/** Files of one QEMU process of an instance on one node (never on the NFS export). */
export function runFiles(nodeDir: string, instance: string) {
  const dir = join(nodeDir, 'run', instance);
  return {
    dir,
    qmpSocket: join(dir, 'qmp.sock'),
    ctlSocket: join(dir, 'ctl.sock'),
    consoleLog: join(dir, 'console.log'),
    pidFile: join(dir, 'qemu.pid'),
  };
}

/** The last lines a guest printed on its console log (on its node), joined with " | ". */
export async function consoleTail(transport: NodeTransport, file: string, lines: number): Promise<string> {
  try {
    const text = (await transport.readFile(file)).toString('utf8');
    return text.replace(/\r/g, '').trimEnd().split('\n').slice(-lines).join(' | ') || '(empty)';
  } catch (e) {
    return `(unreadable: ${(e as Error).message})`;
  }
}

/** This migralab process, as the ledger's owner of what it starts. */
export const self: Owner = { pid: process.pid, startTime: processStartTime(process.pid) };

export interface QemuStartOptions {
  /** Who owns the process (a run): a guest whose owner died is an orphan `up` removes. */
  owner?: Owner;
  /** Reply deadline for QMP commands without their own (default 10 s). */
  qmpTimeoutMs?: number;
}


/** One QEMU's peak resident memory (VmHWM), read as it is stopped: what a guest of its size costs a host. */
export interface QemuPeak {
  guest: string;
  node: string;
  peakRssBytes: number;
}

/** Where stopped QEMUs report their peaks (a run collects them for results.sizing). */
const peakSinks = new Set<(p: QemuPeak) => void>();
export function collectQemuPeaks(): { peaks: QemuPeak[]; stop(): void } {
  const peaks: QemuPeak[] = [];
  const sink = (p: QemuPeak) => void peaks.push(p);
  peakSinks.add(sink);
  return { peaks, stop: () => void peakSinks.delete(sink) };
}

/** A started QEMU on a node, with its QMP connection. Recorded in the ledger before it starts. */
export class QemuProcess implements AsyncDisposable {
  private constructor(
    readonly placement: QemuPlacement,
    readonly launch: GuestLaunch,
    readonly proc: ProcessHandle,
    private qmpClient: QmpClient,
    private readonly ledger: Ledger,
    private readonly opts: QemuStartOptions = {},
  ) {}

  get qmp(): QmpClient {
    return this.qmpClient;
  }

  /** A new QMP connection after the old one was lost (the ssh connection to the node dropped, say). */
  async reconnect(): Promise<QmpClient> {
    if (this.qmpClient.isOpen) return this.qmpClient;
    const t = this.placement.transport;
    this.qmpClient = await QmpClient.connect(this.launch.qmpSocket, {
      timeoutMs: 10_000,
      retryUntilMs: 5_000,
      commandTimeoutMs: this.opts.qmpTimeoutMs,
      open: () => t.connect(this.launch.qmpSocket),
    });
    return this.qmpClient;
  }

  get nodeName(): string {
    return this.placement.node;
  }

  get pid(): number {
    return this.proc.pid;
  }

  static async start(placement: QemuPlacement, launch: GuestLaunch, ledger: Ledger, opts: QemuStartOptions = {}): Promise<QemuProcess> {
    const { node, transport } = placement;
    const files = runFiles(placement.dir, launch.name);
    await transport.remove(files.dir);
    await transport.mkdir(files.dir);
    // One tap per instance per node, on the node's bridge; it lives as long as the namespace.
    const tap = await transport.run(['ip', 'link', 'show', launch.tap], { check: false });
    if (tap.exitCode !== 0) {
      await transport.run(['ip', 'tuntap', 'add', 'dev', launch.tap, 'mode', 'tap']);
      await transport.run(['ip', 'link', 'set', launch.tap, 'master', placement.bridge ?? 'br0', 'up']);
    }
    const slot = await ledger.record({ kind: 'process', name: `qemu:${launch.name}`, node, ...(opts.owner ? { owner: opts.owner } : {}) });
    let proc: ProcessHandle | undefined;
    try {
      const started = await transport.run(qemuArgv(launch), { check: false, timeoutMs: 60_000 });
      if (started.exitCode !== 0)
        throw new MigralabError('LAB', `QEMU for ${launch.name} on ${node} did not start: ${started.stderr.trim() || `exit ${started.exitCode}`}`);
      const pid = Number((await transport.readFile(launch.pidFile)).toString('utf8').trim());
      if (!Number.isInteger(pid) || pid <= 0) throw new MigralabError('LAB', `QEMU for ${launch.name} on ${node}: no PID in ${launch.pidFile}`);
      proc = transport.process(pid);
      await ledger.update(slot, { pid, startTime: proc.startTime });
      const qmp = await QmpClient.connect(launch.qmpSocket, {
        timeoutMs: 10_000,
        retryUntilMs: 10_000,
        commandTimeoutMs: opts.qmpTimeoutMs,
        open: () => transport.connect(launch.qmpSocket),
      });
      return new QemuProcess(placement, launch, proc, qmp, ledger, opts);
    } catch (e) {
      // Nothing of a QEMU that did not come up stays: its process, its ledger entry, its files.
      if (proc) await stopProcess(proc);
      await ledger.forget((r) => r === slot);
      await transport.remove(files.dir);
      throw e;
    }
  }

  async status(): Promise<string> {
    const s = await this.qmp.execute<{ status: string; running: boolean }>('query-status');
    return s.status;
  }

  alive(): Promise<boolean> {
    return this.proc.alive();
  }

  /** VmHWM of the process, to every collector (nothing when it cannot be read). */
  private async reportPeak(): Promise<void> {
    const r = await this.placement.transport.run(['cat', `/proc/${this.pid}/status`], { check: false }).catch(() => undefined);
    const kib = Number(/^VmHWM:\s+(\d+) kB/m.exec(r?.stdout ?? '')?.[1]);
    if (!(kib > 0)) return;
    for (const sink of peakSinks) sink({ guest: this.launch.name, node: this.nodeName, peakRssBytes: kib * 1024 });
  }

  /** Kills the process at once (a fault, or a QEMU that does not answer). */
  async kill(): Promise<void> {
    await this.proc.signal('SIGKILL');
    await waitFor(`QEMU ${this.launch.name} on ${this.nodeName} to die`, async () => !(await this.proc.alive()), { timeoutMs: 5000, intervalMs: 10 }).catch(() => {});
  }

  /** Asks QEMU to quit, waits for the process to be gone (killing it if it hangs), forgets it in the ledger. */
  async quit(): Promise<void> {
    if (await this.proc.alive()) {
      if (peakSinks.size) await this.reportPeak();
      try {
        await this.qmp.execute('quit', undefined, { timeoutMs: 3000 });
      } catch {
        /* the socket closes as QEMU exits */
      }
      await waitFor(`QEMU ${this.launch.name} on ${this.nodeName} to exit`, async () => !(await this.proc.alive()), { timeoutMs: 3000, intervalMs: 10 }).catch(() =>
        stopProcess(this.proc),
      );
    }
    await this.qmp.close();
    const pid = this.pid;
    await this.ledger.forget((r) => r.kind === 'process' && r.pid === pid);
    await this.placement.transport.remove(runFiles(this.placement.dir, this.launch.name).dir);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.quit();
  }
}
