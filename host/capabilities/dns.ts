// dns: the settings of a resolv.conf file, parsed here so that a plugin
// learns nameservers and search domains, never the file's text or anything
// else on the disk. Parsed as the reference host-local does.
import { readFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { type CallContext, type HostInterface, HostError, always } from '../gate/gate.js';

interface Resolver { nameservers: string[]; domain: string; search: string[]; options: string[] }

function check(ctx: CallContext, path: string): string | null {
  const g = ctx.plugin.grants.dns;
  if (!isAbsolute(path)) return `resolv.conf path '${path}' must be absolute`;
  const paths = g === true || !g ? [] : g.paths ?? [];
  return paths.includes('*') || paths.includes(path) ? null : `reading '${path}' is not in the plugin's granted "dns": {"paths"}`;
}

export function parseResolvConf(text: string): Resolver {
  const r: Resolver = { nameservers: [], domain: '', search: [], options: [] };
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line[0] === '#' || line[0] === ';') continue;
    const f = line.split(/\s+/);
    if (f.length < 2) continue;
    if (f[0] === 'nameserver') r.nameservers.push(f[1]);
    else if (f[0] === 'domain') r.domain = f[1];
    else if (f[0] === 'search') r.search.push(...f.slice(1));
    else if (f[0] === 'options') r.options.push(...f.slice(1));
  }
  return r;
}

export const dns: HostInterface = {
  readResolvConf: {
    grant: always('dns'), check, reads: true,
    run: (_ctx, path: string) => {
      let text: string;
      try {
        text = readFileSync(path, 'utf8');
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        // Go's wording, as the reference host-local reports it
        const why = err.code === 'ENOENT' ? 'no such file or directory' : err.code === 'EACCES' ? 'permission denied' : err.message;
        throw new HostError(err.code ?? 'EIO', `open ${path}: ${why}`);
      }
      return parseResolvConf(text);
    },
  },
};
