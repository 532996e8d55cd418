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

const rateUnits: Record<string, number> = {
  bit: 1,
  kbit: 1e3,
  Mbit: 1e6,
  Gbit: 1e9,
  'B/s': 8,
  'KiB/s': 8 * 1024,
  'MiB/s': 8 * 1024 ** 2,
  'GiB/s': 8 * 1024 ** 3,
};

/** "100Mbit" or "12MiB/s" -> bits per second; undefined when the text is not a rate. */
export function parseRateBits(text: string | number): number | undefined {
  if (typeof text === 'number') return text > 0 ? text : undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(bit|kbit|Mbit|Gbit|B\/s|KiB\/s|MiB\/s|GiB\/s)\s*$/.exec(text);
  if (!m) return undefined;
  const v = Number(m[1]) * rateUnits[m[2]!]!;
  return v > 0 ? v : undefined;
}
