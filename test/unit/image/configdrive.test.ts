import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it, expect } from 'vitest';
import { run } from '../../../lab/exec/run.ts';
import {
  CONFIG_DRIVE_BYTES,
  envFile,
  makeConfigDrive,
  metaDataJson,
  networkDataJson,
  validateMeta,
  type ConfigDriveMeta,
} from '../../../lab/image/configdrive.ts';

const meta: ConfigDriveMeta = {
  name: 'vm-one',
  uuid: '3F1C2A4E-0B7D-4E8A-9C11-5D2E6F7A8B90',
  ip: '10.77.0.10',
  prefix: 24,
  mac: '52:54:00:AB:cd:56',
  gateway: '10.77.0.1',
};

describe('config drive contents', () => {
  it('envFile writes KEY=value lines, normalized to lower case', () => {
    expect(envFile(meta)).toBe(
      'NAME=vm-one\nUUID=3f1c2a4e-0b7d-4e8a-9c11-5d2e6f7a8b90\nIP=10.77.0.10\nPREFIX=24\nMAC=52:54:00:ab:cd:56\nGATEWAY=10.77.0.1\n',
    );
    const { gateway: _, ...noGw } = meta;
    expect(envFile(noGw)).not.toContain('GATEWAY');
  });

  it.each([
    ['name', { name: 'vm;reboot' }],
    ['name', { name: 'vm one' }],
    ['name', { name: '$(id)' }],
    ['name', { name: 'vm\nIP=1.2.3.4' }],
    ['name', { name: '-vm' }],
    ['name', { name: 'a'.repeat(64) }],
    ['name', { name: '' }],
    ['uuid', { uuid: 'not-a-uuid' }],
    ['ip', { ip: '10.0.0.256' }],
    ['ip', { ip: '10.0.0.1; ls' }],
    ['ip', { ip: 'fe80::1' }],
    ['prefix', { prefix: 33 }],
    ['prefix', { prefix: 0 }],
    ['prefix', { prefix: 24.5 }],
    ['mac', { mac: '52:54:00:12:34' }],
    ['mac', { mac: '52-54-00-12-34-56' }],
    ['mac', { mac: '01:00:5e:00:00:01' }],
    ['gateway', { gateway: 'router' }],
  ] as const)('rejects a bad %s: %j', (field, patch) => {
    expect(() => envFile({ ...meta, ...patch } as ConfigDriveMeta)).toThrow(new RegExp(`config drive ${field}: expected`));
  });

  it('accepts the edge cases that are valid', () => {
    expect(() => validateMeta({ ...meta, name: 'a', prefix: 32 })).not.toThrow();
    expect(validateMeta({ ...meta, name: 'A'.repeat(63) }).name).toHaveLength(63);
  });

  it("holds nova's openstack/latest JSON documents", () => {
    const md = JSON.parse(metaDataJson(meta));
    expect(md).toMatchObject({ uuid: '3f1c2a4e-0b7d-4e8a-9c11-5d2e6f7a8b90', name: 'vm-one', hostname: 'vm-one', launch_index: 0 });
    const nd = JSON.parse(networkDataJson({ ...meta, prefix: 20 }));
    expect(nd.links[0]).toMatchObject({ id: 'tap0', ethernet_mac_address: '52:54:00:ab:cd:56' });
    expect(nd.networks[0]).toMatchObject({ type: 'ipv4', link: 'tap0', ip_address: '10.77.0.10', netmask: '255.255.240.0' });
    expect(nd.networks[0].routes).toEqual([{ network: '0.0.0.0', netmask: '0.0.0.0', gateway: '10.77.0.1' }]);
  });
});

describe('makeConfigDrive (real vfat image, read back with mtools)', () => {
  it('writes a fixed-size vfat image labelled config-2 with the three files', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'migralab-cd-'));
    try {
      const img = path.join(dir, 'disk.config');
      await makeConfigDrive(img, meta);
      expect((await stat(img)).size).toBe(CONFIG_DRIVE_BYTES);
      const listing = await run(['mdir', '-i', img, '::/']);
      expect(listing.stdout).toMatch(/Volume in drive : is config-2/);
      const type = async (p: string) => (await run(['mtype', '-i', img, `::/${p}`])).stdout + '\n';
      expect(await type('migralab/env')).toBe(envFile(meta));
      expect(JSON.parse(await type('openstack/latest/meta_data.json'))).toEqual(JSON.parse(metaDataJson(meta)));
      expect(JSON.parse(await type('openstack/latest/network_data.json'))).toEqual(JSON.parse(networkDataJson(meta)));
      // Making it again replaces the image instead of failing or appending.
      await makeConfigDrive(img, { ...meta, name: 'vm-two' });
      expect(await type('migralab/env')).toContain('NAME=vm-two\n');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('writes nothing when the metadata is invalid', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'migralab-cd-'));
    try {
      const img = path.join(dir, 'disk.config');
      await expect(makeConfigDrive(img, { ...meta, ip: 'x' })).rejects.toThrow(/config drive ip/);
      await expect(stat(img)).rejects.toThrow(/ENOENT/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
