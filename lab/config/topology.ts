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

/** How to reach a host over ssh (provider: ssh); every field may also be given once for all hosts. */
const sshSchema = z.strictObject({
  /** Host name or address to connect to (default: the node's address). */
  host: z.string().min(1).optional(),
  port: z.number().int().min(1).max(65535).optional(),
  user: z.string().min(1).optional(),
  /** Private key file; without it, the SSH agent (SSH_AUTH_SOCK). */
  identityFile: absPath.optional(),
  /** An OpenSSH known_hosts file with the hosts' keys... */
  knownHosts: absPath.optional(),
  /** ...or the host key's fingerprint, as `ssh-keygen -lf` prints it: SHA256:... */
  hostKey: z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}$/, { error: 'expected a fingerprint like SHA256: followed by 43 base64 characters' }).optional(),
  /** Connect from inside this network namespace of this machine (a lab's own hosts). */
  viaNetns: z.string().regex(/^[A-Za-z0-9_.-]+$/, { error: 'expected a network namespace name' }).optional(),
});

const nodeSchema = z.strictObject({
  name,
  roles: z.array(z.enum(roles, { error: `expected one of ${roles.join(', ')}` })).min(1, { error: 'expected at least one role' }),
  /** The node's address on the lab network (the guests' network; what the other nodes' /etc/hosts say). */
  address: ipv4,
  /** Where this node keeps instance disks; local default <state>/<lab>/nodes/<name>/instances, ssh default the tutorial's /opt/stack/data/nova/instances. */
  instancesDir: absPath.optional(),
  /** provider ssh: how to reach this host. */
  ssh: sshSchema.optional(),
  /** provider ssh: the bridge guests' taps join (default br0). */
  bridge: z.string().regex(/^[A-Za-z0-9_.-]{1,15}$/, { error: 'expected an interface name' }).default('br0'),
});

export const topologySchema = z
  .strictObject({
    name,
    /** local: network namespaces on this host; ssh: existing hosts, set up over ssh2 and reverted by down. */
    provider: z.enum(['local', 'ssh'], { error: 'expected local or ssh' }).default('local'),
    /** provider ssh: defaults for every host's `ssh`. */
    ssh: sshSchema.optional(),
    /** provider local: what the lab runs. nfs: false and sshd: true make bare hosts for the ssh provider's tests. */
    services: z.strictObject({ nfs: z.boolean().default(true), sshd: z.boolean().default(false) }).prefault({}),
    /**
     * What else the lab runs. openstack: a devstack-style OpenStack (Debian 12's Zed packages,
     * `bash scripts/setup.sh --openstack`): MariaDB, RabbitMQ, keystone, placement, glance, neutron
     * and nova's control services on the nfs-server node, libvirtd and nova-compute on every compute node.
     */
    stack: z.enum(['none', 'openstack'], { error: 'expected none or openstack' }).default('none'),
    /** stack: openstack, its settings. */
    openstack: z
      .strictObject({
        /**
         * nova's reaction to libvirt's lifecycle events ([workarounds] handle_virt_lifecycle_events).
         * Off by default: on a live migration's completion event nova-compute activates the
         * destination's port binding while its post-migration step activates it too, and Zed's
         * neutron answers the second, concurrent call with a 500 (not the 409 nova handles), so
         * nova marks the migration error and the server ERROR (seen here on the first migration of
         * a run). true brings the race back, on purpose.
         */
        novaLifecycleEvents: z.boolean({ error: 'expected true or false' }).default(false),
      })
      .prefault({}),
    cidr: z.string({ error: 'expected a CIDR like 10.77.0.0/24' }).refine((s) => parseCidr(s) !== undefined, {
      error: 'expected an IPv4 CIDR like 10.77.0.0/24 (prefix 8..30, no host bits)',
    }),
    switch: z.strictObject({ name }).default({ name: 'switch' }),
    /** Where ping runs. local: its own namespace; ssh: this machine, or inside `netns` on it. */
    observer: z.strictObject({ name, address: ipv4, netns: z.string().regex(/^[A-Za-z0-9_.-]+$/).optional() }),
    nodes: z.array(nodeSchema, { error: 'expected a list of nodes' }).min(2, { error: 'expected at least two nodes' }),
    /** First host index (in the CIDR) handed to instances. */
    instanceAddressStart: z.number().int().min(1).default(100),
    paths: z
      .strictObject({
        state: absPath.default('/var/lib/migralab'),
        imageCache: absPath.default('/var/cache/migralab/images'),
        /** QEMU builds unpacked from Debian's packages (hypervisor.qemu: debian-<version>). */
        qemuCache: absPath.default('/var/cache/migralab/qemu'),
        /** provider ssh: migralab's own directory on each host (its ledger, backups, image, run files). */
        remoteState: absPath.default('/var/lib/migralab-remote'),
      })
      .prefault({}),
    nfs: z
      .strictObject({
        /** 3 is what QEMU's nfs:// driver speaks; 4 for kernel clients that prefer it. */
        version: z.union([z.literal(3), z.literal(4)], { error: 'expected 3 or 4' }).default(3),
        /** provider ssh with kernel nfsd: the /etc/exports options of the instances directory. */
        exportOptions: z.string().default('rw,sync,no_root_squash,no_subtree_check'),
      })
      .prefault({}),
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
    if (t.provider === 'ssh')
      t.nodes.forEach((n, i) => {
        const user = n.ssh?.user ?? t.ssh?.user;
        if (!user) ctx.addIssue({ code: 'custom', path: ['nodes', i, 'ssh', 'user'], message: 'expected the user to log in as (here or in the top-level ssh)' });
        if (!(n.ssh?.knownHosts ?? t.ssh?.knownHosts) && !n.ssh?.hostKey)
          ctx.addIssue({ code: 'custom', path: ['nodes', i, 'ssh'], message: 'expected knownHosts (here or in the top-level ssh) or a pinned hostKey: host keys are always verified' });
      });
    if (t.stack === 'openstack' && t.provider !== 'local')
      ctx.addIssue({ code: 'custom', path: ['stack'], message: 'expected provider local: the openstack profile runs in the local lab only for now (on real hosts, run devstack and point the nova driver at it)' });
    if (t.stack !== 'openstack' && t.openstack.novaLifecycleEvents)
      ctx.addIssue({ code: 'custom', path: ['openstack'], message: 'expected stack: openstack with openstack settings' });
    if (t.stack === 'openstack' && (!t.services.nfs || t.services.sshd))
      ctx.addIssue({ code: 'custom', path: ['services'], message: 'expected the default services (nfs: true, sshd: false) with stack: openstack' });
    if (t.paths.state.startsWith('/run/') || t.paths.state === '/run')
      ctx.addIssue({ code: 'custom', path: ['paths', 'state'], message: 'expected a path outside /run (each node mounts a private /run)' });
  });

export type Topology = z.output<typeof topologySchema>;
export type TopologyNode = Topology['nodes'][number];

export function loadTopology(file: string): Promise<Topology> {
  return loadConfigFile(file, topologySchema);
}
