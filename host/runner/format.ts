// What the runner prints. Without a terminal, exactly what cnitool prints
// (scripts that parsed cnitool's output keep working): for ADD the result as
// Go's result.Print() writes it (json.MarshalIndent with four spaces, no
// trailing newline; 1.x results marshalled from a map, so keys sorted, and
// an empty "dns" left out; 0.x results in struct order with "dns" always),
// nothing for the other commands. On a terminal, a short summary for people.
import { convertResult } from '../cni/convert.js';
import { isSupportedVersion, resultFamily } from '../cni/versions.js';
import { goMarshal } from './gojson.js';

export function cnitoolResult(result: Record<string, unknown>): string {
  const v = String(result.cniVersion ?? '');
  const sorted = !isSupportedVersion(v) || resultFamily(v) === '100';
  const dns = result.dns as Record<string, unknown> | undefined;
  const shown = sorted && dns && typeof dns === 'object' && Object.keys(dns).length === 0 ? (({ dns: _d, ...rest }) => rest)(result) : result;
  return goMarshal(shown, { sort: sorted, indent: '    ' });
}

/** A few lines: the interfaces, addresses and routes of an ADD result. */
export function summarize(network: string, netns: string, containerId: string, result: Record<string, unknown>, cacheFile: string): string {
  const r = convertResult(result, '1.1.0') as {
    interfaces?: Array<{ name: string; mac?: string; sandbox?: string }>;
    ips?: Array<{ interface?: number; address: string; gateway?: string }>;
    routes?: Array<{ dst: string; gw?: string }>;
    dns?: { nameservers?: string[]; search?: string[]; domain?: string };
  };
  const lines = [`${network}: added ${containerId} (${netns}), CNI ${String(result.cniVersion)}`];
  const ifs = r.interfaces ?? [];
  ifs.forEach((i, n) => {
    const addrs = (r.ips ?? []).filter((ip) => ip.interface === n).map((ip) => ip.address + (ip.gateway ? ` gw ${ip.gateway}` : ''));
    lines.push(`  ${i.sandbox ? 'container' : 'host     '} ${i.name.padEnd(15)} ${i.mac ?? ''}${addrs.length ? '  ' + addrs.join(', ') : ''}`);
  });
  const loose = (r.ips ?? []).filter((ip) => ip.interface === undefined || ip.interface >= ifs.length);
  for (const ip of loose) lines.push(`  address   ${ip.address}${ip.gateway ? ` gw ${ip.gateway}` : ''}`);
  if (r.routes?.length) lines.push(`  routes    ${r.routes.map((x) => x.dst + (x.gw ? ` via ${x.gw}` : '')).join(', ')}`);
  if (r.dns && (r.dns.nameservers?.length || r.dns.search?.length || r.dns.domain)) {
    lines.push(`  dns       ${[...(r.dns.nameservers ?? []), ...(r.dns.domain ? [`domain ${r.dns.domain}`] : []), ...(r.dns.search?.length ? [`search ${r.dns.search.join(' ')}`] : [])].join(', ')}`);
  }
  lines.push(`  cached in ${cacheFile}`);
  return lines.join('\n') + '\n';
}
