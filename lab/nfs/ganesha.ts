import { join } from 'node:path';
import type { NodeTransport, ProcessHandle } from '../exec/transport.ts';
import { waitFor } from '../time/wait.ts';

export interface ExportSpec {
  /** Directory exported (addressed by this real path over NFSv3). */
  path: string;
  /** Only this network may mount, e.g. the lab CIDR. */
  clients: string;
  /** Address the server binds to (the node's lab address, never a wildcard). */
  bindAddress: string;
  versions: (3 | 4)[];
}

/** nfs-ganesha configuration: one VFS export, rw + no_root_squash for the lab CIDR only, TCP only. */
export function ganeshaConfig(e: ExportSpec): string {
  const protocols = e.versions.join(', ');
  return `# written by migralab: do not edit
NFS_CORE_PARAM {
  Protocols = ${protocols};
  Bind_addr = ${e.bindAddress};
  Enable_NLM = false;
  Enable_RQUOTA = false;
  Enable_UDP = false;
}
NFSV4 {
  Graceless = true;
}
# No cached directory entries: an instance directory removed and made again under the
# same name (a second run on a kept lab) otherwise resolves to the old, deleted directory
# (NFS3ERR_NOENT for every file in it).
MDCACHE {
  Dir_Chunk = 0;
}
EXPORT_DEFAULTS {
  Access_Type = None;
}
EXPORT {
  Export_Id = 1;
  Path = ${e.path};
  Pseudo = ${e.path};
  Protocols = ${protocols};
  Transports = TCP;
  Access_Type = None;
  Squash = No_Root_Squash;
  SecType = sys;
  # The controller's own QEMU writes these files locally, behind ganesha's back:
  # cached attributes (the file size) would hide clusters it appended from NFS readers.
  Attr_Expiration_Time = 0;
  FSAL {
    Name = VFS;
  }
  CLIENT {
    Clients = ${e.clients};
    Access_Type = RW;
  }
}
`;
}

export interface StartedProcess {
  name: string;
  pid: number;
}

/**
 * Starts rpcbind (NFSv3 needs it in the same namespace, first) and ganesha on the
 * server node, inside its private /run and /var/lib/nfs. `beforeStart` is called
 * with each process name before it is started (ledger), `started` with its PID.
 */
export async function startGanesha(
  node: NodeTransport,
  spec: ExportSpec,
  dir: string,
  hooks: { beforeStart(name: string): Promise<unknown>; started(slot: unknown, proc: ProcessHandle): Promise<void> },
): Promise<StartedProcess[]> {
  const conf = join(dir, 'ganesha.conf');
  await node.writeFile(conf, ganeshaConfig(spec));
  await node.run(['mkdir', '-p', '/run/rpcbind', '/run/ganesha', '/var/lib/nfs/ganesha']);
  const out: StartedProcess[] = [];
  if (spec.versions.includes(3)) {
    await node.run(['chown', '_rpc', '/run/rpcbind'], { check: false });
    const argv = rpcbindArgv(spec.bindAddress, await rpcbindListeners(node, spec.bindAddress));
    const slot = await hooks.beforeStart('rpcbind');
    const proc = await node.spawn(argv, { logFile: join(dir, 'rpcbind.log') });
    await hooks.started(slot, proc);
    out.push({ name: 'rpcbind', pid: proc.pid });
    await waitFor('rpcbind to answer', async () => (await node.run(['rpcinfo', '-p', '127.0.0.1'], { check: false })).exitCode === 0, {
      timeoutMs: 5000,
      intervalMs: 20,
    });
  }
  out.push(await spawnGanesha(node, spec, dir, hooks));
  return out;
}

/**
 * rpcbind's command line. Its -h binds only its UDP side; its TCP side listens on every
 * address (0.0.0.0 and [::], which on a lab node includes IPv6 link-local addresses on the
 * lab's own links). Handed sockets by systemd-socket-activate instead (`listeners`), it binds
 * TCP to the lab address and loopback only, and uses no socket of its own for TCP.
 */
export function rpcbindArgv(address: string, listeners: string[] | undefined): string[] {
  const rpcbind = ['rpcbind', '-f', '-w', '-h', address];
  if (!listeners) return rpcbind;
  return ['systemd-socket-activate', ...listeners.flatMap((l) => ['-l', l]), ...rpcbind];
}

/**
 * The sockets rpcbind gets from systemd-socket-activate on this node (the lab address, the
 * loopback addresses this node has, the local socket), or undefined where the node has no
 * systemd-socket-activate (rpcbind then binds its own TCP sockets, on every address).
 */
export async function rpcbindListeners(node: NodeTransport, address: string): Promise<string[] | undefined> {
  if ((await node.run(['sh', '-c', 'command -v systemd-socket-activate'], { check: false })).exitCode !== 0) return undefined;
  const v6 = (await node.run(['ip', '-6', '-o', 'addr', 'show', 'dev', 'lo'], { check: false })).stdout.includes('::1/128');
  return [`${address}:111`, '127.0.0.1:111', ...(v6 ? ['[::1]:111'] : []), '/run/rpcbind.sock'];
}

/** Starts ganesha.nfsd alone with the configuration startGanesha wrote (also: again, after it was killed). */
export async function spawnGanesha(
  node: NodeTransport,
  spec: ExportSpec,
  dir: string,
  hooks: { beforeStart(name: string): Promise<unknown>; started(slot: unknown, proc: ProcessHandle): Promise<void> },
): Promise<StartedProcess> {
  const conf = join(dir, 'ganesha.conf');
  // ganesha creates its log world-readable; one that exists already keeps our 0600 (it only appends).
  await node.run(['sh', '-c', 'umask 077 && touch "$1"', 'sh', join(dir, 'ganesha.log')]);
  const slot = await hooks.beforeStart('ganesha');
  const proc = await node.spawn(['ganesha.nfsd', '-F', '-L', join(dir, 'ganesha.log'), '-f', conf, '-p', '/run/ganesha/ganesha.pid', '-N', 'NIV_EVENT'], {
    logFile: join(dir, 'ganesha.out'),
  });
  await hooks.started(slot, proc);
  await waitFor(
    `ganesha to listen on ${spec.bindAddress}:2049 (see ${join(dir, 'ganesha.log')})`,
    async () => {
      const ss = await node.run(['ss', '-Hltn', 'sport', '=', ':2049'], { check: false });
      if (!ss.stdout.includes('2049')) return false;
      if (!spec.versions.includes(3)) return true;
      const rpc = await node.run(['rpcinfo', '-p', '127.0.0.1'], { check: false });
      return /\b100005\b/.test(rpc.stdout) && /\b100003\b/.test(rpc.stdout);
    },
    { timeoutMs: 15_000, intervalMs: 25 },
  );
  return { name: 'ganesha', pid: proc.pid };
}
