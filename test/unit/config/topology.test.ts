import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { parseConfig } from '../../../lab/config/load.ts';
import { topologySchema, loadTopology } from '../../../lab/config/topology.ts';
import { issuesOf as issuesIn } from './issues.ts';

const shipped = 'scenarios/topologies/two-node.lab.yaml';

const issuesOf = (text: string) => issuesIn(text, topologySchema);

describe('topology file', () => {
  it('loads the shipped two-node topology with its roles', async () => {
    const t = await loadTopology(shipped);
    expect(t.nodes.map((n) => [n.name, n.roles])).toEqual([
      ['controller', ['nfs-server', 'compute']],
      ['compute1', ['nfs-client', 'compute']],
    ]);
    expect(t.observer.address).toBe('10.77.0.2');
  });

  it('loads the real-hosts example: ssh provider, the tutorial\'s instances directory, verified host keys', async () => {
    const t = await loadTopology('scenarios/topologies/two-hosts.ssh.yaml');
    expect(t.provider).toBe('ssh');
    expect(t.ssh?.knownHosts).toBe('/root/.ssh/known_hosts');
    const { planLab } = await import('../../../lab/provision/plan.ts');
    expect(planLab(t).nodes.map((n) => n.instancesDir)).toEqual(['/opt/stack/data/nova/instances', '/opt/stack/data/nova/instances']);
  });

  it('loads the over-ssh example and its bare hosts: same addresses, the hosts lab\'s keys', async () => {
    const hosts = await loadTopology('scenarios/topologies/two-node-hosts.lab.yaml');
    const ssh = await loadTopology('scenarios/topologies/two-node-over-ssh.lab.yaml');
    expect(hosts.services).toEqual({ nfs: false, sshd: true });
    expect(ssh.nodes.map((n) => n.address)).toEqual(hosts.nodes.map((n) => n.address));
    expect(ssh.ssh?.identityFile).toBe(`${hosts.paths.state}/${hosts.name}/ssh/id_ed25519`);
    expect(ssh.ssh?.viaNetns).toBe(`mlab-${hosts.name}-observer`);
  });

  it('an ssh topology without a known_hosts file or pinned key is refused: host keys are always verified', () => {
    const text = readFileSync('scenarios/topologies/two-hosts.ssh.yaml', 'utf8').replace(/^  knownHosts: .*$/m, '');
    expect(issuesOf(text).map((i) => i.field)).toEqual(['nodes[0].ssh', 'nodes[1].ssh']);
  });

  it('names line, column and field of a bad address', () => {
    const text = readFileSync(shipped, 'utf8').replace('address: 10.77.0.12', 'address: 10.99.0.12');
    const [issue] = issuesOf(text);
    const line = text.split('\n').findIndex((l) => l.includes('10.99.0.12')) + 1;
    expect(issue).toMatchObject({ line, col: 14, field: 'nodes[1].address' });
    expect(issue!.expected).toMatch(/inside 10\.77\.0\.0\/24/);
  });

  it('rejects a duplicate address', () => {
    const issues = issuesOf(readFileSync(shipped, 'utf8').replace('address: 10.77.0.12', 'address: 10.77.0.11'));
    expect(issues).toEqual([expect.objectContaining({ field: 'nodes[1].address', expected: 'address 10.77.0.11 is already used by controller' })]);
  });

  it('rejects a role it does not know and an unknown key', () => {
    const text = readFileSync(shipped, 'utf8')
      .replace('roles: [nfs-client, compute]', 'roles: [nfs-clinet, compute]')
      .replace('provider: local', 'provider: local\ncolour: blue');
    const issues = issuesOf(text);
    const fields = issues.map((i) => i.field);
    expect(fields).toEqual(['colour', 'nodes[1].roles[0]']);
    const colour = issues.find((i) => i.field === 'colour')!;
    expect(colour).toMatchObject({ line: text.split("\n").indexOf("colour: blue") + 1, col: 1, expected: 'unknown field "colour"' });
  });

  it('needs exactly one nfs-server', () => {
    const text = readFileSync(shipped, 'utf8').replace('roles: [nfs-server, compute]', 'roles: [compute]');
    expect(issuesOf(text).map((i) => i.expected).join()).toMatch(/exactly one node with role nfs-server/);
  });

  it('reports YAML syntax errors with their position', () => {
    const issues = issuesOf('name: lab\nnodes: [a, b\ncidr: x\n');
    expect(issues[0]!.line).toBeGreaterThanOrEqual(2);
    expect(issues[0]!.expected).toMatch(/invalid YAML/);
  });

  it('formats the message as file:line:col field: expected', () => {
    try {
      parseConfig('lab.yaml', 'name: Bad Name\n', topologySchema);
    } catch (e) {
      expect((e as Error).message.split('\n')).toContainEqual(expect.stringMatching(/^lab\.yaml:1:7 name: expected a short name/));
      return;
    }
    throw new Error('no error');
  });
});
