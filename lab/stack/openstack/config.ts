/**
 * The openstack profile's configuration files, as text (pure): what a devstack controller
 * and compute have, with the workarounds DESIGN.md's hand run wrote down. Every service
 * listens on its node's lab address only; the host names are the lab's own (/etc/hosts).
 */

/** Ports the services listen on (the usual ones). */
export const PORTS = {
  mysql: 3306,
  rabbit: 5672,
  /** Erlang's distribution port (rabbitmqctl talks to the node through it). */
  rabbitDist: 25672,
  epmd: 4369,
  keystone: 5000,
  glance: 9292,
  placement: 8778,
  neutron: 9696,
  nova: 8774,
} as const;

/** nova's serial-console ports on each compute (the guests' serial ports listen there, on the node's lab address). */
export const SERIAL_PORT_RANGE = '10000:10099';

/** The services' database and keystone users: one name per service, a password each (per lab). */
export const SERVICES = ['keystone', 'placement', 'glance', 'neutron', 'nova'] as const;
export type ServiceName = (typeof SERVICES)[number];

export interface Secrets {
  /** keystone's admin (the bootstrap user). */
  admin: string;
  rabbit: string;
  db: Record<ServiceName, string>;
  /** keystone users of the services (service project). */
  user: Record<ServiceName, string>;
}

export interface StackContext {
  /** The controller's host name and lab address. */
  controller: string;
  controllerAddress: string;
  secrets: Secrets;
  /** nova-compute handles libvirt's lifecycle events (topology openstack.novaLifecycleEvents; default false). */
  novaLifecycleEvents?: boolean;
}

const ini = (sections: Record<string, Record<string, string | number | boolean | undefined>>): string =>
  Object.entries(sections)
    .map(([name, kv]) => {
      const lines = Object.entries(kv)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => `${k} = ${v}`);
      return `[${name}]\n${lines.join('\n')}\n`;
    })
    .join('\n');

const header = '# Written by migralab for its openstack lab profile; removed with the lab.\n';

/** SQL that creates every service's database and user (one mariadb call). */
export function databaseSql(s: Secrets): string {
  const dbs: [string, ServiceName][] = [
    ['keystone', 'keystone'],
    ['placement', 'placement'],
    ['glance', 'glance'],
    ['neutron', 'neutron'],
    ['nova_api', 'nova'],
    ['nova', 'nova'],
    ['nova_cell0', 'nova'],
  ];
  const q = (v: string) => `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  const out: string[] = [];
  for (const svc of SERVICES) out.push(`CREATE USER IF NOT EXISTS ${q(svc)}@'%' IDENTIFIED BY ${q(s.db[svc])};`);
  for (const [db, svc] of dbs) out.push(`CREATE DATABASE IF NOT EXISTS ${db};`, `GRANT ALL PRIVILEGES ON ${db}.* TO ${q(svc)}@'%';`);
  out.push('FLUSH PRIVILEGES;');
  return `${out.join('\n')}\n`;
}

/** mariadbd's options: a private data directory and socket, the lab address only, small buffers. */
export function mariadbArgs(o: { datadir: string; socket: string; address: string; pidFile: string; logError: string }): string[] {
  return [
    '--no-defaults',
    `--datadir=${o.datadir}`,
    `--socket=${o.socket}`,
    `--pid-file=${o.pidFile}`,
    `--log-error=${o.logError}`,
    `--bind-address=${o.address}`,
    `--port=${PORTS.mysql}`,
    '--user=root',
    '--skip-name-resolve',
    '--max-connections=1000',
    '--innodb-buffer-pool-size=64M',
    // the databases are thrown away with the lab: no fsync per commit
    '--innodb-flush-log-at-trx-commit=0',
    '--character-set-server=utf8mb4',
    '--collation-server=utf8mb4_general_ci',
  ];
}

/** rabbitmq.conf: the lab address only, the services' user as the default user. */
export function rabbitmqConf(c: StackContext): string {
  return [
    header.trimEnd(),
    `listeners.tcp.1 = ${c.controllerAddress}:${PORTS.rabbit}`,
    'default_vhost = /',
    'default_user = openstack',
    `default_pass = ${c.secrets.rabbit}`,
    'default_permissions.configure = .*',
    'default_permissions.read = .*',
    'default_permissions.write = .*',
    'loopback_users = none',
    'management.tcp.port = 0',
    '',
  ].join('\n');
}

/** Environment of rabbitmq-server and rabbitmqctl: everything under `dir`, bound to the lab address. */
export function rabbitmqEnv(c: StackContext, dir: string): Record<string, string> {
  const ip = c.controllerAddress.split('.').join(',');
  return {
    HOME: dir,
    RABBITMQ_NODENAME: `rabbit@${c.controller}`,
    RABBITMQ_CONFIG_FILE: `${dir}/rabbitmq.conf`,
    RABBITMQ_MNESIA_BASE: `${dir}/mnesia`,
    RABBITMQ_LOG_BASE: `${dir}/log`,
    RABBITMQ_ENABLED_PLUGINS_FILE: `${dir}/enabled_plugins`,
    RABBITMQ_PID_FILE: `${dir}/rabbitmq.pid`,
    RABBITMQ_DIST_PORT: String(PORTS.rabbitDist),
    ERL_EPMD_ADDRESS: c.controllerAddress,
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: `-kernel inet_dist_use_interface {${ip}}`,
    RABBITMQ_CTL_ERL_ARGS: `-kernel inet_dist_use_interface {${ip}}`,
  };
}

export const transportUrl = (c: StackContext) => `rabbit://openstack:${c.secrets.rabbit}@${c.controller}:${PORTS.rabbit}/`;
const dbUrl = (c: StackContext, svc: ServiceName, db: string = svc) => `mysql+pymysql://${svc}:${c.secrets.db[svc]}@${c.controller}/${db}`;
export const keystoneUrl = (c: StackContext) => `http://${c.controller}:${PORTS.keystone}/v3`;

/** [keystone_authtoken] (and the like) of a service's keystone user. */
function authSection(c: StackContext, svc: ServiceName) {
  return {
    www_authenticate_uri: `http://${c.controller}:${PORTS.keystone}/`,
    auth_url: `http://${c.controller}:${PORTS.keystone}/`,
    auth_type: 'password',
    project_domain_name: 'Default',
    user_domain_name: 'Default',
    project_name: 'service',
    username: svc,
    password: c.secrets.user[svc],
    // no memcached in the lab: each service keeps its own token cache
    memcached_servers: undefined,
  };
}

/** admin-openrc, as devstack writes it: `. admin-openrc && openstack server list` inside the controller. */
export function adminOpenrc(c: StackContext): string {
  return [
    '# migralab openstack profile: the admin of this lab (source it inside the controller)',
    `export OS_AUTH_URL=${keystoneUrl(c)}`,
    'export OS_IDENTITY_API_VERSION=3',
    'export OS_USERNAME=admin',
    `export OS_PASSWORD=${c.secrets.admin}`,
    'export OS_PROJECT_NAME=admin',
    'export OS_USER_DOMAIN_ID=default',
    'export OS_PROJECT_DOMAIN_ID=default',
    'export OS_REGION_NAME=RegionOne',
    '',
  ].join('\n');
}

export function keystoneConf(c: StackContext): string {
  return (
    header +
    ini({
      DEFAULT: { use_stderr: true, log_file: undefined },
      database: { connection: dbUrl(c, 'keystone') },
      token: { provider: 'fernet' },
      cache: { enabled: false },
      // bcrypt's fewest rounds: every token request checks a password, and these are a throwaway lab's
      identity: { password_hash_algorithm: 'bcrypt', password_hash_rounds: 4 },
    })
  );
}

export function placementConf(c: StackContext): string {
  return (
    header +
    ini({
      DEFAULT: { use_stderr: true },
      placement_database: { connection: dbUrl(c, 'placement') },
      api: { auth_strategy: 'keystone' },
      keystone_authtoken: authSection(c, 'placement'),
    })
  );
}

/**
 * uwsgi for a WSGI service (keystone, placement), on the lab address only. `Connection: close`:
 * kept-alive POSTs were reset (DESIGN.md); --die-on-term: SIGTERM stops it (uwsgi would reload);
 * --no-orphans: workers go when the master does.
 */
export function uwsgiArgs(o: { wsgiFile: string; address: string; port: number; processes?: number }): string[] {
  return [
    '--plugin',
    'python3',
    '--http-socket',
    `${o.address}:${o.port}`,
    '--wsgi-file',
    o.wsgiFile,
    '--master',
    '--die-on-term',
    '--no-orphans',
    '--processes',
    String(o.processes ?? 1),
    '--threads',
    '4',
    '--add-header',
    'Connection: close',
    '--buffer-size',
    '65535',
    '--lazy-apps',
    '--disable-logging',
  ];
}

export function glanceApiConf(c: StackContext): string {
  return (
    header +
    ini({
      DEFAULT: { use_stderr: true, bind_host: c.controllerAddress, bind_port: PORTS.glance, workers: 1, enabled_backends: 'file:file' },
      database: { connection: dbUrl(c, 'glance') },
      keystone_authtoken: authSection(c, 'glance'),
      paste_deploy: { flavor: 'keystone' },
      glance_store: { default_backend: 'file' },
      file: { filesystem_store_datadir: '/var/lib/glance/images/' },
      // image import's staging area (glance refuses to start without one for the file store)
      os_glance_staging_store: { filesystem_store_datadir: '/var/lib/glance/staging/' },
      os_glance_tasks_store: { filesystem_store_datadir: '/var/lib/glance/tasks/' },
      oslo_concurrency: { lock_path: '/var/lib/glance/tmp' },
    })
  );
}

/** neutron.conf: ML2 only (no L3, no DHCP), nova told about ports as they go up. api_workers = 1 (DESIGN.md: Zed's port list fails in a cold worker). */
export function neutronConf(c: StackContext): string {
  return (
    header +
    ini({
      DEFAULT: {
        use_stderr: true,
        bind_host: c.controllerAddress,
        bind_port: PORTS.neutron,
        core_plugin: 'ml2',
        service_plugins: '',
        auth_strategy: 'keystone',
        transport_url: transportUrl(c),
        api_workers: 1,
        rpc_workers: 1,
        rpc_state_report_workers: 0,
        notify_nova_on_port_status_changes: true,
        notify_nova_on_port_data_changes: true,
        dhcp_agent_notification: false,
        state_path: '/var/lib/neutron',
      },
      agent: { root_helper: 'env', report_interval: 5 },
      database: { connection: dbUrl(c, 'neutron') },
      keystone_authtoken: authSection(c, 'neutron'),
      nova: { ...authSection(c, 'nova'), region_name: 'RegionOne', www_authenticate_uri: undefined },
      oslo_concurrency: { lock_path: '/var/lib/neutron/tmp' },
      experimental: { linuxbridge: true },
    })
  );
}

/** ml2_conf.ini: one flat provider network, linuxbridge, port security available (the guests' ports turn it off). */
export function ml2Conf(): string {
  return (
    header +
    ini({
      ml2: { type_drivers: 'flat', tenant_network_types: '', mechanism_drivers: 'linuxbridge', extension_drivers: 'port_security' },
      ml2_type_flat: { flat_networks: 'provider' },
      securitygroup: { enable_security_group: false, firewall_driver: 'noop' },
    })
  );
}

/**
 * The provider network's way onto a compute node's lab bridge: a veth pair, one end in the
 * node's br0, the other given to the linuxbridge agent as the provider's physical interface.
 * (Zed's linuxbridge mechanism driver does not tell nova about an agent's bridge_mappings, so
 * nova plugs guests into the agent's own brq<network> bridge; the agent joins this interface to it.)
 */
export const PROVIDER_IF = { agent: 'ml-provider', bridge: 'ml-provider-br' } as const;

/** The bridge neutron's linuxbridge agent (and nova, through os-vif) plugs a network's ports into: brq + the network id's first 11 characters. */
export function linuxbridgeName(networkId: string): string {
  return `brq${networkId.slice(0, 11)}`;
}

/** linuxbridge_agent.ini: the provider network on PROVIDER_IF, no VXLAN, no firewall. */
export function linuxbridgeAgentConf(iface: string = PROVIDER_IF.agent): string {
  return (
    header +
    ini({
      linux_bridge: { physical_interface_mappings: `provider:${iface}` },
      vxlan: { enable_vxlan: false },
      securitygroup: { enable_security_group: false, firewall_driver: 'noop' },
      agent: { root_helper: 'env', report_interval: 5 },
    })
  );
}

/**
 * nova.conf of a node: the controller's (API, conductor, scheduler, and its nova-compute)
 * and the other computes' are the same file but for the node's own address and host name.
 * The tutorial's settings: TCP live migration, a vfat config drive on every guest, the
 * instances at /opt/stack/data/nova/instances; virt_type = qemu (TCG here).
 */
export function novaConf(c: StackContext, node: { name: string; address: string }, instancesPath: string): string {
  return (
    header +
    ini({
      DEFAULT: {
        use_stderr: true,
        host: node.name,
        my_ip: node.address,
        transport_url: transportUrl(c),
        state_path: '/var/lib/nova',
        instances_path: instancesPath,
        compute_driver: 'libvirt.LibvirtDriver',
        enabled_apis: 'osapi_compute',
        osapi_compute_listen: c.controllerAddress,
        osapi_compute_listen_port: PORTS.nova,
        osapi_compute_workers: 1,
        force_config_drive: true,
        config_drive_format: 'vfat',
        // ports without DHCP or a metadata service: the config drive carries the network
        flat_injected: false,
        vif_plugging_is_fatal: true,
        vif_plugging_timeout: 60,
        // nothing else runs on these hosts: never refuse a guest for the host's own memory
        reserved_host_memory_mb: 0,
        ram_allocation_ratio: 4.0,
        disk_allocation_ratio: 4.0,
        rootwrap_config: '/etc/nova/rootwrap.conf',
        heal_instance_info_cache_interval: -1,
      },
      api: { auth_strategy: 'keystone' },
      api_database: { connection: dbUrl(c, 'nova', 'nova_api') },
      database: { connection: dbUrl(c, 'nova') },
      keystone_authtoken: authSection(c, 'nova'),
      placement: { ...authSection(c, 'placement'), region_name: 'RegionOne', www_authenticate_uri: undefined },
      neutron: { ...authSection(c, 'neutron'), region_name: 'RegionOne', www_authenticate_uri: undefined },
      glance: { region_name: 'RegionOne' },
      service_user: { send_service_user_token: false },
      libvirt: {
        virt_type: 'qemu',
        cpu_mode: 'none',
        live_migration_scheme: 'tcp',
        live_migration_inbound_addr: node.address,
        // the lab's small guests converge at once; do not let nova cap the bandwidth
        live_migration_bandwidth: 0,
      },
      vnc: { enabled: false },
      spice: { enabled: false },
      // the guests' serial ports as TCP listeners on the node's lab address: the second is the
      // guest's control shell (the nova driver asks for two with the image's hw_serial_port_count)
      serial_console: { enabled: true, proxyclient_address: node.address, port_range: SERIAL_PORT_RANGE },
      scheduler: { discover_hosts_in_cells_interval: 2, workers: 1 },
      conductor: { workers: 1 },
      compute: { live_migration_wait_for_vif_plug: true },
      // off unless the topology asks (openstack.novaLifecycleEvents): nova's early port-binding
      // activation on the source's migration-completed event races its post-migration
      // activation, and Zed's neutron fails the loser with a 500, which puts the server in ERROR
      workarounds: { handle_virt_lifecycle_events: c.novaLifecycleEvents ?? false },
      oslo_concurrency: { lock_path: '/var/lib/nova/tmp' },
      os_vif_linux_bridge: { use_ipv6: false },
    })
  );
}

/**
 * `mount` and `umount` for a compute node whose kernel has no vfat (this machine kind). nova
 * makes its vfat config drive with `mkfs.vfat`, then `mount -o loop,uid=..,gid=.. IMAGE DIR`,
 * copies the files into DIR, and `umount DIR`. Here that one loop mount of a vfat image leaves
 * DIR a plain directory and notes the image; its umount copies DIR into the image with mtools
 * (`mcopy -s`, as migralab makes its own config drives). The image nova attaches is the same
 * vfat file system the kernel would have written. fusefat was tried first: it lacks chmod and
 * utime, which nova's copy needs. Every other mount and umount is the real program's. Bound
 * over /usr/bin/mount and /usr/bin/umount in the node's own mount namespace only.
 */
export function vfatMountWrappers(o: { realMount: string; realUmount: string; stateDir: string }): { mount: string; umount: string } {
  const q = (v: string) => `'${v.replace(/'/g, `'\\''`)}'`;
  const key = (v: string) => `${q(o.stateDir)}/"$(printf %s "${v}" | tr / _)"`;
  return {
    mount: `#!/bin/sh
# migralab: nova's vfat config drive on a kernel without vfat (see lab/stack/openstack/config.ts)
if [ "$#" -eq 4 ] && [ "$1" = "-o" ] && ! grep -qw vfat /proc/filesystems; then
  case "$2" in
    loop|loop,*)
      if [ "$(blkid -o value -s TYPE "$3" 2>/dev/null)" = vfat ] && [ -d "$4" ]; then
        mkdir -p ${q(o.stateDir)} && printf '%s\n' "$3" > ${key('$4')} && exit 0
        exit 32
      fi ;;
  esac
fi
exec ${q(o.realMount)} "$@"
`,
    umount: `#!/bin/sh
# migralab: the other half of the vfat config drive (see lab/stack/openstack/config.ts)
if [ "$#" -eq 1 ] && [ -f ${key('$1')} ]; then
  image=$(cat ${key('$1')})
  if [ -n "$(ls -A "$1")" ]; then MTOOLS_SKIP_CHECK=1 mcopy -s -Q -i "$image" "$1"/* ::/ || exit 32; fi
  rm -f ${key('$1')}
  exit 0
fi
exec ${q(o.realUmount)} "$@"
`,
  };
}
