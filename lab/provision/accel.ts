import type { GuestImage } from '../image/build.ts';
import { kernelCmdline } from '../image/build.ts';
import { run } from '../exec/run.ts';
import type { Accelerator } from './environment.ts';

/**
 * KVM only where it really works: a loaded kvm_intel/kvm_amd module and a probe boot
 * of our own kernel that reaches its init under KVM. Otherwise TCG, with the reason.
 */
export async function probeAccelerator(image: GuestImage, kvmLoaded: boolean): Promise<{ accelerator: Accelerator; reason: string }> {
  if (!kvmLoaded) return { accelerator: 'tcg', reason: 'no hardware KVM module (kvm_intel/kvm_amd) is loaded' };
  const r = await run(
    [
      'qemu-system-x86_64', '-accel', 'kvm', '-m', '128', '-nodefaults', '-no-user-config', '-display', 'none',
      '-serial', 'stdio', '-no-reboot', '-kernel', image.kernel, '-initrd', image.initrd, '-append', kernelCmdline({ probe: true }),
    ],
    { check: false, timeoutMs: 20_000 },
  );
  if (r.stdout.includes('MIGRALAB-PROBE-OK')) return { accelerator: 'kvm', reason: 'KVM module loaded and a probe boot succeeded' };
  return { accelerator: 'tcg', reason: `KVM probe boot failed (${r.exitCode === -1 ? 'hung' : `exit ${r.exitCode}`}): using TCG` };
}
