import { describe, it, expect } from 'vitest';
import { qemuArgv, blockdevJson, type GuestLaunch } from '../../../lab/qemu/argv.ts';

const base: GuestLaunch = {
  name: 'block-vm',
  memoryBytes: 256 * 2 ** 20,
  accelerator: 'tcg',
  kernel: '/c/vmlinuz',
  initrd: '/c/initrd.img',
  append: 'console=ttyS0',
  disks: [
    { nodeName: 'disk0', format: 'qcow2', source: { driver: 'file', filename: '/i/disk.qcow2' } },
    { nodeName: 'config0', format: 'raw', source: { driver: 'nfs', server: '10.77.0.11', path: '/e/disk.config' } },
  ],
  mac: '52:54:00:4d:00:64',
  tap: 'tap-block-vm',
  qmpSocket: '/r/qmp.sock',
  ctlSocket: '/r/ctl.sock',
  consoleLog: '/r/console.log',
  pidFile: '/r/qemu.pid',
};

const after = (argv: string[], flag: string) => argv.filter((_, i) => argv[i - 1] === flag);

describe('QEMU command line', () => {
  it('memory, accelerator, kernel, QMP, serial ports, network', () => {
    const a = qemuArgv(base);
    expect(a[0]).toBe('qemu-system-x86_64');
    expect(after(a, '-m')).toEqual(['256M']);
    expect(after(a, '-accel')).toEqual(['tcg']);
    expect(after(a, '-cpu')).toEqual(['qemu64']);
    expect(after(a, '-qmp')).toEqual(['unix:/r/qmp.sock,server=on,wait=off']);
    expect(after(a, '-serial')).toEqual(['chardev:console', 'chardev:ctl']);
    expect(after(a, '-netdev')).toEqual(['tap,id=net0,ifname=tap-block-vm,script=no,downscript=no']);
    expect(after(a, '-device')[0]).toBe('virtio-net-pci,netdev=net0,mac=52:54:00:4d:00:64,id=nic0,addr=0x3');
    expect(a).toContain('-daemonize');
    expect(a).not.toContain('-incoming');
  });

  it('disks get fixed PCI slots so source and destination match', () => {
    const devices = after(qemuArgv(base), '-device').slice(1);
    expect(devices).toEqual(['virtio-blk-pci,drive=disk0,id=vda,addr=0x4', 'virtio-blk-pci,drive=config0,id=vdb,addr=0x5']);
  });

  it('local disks bypass the host cache; NFS disks go through QEMU\'s nfs driver', () => {
    expect(JSON.parse(blockdevJson(base.disks[0]!))).toEqual({
      driver: 'qcow2',
      'node-name': 'disk0',
      cache: { direct: true },
      file: { driver: 'file', filename: '/i/disk.qcow2', cache: { direct: true } },
    });
    expect(JSON.parse(blockdevJson(base.disks[1]!)).file).toEqual({ driver: 'nfs', server: { type: 'inet', host: '10.77.0.11' }, path: '/e/disk.config' });
  });

  it('a destination waits for migrate-incoming; KVM uses the host CPU', () => {
    const a = qemuArgv({ ...base, incoming: true, accelerator: 'kvm' });
    expect(after(a, '-incoming')).toEqual(['defer']);
    expect(after(a, '-cpu')).toEqual(['host']);
  });
});
