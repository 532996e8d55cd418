import { describe, it, expect } from 'vitest';
import { exportsWithExport, formatPlan, hostsWithNodes, lineDiff } from '../../../lab/provision/ssh.ts';

const nodes = [
  { name: 'controller', address: '10.77.0.11' },
  { name: 'compute1', address: '10.77.0.12' },
];

describe('the ssh provider\'s changes, as text', () => {
  it('adds only the /etc/hosts entries that are missing, and nothing when none is', () => {
    const mine = '127.0.0.1\tlocalhost\n10.77.0.12\tcompute1\n';
    const after = hostsWithNodes(mine, 'lab1', nodes);
    expect(after.startsWith(mine)).toBe(true);
    expect(after.slice(mine.length)).toBe('# migralab lab1: the lab\'s nodes by name, as the live-migration tutorial has them\n10.77.0.11\tcontroller\n');
    expect(hostsWithNodes(after, 'lab1', nodes)).toBe(after);
    // an entry with aliases counts, a commented one does not
    expect(hostsWithNodes('10.77.0.11 controller.lab controller\n10.77.0.12 compute1\n', 'l', nodes)).toBe('10.77.0.11 controller.lab controller\n10.77.0.12 compute1\n');
    expect(hostsWithNodes('#10.77.0.11 controller\n10.77.0.12 compute1', 'l', nodes)).toMatch(/\n10\.77\.0\.11\tcontroller\n$/);
  });

  it('exports the instances directory once', () => {
    const e = exportsWithExport('/srv/other *(ro)\n', '/opt/stack/data/nova/instances', '10.77.0.0/24', 'rw,sync,no_root_squash');
    expect(e).toBe('/srv/other *(ro)\n/opt/stack/data/nova/instances 10.77.0.0/24(rw,sync,no_root_squash)\n');
    expect(exportsWithExport(e, '/opt/stack/data/nova/instances', '10.77.0.0/24', 'rw')).toBe(e);
  });

  it('shows a change as the lines it removes and adds', () => {
    expect(lineDiff('a\nb\nc\n', 'a\nb\nx\ny\nc\n')).toEqual(['+ x', '+ y']);
    expect(lineDiff('a\nold\nz', 'a\nnew\nz')).toEqual(['- old', '+ new']);
    const text = formatPlan([
      {
        node: 'controller',
        login: 'root@h:22',
        nfsServer: 'kernel',
        missing: [{ program: 'exportfs', pkg: 'nfs-kernel-server' }],
        changes: [
          { kind: 'file', path: '/etc/hosts', existed: true, before: 'a\n', after: 'a\nb\n' },
          { kind: 'service', name: 'ganesha', argv: ['ganesha.nfsd', '-F'], logFile: '/l' },
          { kind: 'mount', source: 'controller:/x', target: '/x', options: 'vers=3' },
        ],
        notes: [],
      },
    ]);
    expect(text).toContain('change /etc/hosts:\n    + b');
    expect(text).toContain('apt-get install -y nfs-kernel-server');
    expect(text).toContain('start ganesha: ganesha.nfsd -F');
    expect(text).toContain('mount -t nfs -o vers=3 controller:/x /x');
  });
});
