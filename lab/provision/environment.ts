import { existsSync, readFileSync } from 'node:fs';
import { release, cpus } from 'node:os';
import { run } from '../exec/run.ts';

export type Accelerator = 'kvm' | 'tcg';
export type NfsClient = 'kernel' | 'qemu';

/** A known defect of the hypervisor in this environment, with its upstream reference. */
export interface KnownIssue {
  id: string;
  text: string;
  reference: string;
}

export interface Environment {
  /** Which provider raised the lab: local namespaces, or hosts over ssh. */
  provider?: 'local' | 'ssh';
  accelerator: Accelerator;
  /** Why this accelerator was chosen (e.g. "no kvm_intel/kvm_amd module loaded"). */
  acceleratorReason: string;
  qemuVersion: string;
  /** Defects of this QEMU + accelerator that affect what migralab measures (see knownIssues()). */
  knownIssues?: KnownIssue[];
  /** libvirt's version (libvirtd --version), where the libvirt driver can run. */
  libvirtVersion?: string | null;
  kernel: string;
  cpuModel: string;
  cpus: number;
  nfsServer: 'ganesha' | 'kernel';
  nfsClient: NfsClient;
  nfsClientReason: string;
  node: string;
  migralab: string;
}

export async function qemuVersion(binary = 'qemu-system-x86_64'): Promise<string> {
  const r = await run([binary, '--version']);
  return /version\s+(\S+)/.exec(r.stdout)?.[1] ?? r.stdout.split('\n')[0]!;
}

/** The TCG dirty-bitmap bug of every QEMU before 9.0 (fixed upstream by 03bfc2188f06). */
export const TCG_DIRTY_BITMAP_ISSUE: KnownIssue = {
  id: 'qemu-tcg-lost-writes',
  text: 'QEMU before 9.0 under TCG can lose guest memory writes during a migration when the guest dirties memory: after a dirty-bitmap sync the TCG TLB is not reset, so stores through it are not marked dirty and never sent again (seen: guests panicking on the destination)',
  reference: 'QEMU commit 03bfc2188f06 "physmem: Fix migration dirty bitmap coherency with TCG memory access" (QEMU 9.0)',
};

/** Known defects of a QEMU version under an accelerator (pure). */
export function knownIssues(e: { qemuVersion: string; accelerator: Accelerator }): KnownIssue[] {
  const [major = 0] = e.qemuVersion.split('.').map(Number);
  return e.accelerator === 'tcg' && major < 9 ? [TCG_DIRTY_BITMAP_ISSUE] : [];
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
