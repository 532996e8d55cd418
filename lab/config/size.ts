const units: Record<string, number> = {
  B: 1,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
  K: 1024,
  M: 1024 ** 2,
  G: 1024 ** 3,
};

/** "256MiB" -> 268435456; undefined when the text is not a size. */
export function parseSize(text: string | number): number | undefined {
  if (typeof text === 'number') return Number.isInteger(text) && text >= 0 ? text : undefined;
  const m = /^\s*(\d+)\s*(B|KiB|MiB|GiB|K|M|G)?\s*$/.exec(text);
  if (!m) return undefined;
  return Number(m[1]) * units[m[2] ?? 'B']!;
}

export function formatBytes(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(2)} GiB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

const prefixes: Record<string, number> = {
  '': 1,
  k: 1e3,
  m: 1e6,
  g: 1e9,
  t: 1e12,
  ki: 1024,
  mi: 1024 ** 2,
  gi: 1024 ** 3,
  ti: 1024 ** 4,
};

/**
 * A rate as people write it, in bits per second. Bits: `100Mbit`, `500kbit`, `1Gbit`,
 * `10Mbit/s`, `10Mb/s`, `1Mibit` (prefix case does not matter; `Ki`/`Mi` are binary),
 * or a bare number (bits, as tc reads it). Bytes: `12MiB/s`, `5MB/s` (the capital B
 * and the `/s` are required). `bps`/`Mbps` are refused: tc reads them as bytes, most
 * people as bits, and an 8x error is worse than an error. Undefined on bad input.
 */
export function parseRate(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?|\.\d+)\s*(?:([kKmMgGtT]i?)?([bB][iI][tT](?:\/s)?|b\/s|B\/s))?$/.exec(text.trim());
  if (!m) return undefined;
  const [, num, prefix = '', unit] = m;
  const factor = prefixes[prefix.toLowerCase()];
  if (factor === undefined) return undefined;
  const bits = Number(num) * factor * (unit === 'B/s' ? 8 : 1);
  if (!Number.isFinite(bits) || bits < 1) return undefined;
  return Math.round(bits);
}
