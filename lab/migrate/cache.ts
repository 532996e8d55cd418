/**
 * What the guest-start caches beside the guest image on a node share (the booted snapshots of
 * lab/migrate/qemu/snapshot.ts, the data disks of lab/migrate/disks.ts): a file is made once
 * (guests starting at once wait for the same making), touched when used, and the least
 * recently used beyond a count are removed, with temporary files a killed run left behind.
 */
import type { LabNode } from '../provision/provider.ts';

/** Whether `file` is cached on `node` (not empty); a hit is touched, so pruning keeps it. */
export async function cachedFile(node: LabNode, file: string): Promise<boolean> {
  if ((await node.transport.run(['test', '-s', file], { check: false })).exitCode !== 0) return false;
  await node.transport.run(['touch', '-c', file], { check: false });
  return true;
}

/** Keeps the `keep` most recently used files matching `glob` in `dir`, and removes its `*.tmp-*` files older than an hour. */
export async function pruneCache(node: LabNode, dir: string, glob: string, keep: number): Promise<void> {
  await node.transport.run(
    ['sh', '-c', `cd "$1" || exit 0; ls -1t -- ${glob} 2>/dev/null | tail -n +${keep + 1} | while read -r f; do rm -f -- "$f"; done; find . -maxdepth 1 -name '*.tmp-*' -mmin +60 -delete`, 'sh', dir],
    { check: false },
  );
}

/** `make()` once per `id` at a time: callers asking for an `id` being made get the same promise. */
export function once<T>(inFlight: Map<string, Promise<T>>, id: string, make: () => Promise<T>): Promise<T> {
  let p = inFlight.get(id);
  if (!p) {
    p = make().finally(() => inFlight.delete(id));
    inFlight.set(id, p);
  }
  return p;
}
