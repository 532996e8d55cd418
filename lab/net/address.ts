/** Pure IPv4 helpers for the lab's addressing plan. */

export function ipToInt(ip: string): number | undefined {
  const parts = ip.split('.');
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return undefined;
    const v = Number(p);
    if (v > 255) return undefined;
    n = n * 256 + v;
  }
  return n;
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export interface Cidr {
  network: number;
  prefix: number;
}

export function parseCidr(text: string): Cidr | undefined {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(text);
  if (!m) return undefined;
  const ip = ipToInt(m[1]!);
  const prefix = Number(m[2]);
  if (ip === undefined || prefix < 8 || prefix > 30) return undefined;
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  if ((ip & mask) >>> 0 !== ip) return undefined; // host bits set
  return { network: ip, prefix };
}

/** True when ip is a usable host address (not network, not broadcast) of cidr. */
export function inCidr(ip: string, cidr: Cidr): boolean {
  const n = ipToInt(ip);
  if (n === undefined) return false;
  const size = 2 ** (32 - cidr.prefix);
  return n > cidr.network && n < cidr.network + size - 1;
}

/** The host address at offset `index` of the cidr (1 = first host). */
export function hostAt(cidr: Cidr, index: number): string {
  const size = 2 ** (32 - cidr.prefix);
  if (index < 1 || index >= size - 1) throw new Error(`host index ${index} outside /${cidr.prefix}`);
  return intToIp(cidr.network + index);
}

/** A locally administered unicast MAC derived from an IPv4 address: `oui` (default 52:54:00, QEMU's) + last three octets. */
export function macFor(ip: string, oui = '52:54:00'): string {
  const n = ipToInt(ip);
  if (n === undefined) throw new Error(`bad ip ${ip}`);
  return [oui, ...[(n >>> 16) & 255, (n >>> 8) & 255, n & 255].map((v) => v.toString(16).padStart(2, '0'))].join(':');
}

/**
 * The fixed MAC of a node's bridge, derived from the node's address. A Linux bridge whose
 * address was never set takes the lowest MAC among its ports and changes it as guest taps
 * come and go; peers keep the old one in their neighbour cache (and a TCP socket retrying
 * its SYN keeps using it), so connections to the node stalled for up to a minute.
 */
export function bridgeMacFor(ip: string): string {
  return macFor(ip, '02:6d:6c');
}
