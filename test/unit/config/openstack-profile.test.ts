import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { topologySchema, loadTopology } from '../../../lab/config/topology.ts';
import { planLab } from '../../../lab/provision/plan.ts';
import { parsePackageList, openstackPackages, missingOpenstackPackages, checkOpenstackPackages } from '../../../lab/stack/openstack/packages.ts';
import { MigralabError, exitCodeOf } from '../../../lab/errors.ts';
import { issuesOf as issuesIn } from './issues.ts';

const devstack = 'scenarios/topologies/devstack.lab.yaml';

const issuesOf = (text: string) => issuesIn(text, topologySchema);

describe('the openstack lab profile (stack: openstack)', () => {
  it('loads the shipped devstack topology: the tutorial\'s two nodes with the profile', async () => {
    const t = await loadTopology(devstack);
    expect(t.stack).toBe('openstack');
    expect(planLab(t).stack).toBe('openstack');
    expect(t.nodes.map((n) => [n.name, n.roles])).toEqual([
      ['controller', ['nfs-server', 'compute']],
      ['compute1', ['nfs-client', 'compute']],
    ]);
  });

  it('every other topology runs no stack', async () => {
    expect((await loadTopology('scenarios/topologies/two-node.lab.yaml')).stack).toBe('none');
  });

  it('an unknown stack names the field, its line and what is expected', () => {
    const text = readFileSync(devstack, 'utf8').replace(/^stack: openstack$/m, 'stack: devstack');
    const [issue] = issuesOf(text);
    expect(issue).toMatchObject({ field: 'stack', line: text.split('\n').findIndex((l) => l.startsWith('stack:')) + 1 });
    expect(issue!.expected).toMatch(/none or openstack/);
  });

  it('is refused with bare-host services: it needs the NFS server and no sshd', () => {
    const text = readFileSync(devstack, 'utf8').replace(/^stack: openstack$/m, 'stack: openstack\nservices: { nfs: false, sshd: true }');
    expect(issuesOf(text).map((i) => i.field)).toEqual(['services']);
  });

  it('the package list is one name per line, comments and blank lines aside', () => {
    expect(parsePackageList('# head\nmariadb-server   # db\n\n  nova-api\nnova-compute-kvm # with virt_type = qemu\n')).toEqual(['mariadb-server', 'nova-api', 'nova-compute-kvm']);
    const shipped = openstackPackages();
    for (const p of ['mariadb-server', 'rabbitmq-server', 'keystone', 'placement-api', 'glance', 'neutron-server', 'nova-api', 'nova-conductor', 'nova-scheduler', 'nova-compute-kvm'])
      expect(shipped).toContain(p);
    // nova-compute-qemu cannot be installed beside backports' QEMU (DESIGN.md)
    expect(shipped).not.toContain('nova-compute-qemu');
  });

  it('names exactly the packages dpkg does not have', async () => {
    expect(await missingOpenstackPackages(['dpkg', 'no-such-package-migralab'])).toEqual(['no-such-package-migralab']);
  });

  it('up refuses before starting anything, naming exactly what is missing and the command that installs it (exit 3)', async () => {
    const e = await checkOpenstackPackages(['dpkg', 'no-such-package-migralab']).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(MigralabError);
    expect((e as MigralabError).message).toContain('not installed: no-such-package-migralab. Install them with: bash scripts/setup.sh --openstack');
    expect((e as MigralabError).message).not.toContain('dpkg,');
    expect(exitCodeOf(e)).toBe(3);
  });
});
