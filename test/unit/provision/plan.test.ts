import { describe, it, expect } from 'vitest';
import { loadTopology } from '../../../lab/config/topology.ts';
import { planLab, hostsFile } from '../../../lab/provision/plan.ts';

describe('lab plan', async () => {
  const t = await loadTopology('scenarios/topologies/two-node.lab.yaml');
  const plan = planLab(t);
  it('puts everything of the lab under its state directory', () => {
    expect(plan.labDir).toBe('/var/lib/migralab/migralab');
    expect(plan.ledgerFile).toBe('/var/lib/migralab/migralab.ledger.json');
    expect(plan.nfsServer.name).toBe('controller');
    expect(plan.nfsServer.instancesDir).toBe('/var/lib/migralab/migralab/nodes/controller/instances');
    expect(plan.nodes.map((n) => n.netns)).toEqual(['mlab-migralab-controller', 'mlab-migralab-compute1']);
    expect(plan.instanceAddress(0)).toBe('10.77.0.100');
  });
  it('gives every node a hosts file naming the others', () => {
    const h = hostsFile(plan, 'compute1');
    expect(h).toContain('10.77.0.11\tcontroller');
    expect(h).toContain('10.77.0.12\tcompute1');
  });
});
