/**
 * What a provider cannot do is refused before the lab is raised: the tutorial on an ssh
 * topology (its steps show what the local lab sets up), with exit 3 and what to run instead.
 * The hosts point at a closed port on loopback, so a check that stopped refusing would still
 * send nothing off this machine (and would fail to connect instead of passing).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { runMain } from './capture.ts';

let dir: string;
let stderr = '';
async function cli(argv: string[]) {
  const r = await runMain(argv);
  stderr = r.stderr;
  return r.code;
}

describe('the tutorial is refused on ssh topologies before anything starts', () => {
  let topology: string;
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
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each([
    ['libvirt', () => ['tutorial', '--auto', '--topology', topology]],
    ['qemu', () => ['tutorial', '--auto', '--driver', 'qemu', '--topology', topology]],
  ])('with the %s driver', async (_what, argv) => {
    expect(await cli(argv()), stderr).toBe(3);
    expect(stderr).toMatch(/the tutorial runs on the local lab .*this topology's provider is ssh: on real hosts run migralab run scenarios\/tutorial-libvirt\.yaml --topology \S+hosts\.ssh\.yaml, and migralab up \S+ --plan --driver libvirt/);
    expect(existsSync(join(dir, 'state'))).toBe(false);
  });
});
