// portmap: publish container ports on the host (a chained plugin), as the
// reference portmap does, on nftables map elements through the host's typed
// portmap interface (host/kernel/portmap.ts has the table's layout).
//
//   ADD   runtimeConfig.portMappings -> one forward per mapping and container
//         address (first IPv4 and first IPv6 of CNI_IFNAME in prevResult),
//         plus hairpin/localhost masquerading (snat); prevResult unchanged
//   CHECK the kernel has every forward as the config asks (or, without
//         portMappings, everything this attachment added)
//   DEL   removes what this attachment added, as the host recorded it: the
//         runtime's portMappings are not needed
import {
  CniError, CniPlugin, CniResult, Hairpin, HostError, IP, IPNet, JSONValue, PortForward, PortForwards, Protocol, Request, Result,
  ERR_INTERNAL, ERR_INVALID_CONFIG, cniError, configDecodeError, hostFailure, parseCIDR, parseConfig, parseIP, portmap, registerPlugin,
} from "../sdk";

const DEFAULT_MARK_BIT: i32 = 13;

function invalid(msg: string): CniError {
  return cniError(ERR_INVALID_CONFIG, msg);
}

class Mapping {
  hostPort: i32 = 0;
  containerPort: i32 = 0;
  protocol: Protocol = Protocol.Tcp;
  /** null: every local address */
  hostIP: IP | null = null;
}

class PortmapConf {
  snat: bool = true;
  markMasqBit: i32 = DEFAULT_MARK_BIT;
  externalSetMarkChain: string = "";
  mappings: Array<Mapping> = new Array<Mapping>();
  sources4: Array<string> = new Array<string>();
  dests4: Array<string> = new Array<string>();
  sources6: Array<string> = new Array<string>();
  dests6: Array<string> = new Array<string>();
  prev: JSONValue | null = null;
  /** the container addresses the forwards go to (first IPv4, first IPv6) */
  ip4: IP | null = null;
  ip6: IP | null = null;
}

function kind(v: JSONValue): string {
  if (v.isString()) return "a string";
  if (v.isNumber()) return "a number";
  if (v.isBool()) return "a boolean";
  if (v.isArray()) return "a list";
  if (v.isObject()) return "an object";
  return "null";
}

function port(m: JSONValue, i: i32, key: string): Result<i32, CniError> {
  const where = "runtimeConfig.portMappings[" + i.toString() + "]." + key;
  const v = m.get(key);
  if (v === null || v.isNull()) return Result.failure<i32, CniError>(invalid(where + " is missing: a port from 1 to 65535 is needed"));
  if (!v.isNumber()) return Result.failure<i32, CniError>(invalid(where + " must be a number, not " + kind(v)));
  const n = v.asNumber();
  if (n != Math.floor(n) || n < 1 || n > 65535) {
    return Result.failure<i32, CniError>(invalid("Invalid " + (key == "hostPort" ? "host" : "container") + " port number: " + v.stringify() + " (" + where + " must be from 1 to 65535)"));
  }
  return Result.success<i32, CniError>(<i32>n);
}

function parseMapping(m: JSONValue, i: i32): Result<Mapping, CniError> {
  const where = "runtimeConfig.portMappings[" + i.toString() + "]";
  if (!m.isObject()) return Result.failure<Mapping, CniError>(invalid(where + " must be an object, not " + kind(m)));
  const out = new Mapping();
  const hp = port(m, i, "hostPort");
  if (!hp.ok) return Result.failure<Mapping, CniError>(hp.error!);
  const cp = port(m, i, "containerPort");
  if (!cp.ok) return Result.failure<Mapping, CniError>(cp.error!);
  out.hostPort = hp.value;
  out.containerPort = cp.value;
  const pv = m.get("protocol");
  if (pv !== null && !pv.isNull() && !pv.isString()) return Result.failure<Mapping, CniError>(invalid(where + ".protocol must be a string, not " + kind(pv!)));
  const p = m.getString("protocol").toLowerCase();
  if (p == "tcp") out.protocol = Protocol.Tcp;
  else if (p == "udp") out.protocol = Protocol.Udp;
  else if (p == "sctp") out.protocol = Protocol.Sctp;
  else return Result.failure<Mapping, CniError>(invalid(where + ".protocol \"" + m.getString("protocol") + "\" is not tcp, udp or sctp"));
  const hv = m.get("hostIP");
  if (hv !== null && !hv.isNull()) {
    if (!hv.isString()) return Result.failure<Mapping, CniError>(invalid(where + ".hostIP must be a string, not " + kind(hv!)));
    const s = hv.asString();
    if (s.length > 0) {
      const ip = parseIP(s);
      if (ip === null) return Result.failure<Mapping, CniError>(invalid(where + ".hostIP \"" + s + "\" is not an IP address"));
      out.hostIP = ip;
    }
  }
  return Result.success<Mapping, CniError>(out);
}

/** Splits condition strings into words, dropping nft's braces and list commas. */
function words(list: Array<JSONValue>): Array<string> {
  const out = new Array<string>();
  for (let i = 0; i < list.length; i++) {
    const s = list[i].asString();
    let cur = "";
    for (let j = 0; j < s.length; j++) {
      const c = s.charAt(j);
      if (c == " " || c == "\t" || c == "{" || c == "}" || c == ",") {
        if (c == "," && cur.length > 0) { cur += ","; continue; }
        if (cur.length > 0) out.push(cur);
        cur = "";
      } else cur += c;
    }
    if (cur.length > 0) out.push(cur);
  }
  return out;
}

/** "10.0.0.0/8" or an address (a host prefix), of the family; canonical network form. */
function cidrOf(s: string, family: i32): string | null {
  if (s.indexOf("/") < 0) {
    const ip = parseIP(s);
    if (ip === null || ip.family != family) return null;
    return ip.toString() + (family == 4 ? "/32" : "/128");
  }
  const n = parseCIDR(s);
  if (n === null || n.ip.family != family) return null;
  return n.networkCIDR();
}

/**
 * conditionsV4/V6: the reference passes iptables match text through. A typed
 * subset is accepted here: `-s`/`--source` and `-d`/`--destination` (or nft's
 * `ip saddr`/`ip daddr`, `ip6 ...`) with addresses or CIDRs, comma lists.
 */
function parseConditions(conf: JSONValue, key: string, family: i32, srcs: Array<string>, dsts: Array<string>): CniError | null {
  const v = conf.get(key);
  if (v === null || v.isNull()) return null;
  if (!v.isArray()) return invalid("\"" + key + "\" must be a list of strings, not " + kind(v));
  const arr = v.asArray();
  for (let i = 0; i < arr.length; i++) if (!arr[i].isString()) return invalid("\"" + key + "\"[" + i.toString() + "] must be a string, not " + kind(arr[i]));
  const w = words(arr);
  const ipw = family == 4 ? "ip" : "ip6";
  let sawS = false, sawD = false;
  for (let i = 0; i < w.length; i++) {
    let which = "";
    if (w[i] == "-s" || w[i] == "--source" || w[i] == "--src") which = "s";
    else if (w[i] == "-d" || w[i] == "--destination" || w[i] == "--dst") which = "d";
    else if (w[i] == ipw && i + 1 < w.length && (w[i + 1] == "saddr" || w[i + 1] == "daddr")) { which = w[i + 1] == "saddr" ? "s" : "d"; i++; }
    if (which == "" || i + 1 >= w.length) {
      return invalid("\"" + key + "\": unsupported condition \"" + w[i] + "\": only -s/--source and -d/--destination (or nft \"" + ipw +
        " saddr\"/\"" + ipw + " daddr\") followed by IPv" + family.toString() + " addresses or CIDRs are supported here");
    }
    if ((which == "s" && sawS) || (which == "d" && sawD)) return invalid("\"" + key + "\": more than one " + (which == "s" ? "source" : "destination") + " condition (list them with commas)");
    if (which == "s") sawS = true; else sawD = true;
    const items = w[++i].split(",");
    for (let j = 0; j < items.length; j++) {
      if (items[j].length == 0) continue;
      const c = cidrOf(items[j], family);
      if (c === null) return invalid("\"" + key + "\": \"" + items[j] + "\" is not an IPv" + family.toString() + " address or CIDR");
      if (which == "s") srcs.push(c!); else dsts.push(c!);
    }
  }
  return null;
}

function loadConf(req: Request, needPrev: bool, what: string): Result<PortmapConf, CniError> {
  const doc = parseConfig(req);
  if (doc === null) return Result.failure<PortmapConf, CniError>(configDecodeError());
  const c = new PortmapConf();
  const sn = doc.get("snat");
  if (sn !== null && !sn.isNull()) {
    if (!sn.isBool()) return Result.failure<PortmapConf, CniError>(invalid("failed to parse config: \"snat\" must be a boolean, not " + kind(sn!)));
    c.snat = sn.asBool();
  }
  const mb = doc.get("markMasqBit");
  const ex = doc.get("externalSetMarkChain");
  const hasMb = mb !== null && !mb.isNull(), hasEx = ex !== null && !ex.isNull();
  if (hasMb && hasEx) return Result.failure<PortmapConf, CniError>(invalid("failed to parse config: Cannot specify externalSetMarkChain and markMasqBit"));
  if (hasMb) {
    const n = mb!.asNumber();
    if (!mb!.isNumber() || n != Math.floor(n) || n < 0 || n > 31) return Result.failure<PortmapConf, CniError>(invalid("failed to parse config: MasqMarkBit must be between 0 and 31 (\"markMasqBit\": " + mb!.stringify() + ")"));
    c.markMasqBit = <i32>n;
  }
  if (hasEx) {
    if (!ex!.isString() || ex!.asString().length == 0) return Result.failure<PortmapConf, CniError>(invalid("failed to parse config: \"externalSetMarkChain\" must be a chain name"));
    c.externalSetMarkChain = ex!.asString();
  }
  let e = parseConditions(doc, "conditionsV4", 4, c.sources4, c.dests4);
  if (e === null) e = parseConditions(doc, "conditionsV6", 6, c.sources6, c.dests6);
  if (e !== null) return Result.failure<PortmapConf, CniError>(e!);

  const rc = doc.getObject("runtimeConfig");
  if (rc !== null) {
    const pm = rc.get("portMappings");
    if (pm !== null && !pm.isNull()) {
      if (!pm.isArray()) return Result.failure<PortmapConf, CniError>(invalid("runtimeConfig.portMappings must be a list, not " + kind(pm!)));
      const arr = pm.asArray();
      for (let i = 0; i < arr.length; i++) {
        const m = parseMapping(arr[i], i);
        if (!m.ok) return Result.failure<PortmapConf, CniError>(m.error!);
        c.mappings.push(m.value);
      }
    }
  }

  c.prev = doc.getObject("prevResult");
  if (c.prev === null) {
    if (needPrev) return Result.failure<PortmapConf, CniError>(cniError(ERR_INVALID_CONFIG, what));
    return Result.success<PortmapConf, CniError>(c);
  }
  // The container's addresses: the first of each family on CNI_IFNAME (or on no interface), as the reference picks them.
  const prev = CniResult.fromJSON(c.prev!);
  for (let i = 0; i < prev.ips.length; i++) {
    const ipc = prev.ips[i];
    const idx = ipc.iface;
    if (idx >= 0 && idx < prev.interfaces.length && (prev.interfaces[idx].name != req.ifname || prev.interfaces[idx].sandbox.length == 0)) continue;
    const n = parseCIDR(ipc.address);
    if (n === null) continue;
    if (n.ip.family == 4 && c.ip4 === null) c.ip4 = n.ip;
    if (n.ip.family == 6 && c.ip6 === null) c.ip6 = n.ip;
  }
  return Result.success<PortmapConf, CniError>(c);
}

/** The forwards and hairpins the config asks for. */
function wanted(c: PortmapConf): Result<PortForwards, CniError> {
  const out = new PortForwards();
  for (let i = 0; i < c.mappings.length; i++) {
    const m = c.mappings[i];
    const h = m.hostIP;
    if (h !== null && (h.family == 4 ? c.ip4 === null : c.ip6 === null)) {
      return Result.failure<PortForwards, CniError>(invalid("runtimeConfig.portMappings[" + i.toString() + "].hostIP " + h.toString() +
        " is IPv" + h.family.toString() + ", but the container has no IPv" + h.family.toString() + " address"));
    }
    for (let f = 4; f <= 6; f += 2) {
      const ip = f == 4 ? c.ip4 : c.ip6;
      if (ip === null) continue;
      if (h !== null && h.family != f) continue; // a host IP of the other family: not for this address
      const p = new PortForward();
      p.protocol = m.protocol;
      p.hostIp = h !== null ? h.toString() : "";
      p.hostPort = <u16>m.hostPort;
      p.containerIp = ip!.toString();
      p.containerPort = <u16>m.containerPort;
      p.sources = f == 4 ? c.sources4 : c.sources6;
      p.destinations = f == 4 ? c.dests4 : c.dests6;
      out.ports.push(p);
    }
  }
  if (c.snat && out.ports.length > 0) {
    for (let f = 4; f <= 6; f += 2) {
      const ip = f == 4 ? c.ip4 : c.ip6;
      if (ip === null) continue;
      const hp = new Hairpin();
      hp.containerIp = ip!.toString();
      hp.markBit = <u8>c.markMasqBit;
      hp.externalSetMarkChain = c.externalSetMarkChain;
      out.hairpins.push(hp);
    }
  }
  return Result.success<PortForwards, CniError>(out);
}

function forwardKey(a: PortForward): string {
  return (<i32>a.protocol).toString() + " " + a.hostIp + " " + a.hostPort.toString() + " " + a.containerIp + " " + a.containerPort.toString() +
    " " + a.sources.join(",") + " " + a.destinations.join(",");
}

/** What `have` holds that `want` does not (a port range is a thousand forwards: by key, not pairwise). */
function stale(have: PortForwards, want: PortForwards): PortForwards {
  const out = new PortForwards();
  const wanted = new Set<string>();
  for (let j = 0; j < want.ports.length; j++) wanted.add(forwardKey(want.ports[j]));
  for (let i = 0; i < have.ports.length; i++) {
    if (!wanted.has(forwardKey(have.ports[i]))) out.ports.push(have.ports[i]);
  }
  for (let i = 0; i < have.hairpins.length; i++) {
    const a = have.hairpins[i];
    let keep = false;
    for (let j = 0; j < want.hairpins.length && !keep; j++) {
      const b = want.hairpins[j];
      keep = a.containerIp == b.containerIp && a.markBit == b.markBit && a.externalSetMarkChain == b.externalSetMarkChain;
    }
    if (!keep) out.hairpins.push(a);
  }
  return out;
}

const fail = (doing: string, e: HostError): CniError => hostFailure(doing, e);

class Portmap extends CniPlugin {
  add(req: Request): Result<string, CniError> {
    const lc = loadConf(req, true, "must be called as chained plugin");
    if (!lc.ok) return Result.failure<string, CniError>(lc.error!);
    const c = lc.value;
    const w = wanted(c);
    if (!w.ok) return Result.failure<string, CniError>(w.error!);
    // A repeated ADD replaces what this attachment published before.
    const had = portmap.list();
    if (!had.ok) return Result.failure<string, CniError>(fail("failed to read this attachment's port forwards", had.error!));
    const old = stale(had.value, w.value);
    if (old.ports.length > 0 || old.hairpins.length > 0) {
      const e = portmap.del(old);
      if (e !== null) return Result.failure<string, CniError>(fail("failed to remove earlier port forwards", e));
    }
    if (w.value.ports.length > 0) {
      const e = portmap.add(w.value);
      if (e !== null) return Result.failure<string, CniError>(fail("failed to set up port forwarding", e));
    }
    return Result.success<string, CniError>(c.prev!.stringify());
  }

  del(req: Request): CniError | null {
    const lc = loadConf(req, false, "");
    if (!lc.ok) return lc.error;
    const had = portmap.list();
    if (!had.ok) return fail("failed to read this attachment's port forwards", had.error!);
    if (had.value.ports.length == 0 && had.value.hairpins.length == 0) return null;
    const e = portmap.del(had.value);
    if (e !== null) return fail("failed to remove port forwards", e);
    return null;
  }

  check(req: Request): CniError | null {
    const lc = loadConf(req, true, "Required prevResult missing");
    if (!lc.ok) return lc.error;
    const c = lc.value;
    let want: PortForwards;
    if (c.mappings.length > 0) {
      const w = wanted(c);
      if (!w.ok) return w.error;
      want = w.value;
    } else {
      const had = portmap.list();
      if (!had.ok) return fail("failed to read this attachment's port forwards", had.error!);
      want = had.value;
    }
    if (want.ports.length == 0 && want.hairpins.length == 0) return null;
    const r = portmap.check(want);
    if (!r.ok) return fail("failed to check port forwards", r.error!);
    if (r.value.length > 0) return cniError(ERR_INTERNAL, "portmap: missing port forwards: " + r.value.join("; "));
    return null;
  }
}

registerPlugin(new Portmap());
