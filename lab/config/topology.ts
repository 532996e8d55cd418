import { z } from 'zod';
import { parseCidr, inCidr } from '../net/address.ts';
import { loadConfigFile } from './load.ts';

const name = z
  .string({ error: 'expected a name' })
  .regex(/^[a-z][a-z0-9-]{0,14}$/, { error: 'expected a short name: lowercase letters, digits and "-", starting with a letter, at most 15 characters' });

const ipv4 = z.string({ error: 'expected an IPv4 address like 10.77.0.11' }).regex(/^\d{1,3}(\.\d{1,3}){3}$/, {
  error: 'expected an IPv4 address like 10.77.0.11',
});

const absPath = z.string({ error: 'expected an absolute path' }).regex(/^\/[^\0]*$/, { error: 'expected an absolute path' });

export const roles = ['nfs-server', 'nfs-client', 'compute'] as const;

const nodeSchema = z.strictObject({
  name,
  roles: z.array(z.enum(roles, { error: `expected one of ${roles.join(', ')}` })).min(1, { error: 'expected at least one role' }),
  address: ipv4,
  /** Where this node keeps instance disks; default <state>/<lab>/nodes/<name>/instances. */
  instancesDir: absPath.optional(),
});

export const topologySchema = z
  .strictObject({
    name,
    provider: z.literal('local', { error: 'expected "local" (the ssh provider is not built yet)' }).default('local'),
    cidr: z.string({ error: 'expected a CIDR like 10.77.0.0/24' }).refine((s) => parseCidr(s) !== undefined, {
      error: 'expected an IPv4 CIDR like 10.77.0.0/24 (prefix 8..30, no host bits)',
    }),
    switch: z.strictObject({ name }).default({ name: 'switch' }),
    observer: z.strictObject({ name, address: ipv4 }),
    nodes: z.array(nodeSchema, { error: 'expected a list of nodes' }).min(2, { error: 'expected at least two nodes' }),
    /** First host index (in the CIDR) handed to instances. */
    instanceAddressStart: z.number().int().min(1).default(100),
    paths: z
      .strictObject({
        state: absPath.default('/var/lib/migralab'),
        imageCache: absPath.default('/var/cache/migralab/images'),
        /** QEMU builds unpacked from Debian's packages (hypervisor.qemu: debian-<version>). */
        qemuCache: absPath.default('/var/cache/migralab/qemu'),
      })
      .prefault({}),
    nfs: z
      .strictObject({
        /** 3 is what QEMU's nfs:// driver speaks; 4 for kernel clients that prefer it. */
        version: z.union([z.literal(3), z.literal(4)], { error: 'expected 3 or 4' }).default(3),
      })
      .default({ version: 3 }),
  })
  .superRefine((t, ctx) => {
    const cidr = parseCidr(t.cidr);
    if (!cidr) return;
    const seen = new Map<string, string>();
    const check = (ip: string, path: PropertyKey[], who: string) => {
      if (!inCidr(ip, cidr)) ctx.addIssue({ code: 'custom', path, message: `expected an address inside ${t.cidr}` });
      const other = seen.get(ip);
      if (other) ctx.addIssue({ code: 'custom', path, message: `address ${ip} is already used by ${other}` });
      seen.set(ip, who);
    };
    check(t.observer.address, ['observer', 'address'], 'the observer');
    const names = new Set<string>([t.switch.name, t.observer.name]);
    t.nodes.forEach((n, i) => {
      check(n.address, ['nodes', i, 'address'], n.name);
      if (names.has(n.name)) ctx.addIssue({ code: 'custom', path: ['nodes', i, 'name'], message: `name "${n.name}" is already used` });
      names.add(n.name);
    });
    const servers = t.nodes.filter((n) => n.roles.includes('nfs-server'));
    if (servers.length !== 1)
      ctx.addIssue({ code: 'custom', path: ['nodes'], message: `expected exactly one node with role nfs-server (found ${servers.length})` });
    const computes = t.nodes.filter((n) => n.roles.includes('compute'));
    if (computes.length < 2) ctx.addIssue({ code: 'custom', path: ['nodes'], message: 'expected at least two nodes with role compute' });
    if (t.paths.state.startsWith('/run/') || t.paths.state === '/run')
      ctx.addIssue({ code: 'custom', path: ['paths', 'state'], message: 'expected a path outside /run (each node mounts a private /run)' });
  });

export type Topology = z.output<typeof topologySchema>;
export type TopologyNode = Topology['nodes'][number];

export function loadTopology(file: string): Promise<Topology> {
  return loadConfigFile(file, topologySchema);
}
