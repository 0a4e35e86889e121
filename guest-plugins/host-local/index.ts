// host-local: addresses from configured ranges, leased in files under
// <dataDir>/<network>/ exactly as the reference plugin keeps them, so a node
// can switch between the two without losing or duplicating a lease.
//
// Differences from the reference, on purpose:
// - error codes: 7 for an invalid configuration and 4 for bad CNI_ARGS, where
//   the reference answers 999 for everything (the messages are the same);
// - `resolvConf` is read through the dns host function (the host parses the
//   file; only the policy's granted paths are readable);
// - ADD refuses a route without "dst" (code 7) instead of printing "<nil>";
// - GC (spec 1.1) releases the leases of attachments not in
//   cni.dev/valid-attachments (the reference has no GC).
import {
  CniError, CniPlugin, CniResult, IP, JSONValue, Level, Request, Resolver, Result, ResultRoute,
  ERR_INTERNAL, ERR_INVALID_CONFIG, cniError, dns, hostFailure, log, registerPlugin,
} from "../sdk";
import { IPAMConfig, loadIPAMConfig } from "./config";
import { LeaseStore, allocate } from "./allocator";
import { checkRoutes, goIPString, trimSpace } from "../sdk/gocompat";

/** filepath.Clean for an absolute dataDir (the host takes only clean absolute paths). */
function cleanPath(p: string): string {
  if (p.length == 0 || p.charCodeAt(0) != 0x2f) return p;
  const out = new Array<string>();
  const parts = p.split("/");
  for (let i = 0; i < parts.length; i++) {
    const c = parts[i];
    if (c.length == 0 || c == ".") continue;
    if (c == "..") { if (out.length > 0) out.pop(); continue; }
    out.push(c);
  }
  return "/" + out.join("/");
}

function openStore(conf: IPAMConfig, s: LeaseStore): CniError | null {
  const e = s.open(conf.name, cleanPath(conf.dataDir));
  if (e !== null) return hostFailure("failed to open the IPAM store for network " + conf.name, e);
  return null;
}

/** The config, with its network's store opened (and locked) in s. */
function loadAndOpen(req: Request, s: LeaseStore): Result<IPAMConfig, CniError> {
  const l = loadIPAMConfig(req);
  if (!l.ok) return l;
  const oe = openStore(l.value, s);
  return oe !== null ? Result.failure<IPAMConfig, CniError>(oe) : l;
}

function setList(o: JSONValue, key: string, xs: Array<string>): void {
  if (xs.length == 0) return;
  const a = JSONValue.newArray();
  for (let i = 0; i < xs.length; i++) a.push(JSONValue.fromString(xs[i]));
  o.set(key, a);
}

/** types.DNS: empty fields are left out, as Go's omitempty does. */
function resolverJSON(r: Resolver): JSONValue {
  const o = JSONValue.newObject();
  setList(o, "nameservers", r.nameservers);
  if (r.domain.length > 0) o.set("domain", JSONValue.fromString(r.domain));
  setList(o, "search", r.search);
  setList(o, "options", r.options);
  return o;
}

class HostLocal extends CniPlugin {
  add(req: Request): Result<string, CniError> {
    const l = loadIPAMConfig(req);
    if (!l.ok) return Result.failure<string, CniError>(l.error!);
    const conf = l.value;
    const re = checkRoutes(conf.routes);
    if (re.length > 0) return Result.failure<string, CniError>(cniError(ERR_INVALID_CONFIG, re));

    const result = new CniResult();
    if (conf.resolvConf.length > 0) {
      const r = dns.readResolvConf(conf.resolvConf);
      if (!r.ok) return Result.failure<string, CniError>(cniError(ERR_INTERNAL, r.error!.message, r.error!.code));
      result.dns = resolverJSON(r.value);
    }

    const s = new LeaseStore();
    const oe = openStore(conf, s);
    if (oe !== null) return Result.failure<string, CniError>(oe);

    // requested addresses, each once (the reference keys them by their text)
    const requested = new Array<IP>();
    for (let i = 0; i < conf.ipArgs.length; i++) {
      const ip = conf.ipArgs[i];
      let dup = false;
      for (let j = 0; j < requested.length; j++) if (requested[j].equals(ip)) dup = true;
      if (!dup) requested.push(ip);
    }

    let done = 0;
    for (let idx = 0; idx < conf.ranges.length; idx++) {
      const set = conf.ranges[idx];
      let want: IP | null = null;
      for (let j = 0; j < requested.length; j++) {
        if (set.contains(requested[j])) {
          want = requested[j];
          requested.splice(j, 1);
          break;
        }
      }
      const a = allocate(s, set, idx, req.containerId, req.ifname, want);
      const got = a.ip;
      if (got === null) {
        // give back what this call took (the reference releases by owner, once per range set done)
        for (let k = 0; k < done; k++) s.releaseByID(req.containerId, req.ifname);
        const he = a.hostErr;
        const why = he !== null ? he.message : a.err;
        return Result.failure<string, CniError>(cniError(ERR_INTERNAL, "failed to allocate for range " + idx.toString() + ": " + why, he !== null ? he.code : ""));
      }
      done++;
      result.ips.push(got);
    }

    if (requested.length > 0) {
      for (let k = 0; k < done; k++) s.releaseByID(req.containerId, req.ifname);
      let msg = "failed to allocate all requested IPs:";
      for (let j = 0; j < requested.length; j++) msg += " " + goIPString(requested[j]);
      return Result.failure<string, CniError>(cniError(ERR_INTERNAL, msg));
    }

    for (let i = 0; i < conf.routes.length; i++) {
      const rt = new ResultRoute();
      rt.dst = conf.routes[i].dst;
      rt.gw = conf.routes[i].gw;
      result.routes.push(rt);
    }
    return Result.success<string, CniError>(result.stringify());
  }

  del(req: Request): CniError | null {
    const s = new LeaseStore();
    const l = loadAndOpen(req, s);
    if (!l.ok) return l.error;
    const conf = l.value;
    // the reference releases once per range set; the second pass only ever
    // finds files from before ifname was recorded
    for (let i = 0; i < conf.ranges.length; i++) s.releaseByID(req.containerId, req.ifname);
    return null;
  }

  check(req: Request): CniError | null {
    const s = new LeaseStore();
    const l = loadAndOpen(req, s);
    if (!l.ok) return l.error;
    if (!s.findByID(req.containerId, req.ifname)) {
      return cniError(ERR_INTERNAL, "host-local: Failed to find address added by container " + req.containerId);
    }
    return null;
  }

  gc(req: Request): CniError | null {
    const l = loadIPAMConfig(req);
    if (!l.ok) return l.error;
    const conf = l.value;
    const valid = new Array<string>();
    const validIDs = new Array<string>();
    const list = conf.doc.getArray("cni.dev/valid-attachments");
    if (list !== null) {
      for (let i = 0; i < list.length; i++) {
        const id = trimSpace(list[i].getString("containerID"));
        valid.push(id + "\r\n" + list[i].getString("ifname"));
        validIDs.push(id);
      }
    }
    const s = new LeaseStore();
    const oe = openStore(conf, s);
    if (oe !== null) return oe;
    const released = s.releaseAllExcept(valid, validIDs);
    if (released.length > 0) log.write(Level.Info, "host-local: GC released " + released.join(", "));
    return null;
  }
}

registerPlugin(new HostLocal());
