import { existsSync, readFileSync } from 'node:fs';
import { release, cpus } from 'node:os';
import { run } from '../exec/run.ts';

export type Accelerator = 'kvm' | 'tcg';
export type NfsClient = 'kernel' | 'qemu';

export interface Environment {
  accelerator: Accelerator;
  /** Why this accelerator was chosen (e.g. "no kvm_intel/kvm_amd module loaded"). */
  acceleratorReason: string;
  qemuVersion: string;
  kernel: string;
  cpuModel: string;
  cpus: number;
  nfsServer: 'ganesha';
  nfsClient: NfsClient;
  nfsClientReason: string;
  node: string;
  migralab: string;
}

export async function qemuVersion(): Promise<string> {
  const r = await run(['qemu-system-x86_64', '--version']);
  return /version\s+(\S+)/.exec(r.stdout)?.[1] ?? r.stdout.split('\n')[0]!;
}

/** True only when a hardware KVM module is loaded; the caller still proves it with a probe boot. */
export function kvmModuleLoaded(): boolean {
  return existsSync('/dev/kvm') && (existsSync('/sys/module/kvm_intel') || existsSync('/sys/module/kvm_amd'));
}

/** Whether this kernel can mount NFS itself (else QEMU's nfs:// driver is the client). */
export async function detectNfsClient(): Promise<{ client: NfsClient; reason: string }> {
  const has = () => /\tnfs4?\n/.test(readFileSync('/proc/filesystems', 'utf8') + '\n');
  if (has()) return { client: 'kernel', reason: 'kernel lists nfs in /proc/filesystems' };
  const probe = await run(['modprobe', 'nfs'], { check: false }).catch(() => undefined);
  if (probe?.exitCode === 0 && has()) return { client: 'kernel', reason: 'loaded the kernel nfs module' };
  return { client: 'qemu', reason: 'this kernel cannot mount NFS (no nfs in /proc/filesystems, modprobe nfs failed): QEMU nfs:// driver' };
}

export function cpuModel(): string {
  return cpus()[0]?.model ?? 'unknown';
}

export function hostFacts(): Pick<Environment, 'kernel' | 'cpuModel' | 'cpus' | 'node'> {
  return { kernel: release(), cpuModel: cpuModel(), cpus: cpus().length, node: process.version };
}
