// dns: the settings of a resolv.conf file, parsed here so that a plugin
// learns nameservers and search domains, never the file's text or anything
// else on the disk. Parsed as the reference host-local does.
//
// objects: arg `path` names a host file, right: read (its DNS settings only);
// only a path the plugin's dns grant lists. The file is read as
// host/sandbox/files.ts reads: a regular file (no FIFO, device, directory),
// never through a symlink, opened non-blocking, at most MAX_RESOLV_CONF_BYTES.
import { isAbsolute } from 'node:path';
import { type CallContext, type HostInterface, HostError, always } from '../gate/gate.js';
import { readRegularFile } from '../sandbox/files.js';
import type { Resolver } from '../wit.js';

/** glibc reads far less; a resolv.conf larger than this is not one */
export const MAX_RESOLV_CONF_BYTES = 64 * 1024;
/** entries of each list handed to the guest */
const MAX_ENTRIES = 64;


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
        // Go's wording for ENOENT/EACCES, as the reference host-local reports it
        text = readRegularFile(path, { maxBytes: MAX_RESOLV_CONF_BYTES, what: 'resolv.conf' }).toString('utf8');
      } catch (e) {
        const err = e as { code?: string; message?: string };
        throw new HostError(err.code ?? 'EIO', String(err.message ?? e));
      }
      const r = parseResolvConf(text);
      r.nameservers = r.nameservers.slice(0, MAX_ENTRIES);
      r.search = r.search.slice(0, MAX_ENTRIES);
      r.options = r.options.slice(0, MAX_ENTRIES);
      return r;
    },
  },
};
