import { describe, it, expect } from 'vitest';
import { XMLParser } from 'fast-xml-parser';
import { libvirtdConf, qemuConf, confWithSettings, libvirtdSettings, domainXml, parseRawStats, jobInfo, disksOfDomainXml } from '../../../lab/migrate/libvirt/config.ts';
import { withLibvirtAccounts } from '../../../lab/migrate/libvirt/daemon.ts';
import { tunableArgs } from '../../../lab/migrate/libvirt/driver.ts';

describe('libvirt configuration of a lab node', () => {
  it('libvirtd.conf is the tutorial\'s, listening on the lab address only', () => {
    const c = libvirtdConf('10.77.0.11');
    for (const line of ['listen_tls = 0', 'listen_tcp = 1', 'unix_sock_group = "libvirtd"', 'unix_sock_ro_perms = "0777"', 'unix_sock_rw_perms = "0770"', 'auth_unix_ro = "none"', 'auth_unix_rw = "none"', 'auth_tcp = "none"', 'listen_addr = "10.77.0.11"'])
      expect(c.split('\n')).toContain(line);
  });

  it('qemu.conf runs QEMU as root, unconfined, and binds migration to the node', () => {
    const c = qemuConf({ address: '10.77.0.12', name: 'compute1' });
    expect(c).toMatch(/security_driver = "none"/);
    expect(c).toMatch(/namespaces = \[ \]/);
    expect(c).toMatch(/migration_address = "10\.77\.0\.12"/);
    expect(c).toMatch(/migration_host = "compute1"/);
  });

  it('an existing libvirtd.conf gets the tutorial\'s settings: active lines for them commented out, the settings under a mark, once', () => {
    const before = '# libvirtd.conf\n#listen_tls = 0\nlisten_tls = 1\nmax_clients = 5000\n';
    const after = confWithSettings(before, libvirtdSettings('10.79.0.11'), '# migralab lab1');
    expect(after.split('\n')).toEqual(['# libvirtd.conf', '#listen_tls = 0', '# migralab: listen_tls = 1', 'max_clients = 5000', '# migralab lab1', 'listen_tls = 0', 'listen_tcp = 1', 'auth_tcp = "none"', 'listen_addr = "10.79.0.11"', '']);
    // applied again: the first active occurrence of every key already has its value
    expect(confWithSettings(after, libvirtdSettings('10.79.0.11'), '# migralab lab1')).toBe(after);
    // a list over several lines is commented out whole
    const multi = confWithSettings('cgroup_controllers = [ "cpu",\n  "memory" ]\nuser = "qemu"\n', { cgroup_controllers: '[ ]' }, '# m');
    expect(multi.split('\n')).toEqual(['# migralab: cgroup_controllers = [ "cpu",', '# migralab:   "memory" ]', 'user = "qemu"', '# m', 'cgroup_controllers = [ ]', '']);
    // a missing file becomes the settings alone
    expect(confWithSettings('', { listen_tcp: '1' }, '# m')).toBe('# m\nlisten_tcp = 1\n');
  });

  it('adds libvirt\'s user and groups to private copies of passwd and group, once', () => {
    const a = withLibvirtAccounts('root:x:0:0:root:/root:/bin/bash\n', 'root:x:0:\n');
    expect(a.passwd).toMatch(/^libvirt-qemu:x:64055:/m);
    expect(a.group).toMatch(/^libvirtd:x:/m);
    expect(withLibvirtAccounts(a.passwd, a.group)).toEqual(a);
  });
});

describe('domain XML', () => {
  const xml = domainXml({
    name: 'block-vm',
    lab: 'mltest',
    uuid: '6d0e8a4e-1f6c-4b54-9d8e-0e3e7d1c2b3a',
    memoryBytes: 256 * 2 ** 20,
    accelerator: 'tcg',
    emulator: '/usr/bin/qemu-system-x86_64',
    kernel: '/cache/vmlinuz',
    initrd: '/cache/initrd.img',
    cmdline: 'console=ttyS0 quiet & more',
    disks: [
      { nodeName: 'disk0', format: 'qcow2', source: { driver: 'file', filename: '/n/local/block-vm/disk.qcow2' } },
      { nodeName: 'config0', format: 'raw', source: { driver: 'nfs', server: '10.77.0.11', path: '/x/instances/block-vm/disk.config' } },
    ],
    mac: '52:54:00:4d:00:64',
    tap: 'mltap0',
    consoleLog: '/n/run/block-vm/console.log',
    ctlSocket: '/n/run/block-vm/ctl.sock',
  });
  const dom = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@' }).parse(xml).domain;

  it('is well-formed and has the qemu driver\'s devices: data disk, config drive, virtio-net with the fixed MAC on a tap, two serial ports', () => {
    expect(dom['@type']).toBe('qemu');
    // what down looks for to destroy the lab's domains on a host whose libvirtd it stops
    expect(dom.description).toBe('migralab lab mltest');
    expect(dom.memory['#text']).toBe(262144);
    expect(dom.os.cmdline).toBe('console=ttyS0 quiet & more');
    const disks = dom.devices.disk;
    expect(disks[0].source['@file']).toBe('/n/local/block-vm/disk.qcow2');
    expect(disks[0].driver['@cache']).toBe('none');
    expect(disks[1]['@type']).toBe('network');
    expect(disks[1].source['@protocol']).toBe('nfs');
    expect(disks[1].source.host['@name']).toBe('10.77.0.11');
    expect(dom.devices.interface.mac['@address']).toBe('52:54:00:4d:00:64');
    expect(dom.devices.interface.target).toMatchObject({ '@dev': 'mltap0', '@managed': 'no' });
    expect(dom.devices.serial.map((s: { '@type': string }) => s['@type'])).toEqual(['file', 'unix']);
    expect(dom.devices.serial[1].source).toMatchObject({ '@mode': 'bind', '@path': '/n/run/block-vm/ctl.sock' });
  });

  it('reads the disks back from a live domain\'s XML', () => {
    expect(disksOfDomainXml(xml)).toEqual([
      { target: 'vda', driver: 'file', filename: '/n/local/block-vm/disk.qcow2' },
      { target: 'vdb', driver: 'nfs', filename: 'nfs://10.77.0.11/x/instances/block-vm/disk.config' },
    ]);
  });
});

describe('libvirt job statistics', () => {
  it('parses domjobinfo --rawstats and keeps what libvirt did not give as null', () => {
    const raw = parseRawStats('Job type:         Completed\noperation: 3\ntime_elapsed: 1101\ndowntime: 43\ndata_processed: 96583680\nmemory_processed: 96583680\nmemory_iteration: 3\nsetup_time: 4\n');
    expect(raw.time_elapsed).toBe('1101');
    const j = jobInfo(raw, 2500);
    expect(j).toMatchObject({ timeElapsedMs: 1101, downtimeMs: 43, dataProcessedBytes: 96583680, iterations: 3, diskProcessedBytes: null, virshMs: 2500 });
  });

  it('maps tunables to virsh migrate options', () => {
    expect(tunableArgs({ tunables: { maxBandwidth: 8 * 1024 ** 3, autoConverge: true, multifdChannels: 2, postcopy: false } })).toEqual(['--bandwidth', '1024', '--auto-converge', '--parallel', '--parallel-connections', '2']);
    expect(tunableArgs({ tunables: { maxBandwidth: null, autoConverge: false, multifdChannels: 0, postcopy: false } })).toEqual([]);
  });
});
