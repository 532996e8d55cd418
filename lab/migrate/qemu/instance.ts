import { diskSpecs } from '../storage.ts';
import { locateDataDisk } from '../disks.ts';
import type { BootRecord, DiskLocation, GuestSpec, Instance } from '../types.ts';
import type { LabNode, StartedLab } from '../../provision/provider.ts';
import { kernelCmdline } from '../../image/build.ts';
import { buildArgvPrefix } from '../../qemu/builds.ts';
import type { GuestLaunch } from '../../qemu/argv.ts';
import { GuestShell } from '../../qemu/guest-shell.ts';
import { QemuProcess, consoleTail, runFiles } from '../../qemu/process.ts';

/** The QEMU command line of a guest on a node (the destination of a migration: incoming). */
export function launchFor(lab: StartedLab, guest: GuestSpec, node: LabNode, opts: { incoming: boolean; paused?: boolean }): GuestLaunch {
  const files = runFiles(node.plan.dir, guest.name);
  return {
    name: guest.name,
    qemu: buildArgvPrefix(guest.build),
    memoryBytes: guest.memoryBytes,
    accelerator: guest.accelerator,
    kernel: guest.image.kernel,
    initrd: guest.image.initrd,
    append: kernelCmdline(),
    disks: diskSpecs(lab.plan, lab.info, guest.strategy, node.plan, guest.name),
    mac: guest.mac,
    tap: guest.tap,
    qmpSocket: files.qmpSocket,
    ctlSocket: files.ctlSocket,
    consoleLog: files.consoleLog,
    pidFile: files.pidFile,
    incoming: opts.incoming,
    paused: opts.paused,
  };
}

/** A guest as one QEMU process on one node, driven over QMP. */
export class QemuInstance implements Instance {
  readonly driver = 'qemu' as const;
  boot?: BootRecord;
  constructor(
    private readonly lab: StartedLab,
    readonly guest: GuestSpec,
    readonly node: LabNode,
    readonly process: QemuProcess,
  ) {}

  status(): Promise<string> {
    return this.process.status();
  }

  async gone(): Promise<boolean> {
    return !(await this.process.alive());
  }

  async disk(): Promise<DiskLocation> {
    const nodes = await this.process.qmp.execute<{ 'node-name': string; drv: string; file: string }[]>('query-named-block-nodes', { flat: true });
    return locateDataDisk(this.lab.info, nodes);
  }

  shell(opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<GuestShell> {
    const path = this.process.launch.ctlSocket;
    return GuestShell.connect(path, { timeoutMs: opts.timeoutMs ?? 10_000, signal: opts.signal, open: () => this.node.transport.connect(path) });
  }

  consoleTail(lines: number): Promise<string> {
    return consoleTail(this.node.transport, this.process.launch.consoleLog, lines);
  }

  stop(): Promise<void> {
    return this.process.quit();
  }

  kill(): Promise<void> {
    return this.process.kill();
  }

  freeze(frozen: boolean): Promise<void> {
    return this.process.proc.signal(frozen ? 'SIGSTOP' : 'SIGCONT');
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
