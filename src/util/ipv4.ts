/** IPv4 arithmetic for BOSH manual networks (ip + netmask → subnet). */
export function parseIpv4(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return undefined;
    value = value * 256 + Number(p);
  }
  return value;
}

export const formatIpv4 = (value: number): string =>
  [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');

/** Prefix length of a netmask such as 255.255.255.0, or undefined when it is not contiguous. */
export function netmaskToPrefix(netmask: string): number | undefined {
  const value = parseIpv4(netmask);
  if (value === undefined) return undefined;
  const bits = value.toString(2).padStart(32, '0');
  if (!/^1*0*$/.test(bits)) return undefined;
  return bits.indexOf('0') === -1 ? 32 : bits.indexOf('0');
}

export function prefixToNetmask(prefix: number): string {
  return formatIpv4(prefix === 0 ? 0 : (2 ** 32 - 2 ** (32 - prefix)) >>> 0);
}

/** "10.0.0.17" + "255.255.255.0" → "10.0.0.0/24". */
export function subnetOf(ip: string, netmask: string): string | undefined {
  const address = parseIpv4(ip);
  const prefix = netmaskToPrefix(netmask);
  if (address === undefined || prefix === undefined) return undefined;
  const size = 2 ** (32 - prefix);
  return `${formatIpv4(Math.floor(address / size) * size)}/${prefix}`;
}

export function subnetContains(cidr: string, ip: string): boolean {
  const [base = '', prefixText = ''] = cidr.split('/');
  const start = parseIpv4(base);
  const address = parseIpv4(ip);
  const prefix = Number(prefixText);
  if (start === undefined || address === undefined || !Number.isInteger(prefix)) return false;
  const size = 2 ** (32 - prefix);
  return Math.floor(address / size) === Math.floor(start / size);
}
