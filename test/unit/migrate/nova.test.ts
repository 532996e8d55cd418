import { describe, it, expect } from 'vitest';
import { migrateLiveBody, novaErrorMessage, phaseSpans, rootDiskOfDomainXml, serialPortsOfDomainXml, serverBody, COMPUTE_MICROVERSION, computeHeaders } from '../../../lab/migrate/nova/api.ts';
import { NovaDriver, sharedUnderNovaReason } from '../../../lab/migrate/nova/driver.ts';
import { envFile } from '../../../lab/image/configdrive.ts';
import { identityScript, NOVA_USER_DATA_PATH, CONFIG_ENV_PATH } from '../../../lab/image/init.ts';
import { linuxbridgeName, novaConf, SERIAL_PORT_RANGE, type StackContext } from '../../../lab/stack/openstack/config.ts';
import { newSecrets } from '../../../lab/stack/openstack/stack.ts';
import { scenarioSchema } from '../../../lab/config/scenario.ts';
import { topologySchema } from '../../../lab/config/topology.ts';
import type { StartedLab } from '../../../lab/provision/provider.ts';

const guest = { name: 'block-nova-vm', strategy: 'block' as const, uuid: '7d3c3c56-0a4b-4d9e-9a52-3f1b8f2a9c11', ip: '10.77.0.100', prefix: 24, mac: '52:54:00:4d:00:64' };

describe('the nova driver\'s requests', () => {
  it('boots the guest on the named host with its port, nova\'s config drive, and its identity as user_data in the lines migralab\'s own drive has', () => {
    const b = serverBody({ ...guest } as never, { image: 'img', flavor: 'fl', port: 'p1', host: 'compute1', lab: 'devstack' }).server;
    expect(b).toMatchObject({ name: 'block-nova-vm', imageRef: 'img', flavorRef: 'fl', networks: [{ port: 'p1' }], host: 'compute1', config_drive: true });
    expect(Buffer.from(b.user_data, 'base64').toString('utf8')).toBe(envFile(guest));
    expect(Buffer.from(b.user_data, 'base64').toString('utf8')).toContain('IP=10.77.0.100\n');
  });

  it('asks for the live migration as the dashboard does: a named host, block_migration by strategy, no disk_over_commit at this microversion', () => {
    expect(migrateLiveBody({ strategy: 'block' }, 'controller')).toEqual({ 'os-migrateLive': { host: 'controller', block_migration: true } });
    expect(migrateLiveBody({ strategy: 'shared' }, 'compute1')).toEqual({ 'os-migrateLive': { host: 'compute1', block_migration: false } });
    // 2.34: asynchronous pre-checks; 2.25 dropped disk_over_commit
    const [maj, min] = COMPUTE_MICROVERSION.split('.').map(Number);
    expect(maj).toBe(2);
    expect(min).toBeGreaterThanOrEqual(34);
    expect(computeHeaders['OpenStack-API-Version']).toBe(`compute ${COMPUTE_MICROVERSION}`);
  });

  it('the time between nova\'s phases is what the harness saw from one status to the next', () => {
    expect(phaseSpans([{ status: 'queued', atMs: 1000 }, { status: 'preparing', atMs: 1400 }, { status: 'running', atMs: 2700 }, { status: 'completed', atMs: 7000 }])).toEqual([
      { from: 'queued', to: 'preparing', ms: 400 },
      { from: 'preparing', to: 'running', ms: 1300 },
      { from: 'running', to: 'completed', ms: 4300 },
    ]);
    expect(phaseSpans([])).toEqual([]);
  });

  it('nova\'s refusal is its own message', () => {
    expect(novaErrorMessage({ badRequest: { code: 400, message: 'Compute host nowhere could not be found.' } })).toBe('Compute host nowhere could not be found.');
    expect(novaErrorMessage('{"conflictingRequest": {"code": 409, "message": "Cannot \'os-migrateLive\' instance x while it is in vm_state error"}}')).toMatch(/vm_state error/);
    expect(novaErrorMessage('<html>502 Bad Gateway</html>')).toBe('<html>502 Bad Gateway</html>');
  });
});

describe('a domain nova defined', () => {
  const xml = `<domain type='qemu' id='1'>
  <name>instance-00000001</name>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none'/>
      <source file='/opt/stack/data/nova/instances/7d3c/disk' index='2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <source file='/opt/stack/data/nova/instances/7d3c/disk.config' index='1'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <serial type='tcp'>
      <source mode='bind' host='10.77.0.12' service='10001'/>
      <protocol type='raw'/>
      <target type='isa-serial' port='1'><model name='isa-serial'/></target>
    </serial>
    <serial type='tcp'>
      <source mode='bind' host='10.77.0.12' service='10000'/>
      <log file='/opt/stack/data/nova/instances/7d3c/console.log' append='off'/>
      <protocol type='raw'/>
      <target type='isa-serial' port='0'><model name='isa-serial'/></target>
    </serial>
  </devices>
</domain>`;
  it('has its serial ports as TCP listeners by target port (the second is the control shell), and the console log', () => {
    expect(serialPortsOfDomainXml(xml)).toEqual({
      ports: [
        { target: 0, host: '10.77.0.12', port: 10000 },
        { target: 1, host: '10.77.0.12', port: 10001 },
      ],
      log: '/opt/stack/data/nova/instances/7d3c/console.log',
    });
    expect(serialPortsOfDomainXml('<domain/>')).toEqual({ ports: [], log: null });
  });
  it('has the guest\'s /dev/vda as its root disk file', () => {
    expect(rootDiskOfDomainXml(xml)).toBe('/opt/stack/data/nova/instances/7d3c/disk');
    expect(rootDiskOfDomainXml('<domain/>')).toBeNull();
  });
});

describe('the guest under nova', () => {
  it('reads its identity from nova\'s user_data when its drive has no migralab/env', () => {
    const s = identityScript();
    expect(NOVA_USER_DATA_PATH).toBe('openstack/latest/user_data');
    expect(s).toContain(`env=/mnt/config/${CONFIG_ENV_PATH}`);
    expect(s).toContain(`[ -r "$env" ] || env=/mnt/config/${NOVA_USER_DATA_PATH}`);
    expect(s).toContain('done <"$env"');
  });
});

describe('nova.conf of the openstack profile for the driver', () => {
  const ctx: StackContext = { controller: 'controller', controllerAddress: '10.77.0.11', secrets: newSecrets() };
  const node = { name: 'compute1', address: '10.77.0.12' };
  it('binds the guests\' serial ports on the node\'s lab address', () => {
    const c = novaConf(ctx, node, '/opt/stack/data/nova/instances');
    expect(c).toMatch(/\[serial_console\]\nenabled = true\nproxyclient_address = 10\.77\.0\.12\nport_range = 10000:10099\n/);
    expect(SERIAL_PORT_RANGE).toBe('10000:10099');
  });
  it('leaves libvirt\'s lifecycle events unhandled unless the topology asks (the port-binding race)', () => {
    expect(novaConf(ctx, node, '/x')).toMatch(/\[workarounds\]\nhandle_virt_lifecycle_events = false\n/);
    expect(novaConf({ ...ctx, novaLifecycleEvents: true }, node, '/x')).toMatch(/\[workarounds\]\nhandle_virt_lifecycle_events = true\n/);
  });
  it('names the lab network\'s bridge as linuxbridge does', () => {
    expect(linuxbridgeName('594ecd3c-67ce-4376-a53f-0a18ef25ba0b')).toBe('brq594ecd3c-67');
  });
  it('the topology\'s openstack.novaLifecycleEvents is off by default and must be a boolean', () => {
    const base = { name: 'd', stack: 'openstack', cidr: '10.77.0.0/24', observer: { name: 'o', address: '10.77.0.2' }, nodes: [{ name: 'controller', roles: ['nfs-server', 'compute'], address: '10.77.0.11' }, { name: 'compute1', roles: ['nfs-client', 'compute'], address: '10.77.0.12' }] };
    expect(topologySchema.parse(base).openstack.novaLifecycleEvents).toBe(false);
    expect(topologySchema.parse({ ...base, openstack: { novaLifecycleEvents: true } }).openstack.novaLifecycleEvents).toBe(true);
    const orphan = topologySchema.safeParse({ ...base, stack: 'none', openstack: { novaLifecycleEvents: true } });
    expect(orphan.error!.issues.map((i) => [i.path.join('.'), i.message])).toEqual([['openstack', 'expected stack: openstack with openstack settings']]);
    const bad = topologySchema.safeParse({ ...base, openstack: { novaLifecycleEvents: 'yes' } });
    expect(bad.success).toBe(false);
    expect(bad.error!.issues[0]).toMatchObject({ path: ['openstack', 'novaLifecycleEvents'], message: 'expected true or false' });
  });
});

describe('scenarios with the nova driver', () => {
  it('are accepted beside libvirt and qemu', () => {
    expect(scenarioSchema.parse({ name: 's', drivers: ['nova', 'libvirt', 'qemu'] }).drivers).toEqual(['nova', 'libvirt', 'qemu']);
  });
  it('refuse TLS and drains, naming the field', () => {
    const tls = scenarioSchema.safeParse({ name: 's', drivers: ['nova'], security: { tls: 'psk' } });
    expect(tls.error!.issues.map((i) => [i.path.join('.'), i.message])).toEqual([['security.tls', 'expected none with the nova driver (security.tls psk is set up through the qemu driver only)']]);
    const drain = scenarioSchema.safeParse({ name: 's', drivers: ['nova'], guests: 2, placement: { drain: 'compute1' } });
    expect(drain.error!.issues.map((i) => i.path.join('.'))).toContain('drivers');
  });
  it('a guest nova cannot run here is refused with the reason: shared storage without kernel NFS, a QEMU build other than the nodes\' own', () => {
    const d = Object.assign(Object.create(NovaDriver.prototype) as object, { lab: { info: { nfs: { client: 'qemu' } } } }) as unknown as NovaDriver;
    const g = (strategy: 'block' | 'shared', id = 'system') => ({ strategy, build: { id } }) as never;
    expect(d.refuses(g('block'))).toBeNull();
    expect(d.refuses(g('shared'))).toMatch(/this kernel has no NFS client/);
    expect(d.refuses(g('block', 'debian-7.2'))).toMatch(/nova starts the nodes' own QEMU .* not build debian-7\.2/);
  });

  it('shared storage under nova is skipped where the kernel has no NFS client, saying so; never a bind mount instead', () => {
    const lab = (client: string) => ({ info: { nfs: { client } } }) as unknown as StartedLab;
    expect(sharedUnderNovaReason(lab('qemu'))).toMatch(/kernel NFS on both computes .*mount -t nfs controller:\/opt\/stack\/data\/nova\/instances.*this kernel has no NFS client.*block migration only, and a bind-mounted directory would not be NFS/);
  });
});
