import type { StartedLab } from './provider.ts';
import { libvirtDirs } from '../migrate/libvirt/daemon.ts';

export interface Listener {
  node: string;
  /** address:port the socket is bound to */
  address: string;
  program: string;
  /** the configuration file behind it, where migralab wrote one */
  config?: string;
}

/** Every TCP socket listening in the lab's nodes, with what listens and its configuration (`migralab status`). */
export async function listeners(lab: StartedLab): Promise<Listener[]> {
  const out: Listener[] = [];
  for (const n of lab.nodes) {
    const r = await n.transport.run(['ss', '-Hltnp'], { check: false });
    for (const line of r.stdout.split('\n').filter(Boolean)) {
      const f = line.trim().split(/\s+/);
      const address = f[3] ?? '';
      const program = /users:\(\("([^"]+)"/.exec(line)?.[1] ?? '?';
      const config = program === 'libvirtd' ? `/etc/libvirt/libvirtd.conf = ${libvirtDirs(n).conf}` : program === 'ganesha.nfsd' ? `${n.plan.dir}/ganesha.conf` : undefined;
      out.push({ node: n.name, address, program, ...(config ? { config } : {}) });
    }
  }
  return out;
}
