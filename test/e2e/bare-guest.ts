import type { GuestImage } from '../../lab/image/build.ts';

/**
 * The QEMU command line (without the binary) of a bare test guest: TCG, no default
 * devices, no display, no reboot, the image's kernel and initrd, and the first serial
 * port (the kernel console) written to consoleLog. extra (disks, NIC, control
 * channel, QMP) follows.
 */
export function bareGuestArgs(image: GuestImage, opts: { memoryMiB: number; append: string; consoleLog: string; extra?: string[] }): string[] {
  return [
    '-accel', 'tcg',
    '-m', String(opts.memoryMiB),
    '-nodefaults',
    '-no-user-config',
    '-display', 'none',
    '-no-reboot',
    '-kernel', image.kernel,
    '-initrd', image.initrd,
    '-append', opts.append,
    '-serial', `file:${opts.consoleLog}`,
    ...(opts.extra ?? []),
  ];
}
