import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { NodePlan } from '../provision/plan.ts';
import type { NodeTransport } from '../exec/node.ts';
import type { Ledger } from '../state/ledger.ts';
import { processAlive, processStartTime } from '../exec/proc.ts';
import { terminate } from '../exec/kill.ts';
import { MigralabError } from '../errors.ts';
import { waitFor } from '../exec/run.ts';
import { QmpClient } from './qmp.ts';
import { qemuArgv, type GuestLaunch } from './argv.ts';

export interface Placement {
  node: NodePlan;
  transport: NodeTransport;
}

/** Files of one QEMU process of an instance on one node (never on the NFS export). */
export function runFiles(node: NodePlan, instance: string) {
  const dir = join(node.dir, 'run', instance);
  return {
    dir,
    qmpSocket: join(dir, 'qmp.sock'),
    ctlSocket: join(dir, 'ctl.sock'),
    consoleLog: join(dir, 'console.log'),
    pidFile: join(dir, 'qemu.pid'),
  };
}

/** A started QEMU on a node, with its QMP connection. Recorded in the ledger before it starts. */
export class QemuProcess implements AsyncDisposable {
  private constructor(
    readonly placement: Placement,
    readonly launch: GuestLaunch,
    readonly pid: number,
    readonly qmp: QmpClient,
    private readonly ledger: Ledger,
  ) {}

  get nodeName(): string {
    return this.placement.node.name;
  }

  static async start(placement: Placement, launch: GuestLaunch, ledger: Ledger): Promise<QemuProcess> {
    const { node, transport } = placement;
    const files = runFiles(node, launch.name);
    await rm(files.dir, { recursive: true, force: true });
    await mkdir(files.dir, { recursive: true });
    // One tap per instance per node, on the node's bridge; it lives as long as the namespace.
    const tap = await transport.run(['ip', 'link', 'show', launch.tap], { check: false });
    if (tap.exitCode !== 0) {
      await transport.run(['ip', 'tuntap', 'add', 'dev', launch.tap, 'mode', 'tap']);
      await transport.run(['ip', 'link', 'set', launch.tap, 'master', 'br0', 'up']);
    }
    const slot = await ledger.record({ kind: 'process', name: `qemu:${launch.name}`, node: node.name });
    let pid: number | undefined;
    try {
      const started = await transport.run(qemuArgv(launch), { check: false, timeoutMs: 60_000 });
      if (started.exitCode !== 0)
        throw new MigralabError('LAB', `QEMU for ${launch.name} on ${node.name} did not start: ${started.stderr.trim() || `exit ${started.exitCode}`}`);
      pid = Number((await readFile(launch.pidFile, 'utf8')).trim());
      if (!Number.isInteger(pid) || pid <= 0) throw new MigralabError('LAB', `QEMU for ${launch.name} on ${node.name}: no PID in ${launch.pidFile}`);
      await ledger.update(slot, { pid, startTime: processStartTime(pid) });
      const qmp = await QmpClient.connect(launch.qmpSocket, { timeoutMs: 10_000, retryUntilMs: 10_000 });
      return new QemuProcess(placement, launch, pid, qmp, ledger);
    } catch (e) {
      // Nothing of a QEMU that did not come up stays: its process, its ledger entry, its files.
      if (pid !== undefined && pid > 0) await terminate(pid);
      await ledger.forget((r) => r === slot);
      await rm(files.dir, { recursive: true, force: true });
      throw e;
    }
  }

  async status(): Promise<string> {
    const s = await this.qmp.execute<{ status: string; running: boolean }>('query-status');
    return s.status;
  }

  get alive(): boolean {
    return processAlive(this.pid);
  }

  /** Asks QEMU to quit, waits for the process to be gone (killing it if it hangs), forgets it in the ledger. */
  async quit(): Promise<void> {
    if (this.alive) {
      try {
        await this.qmp.execute('quit', undefined, { timeoutMs: 3000 });
      } catch {
        /* the socket closes as QEMU exits */
      }
      await waitFor(`QEMU ${this.launch.name} on ${this.nodeName} to exit`, async () => !this.alive, { timeoutMs: 3000, intervalMs: 10 }).catch(() =>
        terminate(this.pid),
      );
    }
    await this.qmp.close();
    const pid = this.pid;
    await this.ledger.forget((r) => r.kind === 'process' && r.pid === pid);
    await rm(runFiles(this.placement.node, this.launch.name).dir, { recursive: true, force: true });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.quit();
  }
}
