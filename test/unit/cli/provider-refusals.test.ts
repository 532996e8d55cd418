/**
 * What a provider cannot do is refused before the lab is raised: the libvirt driver on an ssh
 * topology (its libvirtd setup is the local lab's), by run, doctor and tutorial alike, with exit 3.
 * The hosts point at a closed port on loopback, so a check that stopped refusing would still
 * send nothing off this machine (and would fail to connect instead of passing).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { runMain } from './capture.ts';
import { checkDriverProvider } from '../../../lab/migrate/registry.ts';

let dir: string;
let stderr = '';
async function cli(argv: string[]) {
  const r = await runMain(argv);
  stderr = r.stderr;
  return r.code;
}

describe('the libvirt driver is refused on ssh topologies before anything starts', () => {
  let topology: string;
  let scenario: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'mlrefuse-'));
    topology = join(dir, 'hosts.ssh.yaml');
    const host = (name: string, roles: string, address: string) =>
      `  - { name: ${name}, roles: [${roles}], address: ${address}, ssh: { host: 127.0.0.1, port: 9, hostKey: "SHA256:${'A'.repeat(43)}" } }`;
    writeFileSync(
      topology,
      [
        'name: mlrefuse',
        'provider: ssh',
        'cidr: 10.79.9.0/24',
        `ssh: { user: root, identityFile: ${join(dir, 'key')} }`,
        'observer: { name: observer, address: 10.79.9.2 }',
        'nodes:',
        host('controller', 'nfs-server, compute', '10.79.9.11'),
        host('compute1', 'nfs-client, compute', '10.79.9.12'),
        `paths: { state: ${join(dir, 'state')}, remoteState: /var/lib/mlrefuse-remote }`,
        '',
      ].join('\n'),
    );
    scenario = join(dir, 'libvirt.yaml');
    writeFileSync(scenario, `name: libvirt-on-ssh\ntopology: ${topology}\ndrivers: [qemu, libvirt]\nrepetitions: 1\n`);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each([
    ['run', () => ['run', scenario]],
    ['doctor', () => ['doctor', topology, '--driver', 'libvirt']],
    ['tutorial', () => ['tutorial', '--auto', '--topology', topology]],
  ])('%s', async (_what, argv) => {
    expect(await cli(argv()), stderr).toBe(3);
    expect(stderr).toMatch(/the libvirt driver runs on the local lab only \(this topology's provider is ssh\): on real hosts use the qemu driver/);
    expect(existsSync(join(dir, 'state'))).toBe(false);
  });

  it('lets the qemu driver through on ssh, and both on the local lab', () => {
    expect(() => checkDriverProvider('ssh', ['qemu'])).not.toThrow();
    expect(() => checkDriverProvider('local', ['qemu', 'libvirt'])).not.toThrow();
    expect(() => checkDriverProvider('ssh', ['libvirt'])).toThrow(/local lab only/);
  });
});
