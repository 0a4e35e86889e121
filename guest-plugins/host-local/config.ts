// host-local's configuration: the ipam section of the network config (ranges,
// the legacy single range, routes, dataDir, resolvConf), requested addresses
// from CNI_ARGS "IP=", args.cni.ips and runtimeConfig.ips, and
// runtimeConfig.ipRanges — read and validated as the reference plugin's
// LoadIPAMConfig does, with its messages.
import {
  CniError, IP, IPNet, JSONValue, Request, Result, ERR_INVALID_CONFIG, ERR_INVALID_ENV, cniError, configDecodeError, parseConfig,
} from "../sdk";
import {
  ARG_IP, Decoder, GoCIDR, cniParseIP, goIPString, goParseCIDR, loadEnvArgs, matchField, versionAtLeast,
  ConfRoute, decodeRoute, decodeSubnet,
} from "../sdk/gocompat";

/** One allocatable range: a subnet, the first and last address to hand out, and its gateway. */
export class Range {
  subnet: GoCIDR | null = null;
  rangeStart: IP | null = null;
  rangeEnd: IP | null = null;
  gateway: IP | null = null;

  /** Only valid after canonicalize(). */
  get start(): IP { return this.rangeStart!; }
  get end(): IP { return this.rangeEnd!; }
  get gw(): IP { return this.gateway!; }
  get prefix(): i32 { return this.subnet!.prefix; }
  get family(): i32 { return this.subnet!.ip.family; }

  /** "<subnet>/<prefix>" as written (after canonicalize: the network address). */
  subnetString(): string { return this.subnet!.toString(); }

  /** Fills in the defaults and checks the range; returns "" or the reference's message. */
  canonicalize(): string {
    const sn = this.subnet;
    if (sn === null) return "IP <nil> not v4 nor v6";
    // A /31 or /32 (/127, /128) has no address to give out.
    if (sn.prefix > sn.bits - 2) return "Network " + sn.toString() + " too small to allocate from";
    // "::ffff:10.0.0.0/120": an IPv4 address with an IPv6 mask
    if (sn.ip.family == 4 && sn.bits == 128) return "IPNet IP and Mask version mismatch";
    const network = new IPNet(sn.ip, sn.prefix).network();
    if (!network.equals(sn.ip)) {
      return "Network has host bits set. For a subnet mask of length " + sn.prefix.toString() +
        " the network address is " + goIPString(network);
    }
    if (this.gateway === null) this.gateway = network.next();
    const rs = this.rangeStart;
    if (rs !== null) {
      if (!this.contains(rs)) return "RangeStart " + goIPString(rs) + " not in network " + this.subnetString();
    } else {
      this.rangeStart = network.next();
    }
    const re = this.rangeEnd;
    if (re !== null) {
      if (!this.contains(re)) return "RangeEnd " + goIPString(re) + " not in network " + this.subnetString();
    } else {
      this.rangeEnd = lastIP(sn);
    }
    return "";
  }

  /** Whether addr is in the subnet and between rangeStart and rangeEnd (when set). */
  contains(addr: IP): bool {
    const sn = this.subnet;
    if (sn === null || addr.family != sn.ip.family) return false;
    if (!new IPNet(sn.ip, sn.prefix).contains(addr)) return false;
    const rs = this.rangeStart;
    if (rs !== null && addr.compare(rs) < 0) return false;
    const re = this.rangeEnd;
    if (re !== null && addr.compare(re) > 0) return false;
    return true;
  }

  overlaps(o: Range): bool {
    if (this.start.family != o.start.family) return false;
    return this.contains(o.start) || this.contains(o.end) || o.contains(this.start) || o.contains(this.end);
  }

  toString(): string { return goIPString(this.start) + "-" + goIPString(this.end); }
}

/** The last address of the subnet; for IPv4 the one before the broadcast address. */
function lastIP(sn: GoCIDR): IP {
  const b = new IPNet(sn.ip, sn.prefix).broadcast();
  if (b.family == 4) b.bytes[15] = b.bytes[15] - 1;
  return b;
}

/** Ranges that together make one address per attachment (one IP family). */
export class RangeSet {
  ranges: Array<Range> = new Array<Range>();

  canonicalize(): string {
    const rs = this.ranges;
    if (rs.length == 0) return "empty range set";
    let fam = 0;
    for (let i = 0; i < rs.length; i++) {
      const e = rs[i].canonicalize();
      if (e.length > 0) return e;
      if (i == 0) fam = rs[i].start.family;
      else if (fam != rs[i].start.family) return "mixed address families";
    }
    for (let i = 0; i < rs.length - 1; i++) {
      for (let j = i + 1; j < rs.length; j++) {
        if (rs[i].overlaps(rs[j])) return "subnets " + rs[i].toString() + " and " + rs[j].toString() + " overlap";
      }
    }
    return "";
  }

  rangeFor(addr: IP): Range | null {
    for (let i = 0; i < this.ranges.length; i++) if (this.ranges[i].contains(addr)) return this.ranges[i];
    return null;
  }
  contains(addr: IP): bool { return this.rangeFor(addr) !== null; }

  overlaps(o: RangeSet): bool {
    for (let i = 0; i < this.ranges.length; i++) {
      for (let j = 0; j < o.ranges.length; j++) if (this.ranges[i].overlaps(o.ranges[j])) return true;
    }
    return false;
  }

  toString(): string {
    const parts = new Array<string>();
    for (let i = 0; i < this.ranges.length; i++) parts.push(this.ranges[i].toString());
    return parts.join(",");
  }
}

export class IPAMConfig {
  name: string = "";
  cniVersion: string = "";
  dataDir: string = "";
  resolvConf: string = "";
  ranges: Array<RangeSet> = new Array<RangeSet>();
  routes: Array<ConfRoute> = new Array<ConfRoute>();
  /** requested addresses (canonical), in the order CNI_ARGS, args.cni.ips, runtimeConfig.ips */
  ipArgs: Array<IP> = new Array<IP>();
  /** the whole network config document */
  doc: JSONValue = JSONValue.nul();
}

/** Decoded config, or the CNI error that stopped decoding. */
export type Loaded = Result<IPAMConfig, CniError>;

function fail(code: u32, msg: string): Loaded {
  return Result.failure<IPAMConfig, CniError>(cniError(code, msg));
}

// ---- decoding (encoding/json's rules: key order, case-insensitive names, null) ----

const RANGE_FIELDS: Array<string> = ["rangeStart", "rangeEnd", "subnet", "gateway"];

/** Sets one Range field from key `name`; false when the name is no Range field. */
function decodeRangeField(d: Decoder, r: Range, name: string, v: JSONValue, struct: string, path: string): void {
  if (name == "subnet") r.subnet = decodeSubnet(d, v, struct, path + ".subnet");
  else if (name == "rangeStart") r.rangeStart = d.netIP(v, struct, path + ".rangeStart");
  else if (name == "rangeEnd") r.rangeEnd = d.netIP(v, struct, path + ".rangeEnd");
  else if (name == "gateway") r.gateway = d.netIP(v, struct, path + ".gateway");
}

function decodeRange(d: Decoder, v: JSONValue, path: string): Range {
  const r = new Range();
  if (v.isNull()) return r;
  if (!v.isObject()) { d.typeError(v, "Range", path, "allocator.Range"); return r; }
  const keys = v.keys();
  for (let i = 0; i < keys.length && !d.stopped; i++) {
    const name = matchField(keys[i], RANGE_FIELDS);
    if (name.length > 0) decodeRangeField(d, r, name, v.get(keys[i])!, "Range", path);
  }
  return r;
}

function decodeRangeSet(d: Decoder, v: JSONValue, struct: string, path: string): RangeSet {
  const s = new RangeSet();
  if (v.isNull()) return s;
  if (!v.isArray()) { d.typeError(v, struct, path, "allocator.RangeSet"); return s; }
  const items = v.asArray();
  for (let i = 0; i < items.length && !d.stopped; i++) s.ranges.push(decodeRange(d, items[i], path));
  return s;
}

function decodeRangeSets(d: Decoder, v: JSONValue, struct: string, path: string): Array<RangeSet> {
  const out = new Array<RangeSet>();
  if (v.isNull()) return out;
  if (!v.isArray()) { d.typeError(v, struct, path, "[]allocator.RangeSet"); return out; }
  const items = v.asArray();
  for (let i = 0; i < items.length && !d.stopped; i++) out.push(decodeRangeSet(d, items[i], struct, path));
  return out;
}

/** A []*ip.IP (args.cni.ips, runtimeConfig.ips); a null or "" entry is kept as "no address". */
function decodeIPList(d: Decoder, v: JSONValue, struct: string, path: string, out: Array<IP | null>): void {
  if (v.isNull()) return;
  if (!v.isArray()) { d.typeError(v, struct, path, "[]*ip.IP"); return; }
  const items = v.asArray();
  for (let i = 0; i < items.length && !d.stopped; i++) {
    const it = items[i];
    if (it.isNull()) { out.push(null); continue; }
    if (!it.isString()) { d.typeError(it, struct, path, "*ip.IP"); continue; }
    const s = it.asString();
    if (s.length == 0) { out.push(null); continue; }
    const ip = cniParseIP(s);
    if (ip === null) { d.abort("invalid IP address " + s); return; }
    out.push(ip);
  }
}

const IPAM_FIELDS: Array<string> = ["Name", "type", "routes", "dataDir", "resolvConf", "ranges", "rangeStart", "rangeEnd", "subnet", "gateway"];

class Decoded {
  hasIpam: bool = false;
  conf: IPAMConfig = new IPAMConfig();
  legacy: Range | null = null;
  runtimeRanges: Array<RangeSet> = new Array<RangeSet>();
  argIPs: Array<IP | null> = new Array<IP | null>();
  runtimeIPs: Array<IP | null> = new Array<IP | null>();
}

function decodeIpam(d: Decoder, v: JSONValue, out: Decoded): void {
  if (v.isNull()) { out.hasIpam = false; return; }
  if (!v.isObject()) { d.typeError(v, "Net", "ipam", "allocator.IPAMConfig"); return; }
  out.hasIpam = true;
  const c = out.conf;
  const keys = v.keys();
  for (let i = 0; i < keys.length && !d.stopped; i++) {
    const name = matchField(keys[i], IPAM_FIELDS);
    const f = v.get(keys[i])!;
    if (name == "routes") {
      if (f.isNull()) { c.routes = new Array<ConfRoute>(); continue; }
      if (!f.isArray()) { d.typeError(f, "IPAMConfig", "ipam.routes", "[]*types.Route"); continue; }
      const items = f.asArray();
      const routes = new Array<ConfRoute>();
      for (let j = 0; j < items.length && !d.stopped; j++) decodeRoute(d, items[j], routes);
      c.routes = routes;
    } else if (name == "dataDir") {
      c.dataDir = d.str(f, c.dataDir, "IPAMConfig", "ipam.dataDir");
    } else if (name == "resolvConf") {
      c.resolvConf = d.str(f, c.resolvConf, "IPAMConfig", "ipam.resolvConf");
    } else if (name == "Name" || name == "type") {
      d.str(f, "", "IPAMConfig", "ipam." + name);
    } else if (name == "ranges") {
      c.ranges = decodeRangeSets(d, f, "IPAMConfig", "ipam.ranges");
    } else if (name.length > 0) {
      // the legacy single range, fields promoted from the embedded *Range
      let r = out.legacy;
      if (r === null) { r = new Range(); out.legacy = r; }
      decodeRangeField(d, r, name, f, "IPAMConfig", "ipam");
    }
  }
}

function decodeNet(d: Decoder, doc: JSONValue, out: Decoded): void {
  const keys = doc.keys();
  for (let i = 0; i < keys.length && !d.stopped; i++) {
    const name = matchField(keys[i], ["name", "cniVersion", "ipam", "runtimeConfig", "args"]);
    const f = doc.get(keys[i])!;
    if (name == "name") out.conf.name = d.str(f, out.conf.name, "Net", "name");
    else if (name == "cniVersion") out.conf.cniVersion = d.str(f, out.conf.cniVersion, "Net", "cniVersion");
    else if (name == "ipam") decodeIpam(d, f, out);
    else if (name == "runtimeConfig") {
      if (!f.isObject()) continue; // the host has checked it is an object
      const rk = f.keys();
      for (let j = 0; j < rk.length && !d.stopped; j++) {
        const n = matchField(rk[j], ["ipRanges", "ips"]);
        const g = f.get(rk[j])!;
        if (n == "ipRanges") out.runtimeRanges = decodeRangeSets(d, g, "", "runtimeConfig.ipRanges");
        else if (n == "ips") { out.runtimeIPs = new Array<IP | null>(); decodeIPList(d, g, "", "runtimeConfig.ips", out.runtimeIPs); }
      }
    } else if (name == "args") {
      if (f.isNull() || !f.isObject()) continue; // the host has checked it is an object
      const ak = f.keys();
      for (let j = 0; j < ak.length && !d.stopped; j++) {
        if (matchField(ak[j], ["cni"]) != "cni") continue;
        const cni = f.get(ak[j])!;
        if (cni.isNull()) { out.argIPs = new Array<IP | null>(); continue; }
        if (!cni.isObject()) { d.typeError(cni, "", "args.cni", "allocator.IPAMArgs"); continue; }
        const ck = cni.keys();
        for (let k = 0; k < ck.length && !d.stopped; k++) {
          if (matchField(ck[k], ["ips"]) != "ips") continue;
          out.argIPs = new Array<IP | null>();
          decodeIPList(d, cni.get(ck[k])!, "IPAMArgs", "args.cni.ips", out.argIPs);
        }
      }
    }
  }
}

/**
 * allocator.LoadIPAMConfig. Errors: 7 for the configuration, 4 for CNI_ARGS
 * (the reference answers 999 for all of them; the messages are its own).
 */
export function loadIPAMConfig(req: Request): Loaded {
  const doc = parseConfig(req);
  if (doc === null) {
    return Result.failure<IPAMConfig, CniError>(configDecodeError());
  }
  const d = new Decoder();
  const dec = new Decoded();
  decodeNet(d, doc, dec);
  if (d.failed) return fail(ERR_INVALID_CONFIG, d.error());
  if (!dec.hasIpam) return fail(ERR_INVALID_CONFIG, "IPAM config missing 'ipam' key");
  const conf = dec.conf;
  conf.doc = doc;

  const reqIPs = new Array<IP | null>();
  if (req.args.length > 0) {
    const env = loadEnvArgs(req.args, ["IP"], [ARG_IP]);
    if (env.error.length > 0) return fail(ERR_INVALID_ENV, env.error);
    const ipText = env.values[0];
    if (ipText.length > 0) reqIPs.push(cniParseIP(ipText));
  }
  for (let i = 0; i < dec.argIPs.length; i++) reqIPs.push(dec.argIPs[i]);
  for (let i = 0; i < dec.runtimeIPs.length; i++) reqIPs.push(dec.runtimeIPs[i]);
  for (let i = 0; i < reqIPs.length; i++) {
    const ip = reqIPs[i];
    if (ip === null) return fail(ERR_INVALID_CONFIG, "cannot understand ip: IP <nil> not v4 nor v6");
    conf.ipArgs.push(ip);
  }

  // runtimeConfig.ipRanges first, then the legacy single range, then ranges
  const all = new Array<RangeSet>();
  for (let i = 0; i < dec.runtimeRanges.length; i++) all.push(dec.runtimeRanges[i]);
  const legacy = dec.legacy;
  if (legacy !== null && legacy.subnet !== null) {
    const s = new RangeSet();
    s.ranges.push(legacy);
    all.push(s);
  }
  for (let i = 0; i < conf.ranges.length; i++) all.push(conf.ranges[i]);
  conf.ranges = all;
  if (all.length == 0) return fail(ERR_INVALID_CONFIG, "no IP ranges specified");

  let numV4 = 0, numV6 = 0;
  for (let i = 0; i < all.length; i++) {
    const e = all[i].canonicalize();
    if (e.length > 0) return fail(ERR_INVALID_CONFIG, "invalid range set " + i.toString() + ": " + e);
    if (all[i].ranges[0].start.family == 4) numV4++;
    else numV6++;
  }
  if ((numV4 > 1 || numV6 > 1) && !versionAtLeast(conf.cniVersion, "0.3.0")) {
    return fail(ERR_INVALID_CONFIG, "CNI version " + conf.cniVersion + " does not support more than 1 address per family");
  }
  for (let i = 0; i < all.length - 1; i++) {
    for (let j = i + 1; j < all.length; j++) {
      if (all[i].overlaps(all[j])) return fail(ERR_INVALID_CONFIG, "range set " + i.toString() + " overlaps with " + j.toString());
    }
  }
  return Result.success<IPAMConfig, CniError>(conf);
}
