/** Pure builder of a guest's QEMU command line. Source and destination get the same devices. */

export type DiskSource =
  | { driver: 'file'; filename: string }
  | { driver: 'nfs'; server: string; path: string };

export interface DiskSpec {
  /** Block node name, also the NBD export name and the device id suffix. */
  nodeName: string;
  format: 'qcow2' | 'raw';
  source: DiskSource;
}

export interface GuestLaunch {
  name: string;
  /** How to start the QEMU build (default `qemu-system-x86_64`): lab/qemu/builds.ts buildArgvPrefix. */
  qemu?: readonly string[];
  memoryBytes: number;
  accelerator: 'kvm' | 'tcg';
  kernel: string;
  initrd: string;
  append: string;
  disks: DiskSpec[];
  mac: string;
  tap: string;
  qmpSocket: string;
  ctlSocket: string;
  consoleLog: string;
  pidFile: string;
  /** Destination of a migration: wait for `migrate-incoming`. */
  incoming?: boolean;
  /** Do not run the guest once started (or once the incoming migration is in): `-S`. */
  paused?: boolean;
}

export function blockdevJson(d: DiskSpec): string {
  const file =
    d.source.driver === 'file'
      ? { driver: 'file', filename: d.source.filename, cache: { direct: true } }
      : { driver: 'nfs', server: { type: 'inet', host: d.source.server }, path: d.source.path };
  return JSON.stringify({ driver: d.format, 'node-name': d.nodeName, cache: { direct: d.source.driver === 'file' }, file });
}

export function qemuArgv(g: GuestLaunch): string[] {
  const mib = Math.floor(g.memoryBytes / 1024 ** 2);
  const argv = [
    ...(g.qemu ?? ['qemu-system-x86_64']),
    '-name', `${g.name},debug-threads=on`,
    '-machine', 'pc',
    '-accel', g.accelerator,
    '-cpu', g.accelerator === 'kvm' ? 'host' : 'qemu64',
    '-smp', '1',
    '-m', `${mib}M`,
    '-nodefaults', '-no-user-config', '-display', 'none', '-vga', 'none',
    '-kernel', g.kernel, '-initrd', g.initrd, '-append', g.append,
    '-qmp', `unix:${g.qmpSocket},server=on,wait=off`,
    '-chardev', `file,id=console,path=${g.consoleLog}`,
    '-serial', 'chardev:console',
    '-chardev', `socket,id=ctl,path=${g.ctlSocket},server=on,wait=off`,
    '-serial', 'chardev:ctl',
    '-netdev', `tap,id=net0,ifname=${g.tap},script=no,downscript=no`,
    '-device', `virtio-net-pci,netdev=net0,mac=${g.mac},id=nic0,addr=0x3`,
  ];
  g.disks.forEach((d, i) => {
    argv.push('-blockdev', blockdevJson(d));
    argv.push('-device', `virtio-blk-pci,drive=${d.nodeName},id=vd${String.fromCharCode(97 + i)},addr=0x${(4 + i).toString(16)}`);
  });
  if (g.incoming) argv.push('-incoming', 'defer');
  if (g.paused) argv.push('-S');
  argv.push('-pidfile', g.pidFile, '-daemonize');
  return argv;
}
