import type { Settings } from '../../config/settings.ts';
import type { EffectiveTunables } from '../types.ts';
import type { Qmp } from './storage.ts';

type Tunables = Settings['tunables'];

/** QMP capabilities and parameters for the scenario's tunables (null/undefined: QEMU's default). */
export function tunablesFor(t: Tunables): { caps: { capability: string; state: boolean }[]; params: Record<string, number> } {
  const caps = [
    { capability: 'events', state: true },
    { capability: 'auto-converge', state: t.autoConverge },
    { capability: 'multifd', state: t.multifdChannels > 0 },
    { capability: 'postcopy-ram', state: t.postcopy },
  ];
  const params: Record<string, number> = {};
  if (t.maxBandwidth !== null) params['max-bandwidth'] = Math.floor(t.maxBandwidth / 8);
  if (t.downtimeLimitMs !== undefined) params['downtime-limit'] = t.downtimeLimitMs;
  if (t.multifdChannels > 0) params['multifd-channels'] = t.multifdChannels;
  return { caps, params };
}

/** What QEMU says is in effect, so a result shows the real settings, defaults included. */
export async function effectiveTunables(q: Qmp): Promise<EffectiveTunables> {
  const params = await q.execute<Record<string, unknown>>('query-migrate-parameters');
  const caps = await q.execute<{ capability: string; state: boolean }[]>('query-migrate-capabilities');
  const on = (c: string) => caps.find((x) => x.capability === c)?.state ?? false;
  return {
    maxBandwidthBytesPerSec: (params['max-bandwidth'] as number | undefined) ?? null,
    downtimeLimitMs: (params['downtime-limit'] as number | undefined) ?? null,
    multifdChannels: on('multifd') ? ((params['multifd-channels'] as number | undefined) ?? null) : 0,
    autoConverge: on('auto-converge'),
    postcopy: on('postcopy-ram'),
    tls: typeof params['tls-creds'] === 'string' && params['tls-creds'] !== '',
  };
}
