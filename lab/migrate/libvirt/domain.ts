/** One libvirt domain on one node, by name: what the libvirt and nova drivers both ask of it. */
import type { LabNode } from '../../provision/provider.ts';

export const VIRSH = ['virsh', '-c', 'qemu:///system'] as const;

/** libvirt's state of the domain (`running`, `paused`, ...); `gone` when the node has no such domain, `shutdown` when it is off. */
export async function domainState(node: LabNode, domain: string): Promise<string> {
  const r = await node.transport.run([...VIRSH, 'domstate', domain], { check: false });
  if (r.exitCode !== 0) return 'gone';
  const s = r.stdout.trim();
  return s === 'shut off' || s === 'in shutdown' ? 'shutdown' : s;
}

/** Sends a signal to the domain's QEMU, by the PID libvirt recorded (in the node's private /run): fault injection. */
export async function signalDomain(node: LabNode, domain: string, sig: NodeJS.Signals): Promise<void> {
  const r = await node.transport.run(['cat', `/run/libvirt/qemu/${domain}.pid`], { check: false });
  const pid = Number(r.stdout.trim());
  if (Number.isInteger(pid) && pid > 0) await node.transport.process(pid).signal(sig);
}
