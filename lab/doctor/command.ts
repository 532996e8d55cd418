import { loadTopology } from '../config/topology.ts';
import { driverNames, type DriverName } from '../config/scenario.ts';
import { parseSize } from '../config/size.ts';
import { MigralabError } from '../errors.ts';
import { providerFor } from '../provision/providers.ts';
import { planLab } from '../provision/plan.ts';
import { createDriver } from '../migrate/registry.ts';
import { formatChecks, runDoctor, type Check } from './checks.ts';

/** `migralab doctor`: raise the lab if needed, start what the drivers need, run the checks. */
export async function doctorCommand(o: {
  topologyFile: string;
  drivers: string[];
  disk: string;
  diskData: string;
  diskOverCommit?: boolean;
  keepLab?: boolean;
  signal?: AbortSignal;
  progress?: (m: string) => void;
}): Promise<{ checks: Check[]; failed: Check[]; text: string }> {
  for (const d of o.drivers) if (!(driverNames as readonly string[]).includes(d)) throw new MigralabError('USAGE', `--driver: expected one of ${driverNames.join(', ')}, got "${d}"`);
  const diskBytes = parseSize(o.disk);
  const diskDataBytes = parseSize(o.diskData);
  if (diskBytes === undefined) throw new MigralabError('USAGE', `--disk: expected a size like 512MiB, got "${o.disk}"`);
  if (diskDataBytes === undefined) throw new MigralabError('USAGE', `--disk-data: expected a size like 200MiB, got "${o.diskData}"`);
  const t = await loadTopology(o.topologyFile);
  const provider = providerFor(t);
  // A lab that is up is examined as it is, broken or not; one that is down is raised for the checks.
  const lab = (await provider.attach(planLab(t))) ?? (await provider.up(t, o.topologyFile, o.progress, o.signal));
  try {
    for (const d of o.drivers) await createDriver(d as DriverName, lab, o.progress);
    const checks = await runDoctor(lab, { drivers: o.drivers as DriverName[], diskBytes, diskDataBytes, diskOverCommit: o.diskOverCommit });
    return { checks, failed: checks.filter((c) => c.status === 'fail'), text: formatChecks(checks) };
  } finally {
    if (!lab.alreadyUp && !o.keepLab) await lab.down();
    lab.release();
  }
}
