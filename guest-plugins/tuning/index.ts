// tuning: the reference tuning plugin (containernetworking/plugins 1.1.1,
// plus its later txQLen), chained after the plugin that made CNI_IFNAME.
// In the container namespace it writes the configured net.* sysctls and sets
// the interface's MAC, MTU, promiscuous and all-multicast modes and transmit
// queue length; the originals are saved in the store
// (<dataDir>/<network>/<containerID>_<ifname>.json, dataDir default
// /run/cni/tuning as the reference's) and put back by DEL. The host decides
// which sysctls may be written (the grant's containerKeys, and the
// reference's allowlist file /etc/cni/tuning/allowlist.conf when it exists).
//
// Differences from the reference, on purpose: the sysctls' originals are
// restored on DEL too; a failed ADD puts back what it changed; a second ADD
// keeps the first one's originals; DEL removes the saved file even when the
// interface is already gone; CHECK compares sysctls with IFNAME replaced;
// bad input is code 7 (4 for CNI_ARGS) naming the key.
import {
  CniError, CniPlugin, JSONValue, Level, LinkSettings, Netns, Request, Result,
  ERR_INTERNAL, ERR_INVALID_CONFIG, ERR_INVALID_ENV, cniError, configDecodeError, hostFailure, links, log,
  parseConfig, registerPlugin, store, sysctl,
} from "../sdk";
import { normalizeMac } from "../bridge/config";

const DEFAULT_DATA_DIR = "/run/cni/tuning";

class Sysctl {
  constructor(public key: string, public slash: string, public value: string) {}
}

class TuningConf {
  name: string = "";
  dataDir: string = DEFAULT_DATA_DIR;
  sysctls: Array<Sysctl> = new Array<Sysctl>();
  mac: string = "";
  promisc: bool = false;
  mtu: i32 = 0;
  hasAllmulti: bool = false;
  allmulti: bool = false;
  hasTxQLen: bool = false;
  txQLen: i32 = 0;
  prevResult: JSONValue | null = null;

  changesLink(): bool { return this.mac.length > 0 || this.mtu != 0 || this.promisc || this.hasAllmulti || this.hasTxQLen; }
}

function q(s: string): string { return JSONValue.fromString(s).stringify(); }
function invalid(msg: string): CniError { return cniError(ERR_INVALID_CONFIG, msg); }
function fail(msg: string): CniError { return cniError(ERR_INTERNAL, msg); }

class Reader {
  err: CniError | null = null;
  constructor(public doc: JSONValue, public where: string) {}
  private bad(key: string, want: string): void {
    if (this.err === null) this.err = invalid("failed to load netconf: " + q(this.where + key) + " must be " + want);
  }
  has(key: string): bool { const v = this.doc.get(key); return v !== null && !v.isNull(); }
  str(key: string, def: string): string {
    const v = this.doc.get(key);
    if (v === null || v.isNull()) return def;
    if (!v.isString()) { this.bad(key, "a string"); return def; }
    return v.asString();
  }
  bool(key: string, def: bool): bool {
    const v = this.doc.get(key);
    if (v === null || v.isNull()) return def;
    if (!v.isBool()) { this.bad(key, "true or false"); return def; }
    return v.asBool();
  }
  int(key: string, def: i32, min: i32, max: i32): i32 {
    const v = this.doc.get(key);
    if (v === null || v.isNull()) return def;
    const n = v.asNumber();
    if (!v.isNumber() || n != Math.floor(n) || n < <f64>min || n > <f64>max) {
      this.bad(key, "a whole number from " + min.toString() + " to " + max.toString());
      return def;
    }
    return <i32>n;
  }
  /** "sysctl": an object of strings, merged into `into` (later keys replace). */
  sysctls(key: string, into: Map<string, string>, order: Array<string>): void {
    const v = this.doc.get(key);
    if (v === null || v.isNull()) return;
    if (!v.isObject()) { this.bad(key, "an object of sysctl names and string values"); return; }
    const ks = v.keys();
    for (let i = 0; i < ks.length; i++) {
      const x = v.get(ks[i])!;
      if (!x.isString()) { this.bad(key + "." + ks[i], "a string"); return; }
      if (!into.has(ks[i])) order.push(ks[i]);
      into.set(ks[i], x.asString());
    }
  }
}

/** "net.ipv4.conf.IFNAME.arp_filter" → "net/ipv4/conf/eth0/arp_filter", or "" when it is not a net.* key. */
function sysctlPath(key: string, ifname: string): string {
  const slash = key.replaceAll(".", "/").replace("IFNAME", ifname);
  const parts = slash.split("/");
  if (parts.length < 2 || parts[0] != "net") return "";
  for (let i = 0; i < parts.length; i++) if (parts[i].length == 0 || parts[i] == "..") return "";
  return slash;
}

/** CNI_ARGS: MAC, and IgnoreUnknown for everything else (libcni's LoadArgs). */
function readArgs(req: Request, c: TuningConf): CniError | null {
  let ignoreUnknown = false;
  const unknown = new Array<string>();
  for (let i = 0; i < req.args.length; i++) {
    const k = req.args[i].f0, v = req.args[i].f1;
    if (k == "IgnoreUnknown") {
      const l = v.toLowerCase();
      if (l == "1" || l == "true") ignoreUnknown = true;
      else if (l == "0" || l == "false") ignoreUnknown = false;
      else return cniError(ERR_INVALID_ENV, "ARGS: error parsing value of pair \"" + k + "=" + v + "\": boolean unmarshal error: invalid input " + v);
    } else if (k == "MAC") {
      if (v.length > 0) c.mac = v;
    } else {
      unknown.push(q(k + "=" + v));
    }
  }
  if (unknown.length > 0 && !ignoreUnknown) return cniError(ERR_INVALID_ENV, "ARGS: unknown args [" + unknown.join(" ") + "]");
  return null;
}

/** lenient (DEL, GC): a MAC or sysctl key that ADD would refuse is no reason to fail; ADD saved nothing for it. */
function loadConf(req: Request, lenient: bool = false): Result<TuningConf, CniError> {
  const doc = parseConfig(req);
  if (doc === null) return Result.failure<TuningConf, CniError>(configDecodeError());
  const c = new TuningConf();
  c.name = doc.getString("name");
  const r = new Reader(doc, "");
  const sys = new Map<string, string>();
  const order = new Array<string>();
  c.dataDir = r.str("dataDir", "");
  if (c.dataDir.length == 0) c.dataDir = DEFAULT_DATA_DIR;
  r.sysctls("sysctl", sys, order);
  c.mac = r.str("mac", "");
  c.promisc = r.bool("promisc", false);
  c.mtu = r.int("mtu", 0, 0, 65535);
  c.hasAllmulti = r.has("allmulti");
  c.allmulti = r.bool("allmulti", false);
  c.hasTxQLen = r.has("txQLen");
  c.txQLen = r.int("txQLen", 0, 0, 0x7fffffff);
  if (r.err !== null) return Result.failure<TuningConf, CniError>(r.err!);
  let macFrom = c.mac.length > 0 ? "mac" : "";

  const ae = readArgs(req, c);
  if (ae !== null) return Result.failure<TuningConf, CniError>(ae);
  if (cniArgMac(req).length > 0) macFrom = "CNI_ARGS MAC";
  const rc = doc.getObject("runtimeConfig");
  if (rc !== null && rc.getString("mac").length > 0) { c.mac = rc.getString("mac"); macFrom = "runtimeConfig.mac"; }
  const args = doc.getObject("args");
  const cni = args !== null ? args.getObject("cni") : null;
  if (cni !== null) {
    const a = new Reader(cni, "args.cni.");
    a.sysctls("sysctl", sys, order);
    if (a.has("mac")) { c.mac = a.str("mac", ""); macFrom = "args.cni.mac"; }
    if (a.has("promisc")) c.promisc = a.bool("promisc", false);
    if (a.has("mtu")) c.mtu = a.int("mtu", 0, 0, 65535);
    if (a.has("allmulti")) { c.hasAllmulti = true; c.allmulti = a.bool("allmulti", false); }
    if (a.has("txQLen")) { c.hasTxQLen = true; c.txQLen = a.int("txQLen", 0, 0, 0x7fffffff); }
    if (a.err !== null) return Result.failure<TuningConf, CniError>(a.err!);
  }
  if (c.mac.length > 0) {
    const m = normalizeMac(c.mac);
    if (m.length == 0 && !lenient) {
      return Result.failure<TuningConf, CniError>(cniError(macFrom == "CNI_ARGS MAC" ? ERR_INVALID_ENV : ERR_INVALID_CONFIG,
        "invalid MAC address " + q(c.mac) + " in " + macFrom, "a MAC address is six hex pairs, e.g. 0a:58:0a:0f:14:02"));
    }
    c.mac = m;
  }
  for (let i = 0; i < order.length; i++) {
    const p = sysctlPath(order[i], req.ifname);
    if (p.length == 0 && lenient) continue;
    if (p.length == 0) return Result.failure<TuningConf, CniError>(invalid("invalid net sysctl key: " + q(order[i]) + " (only net.* keys of the container's namespace)"));
    c.sysctls.push(new Sysctl(order[i], p, sys.get(order[i])));
  }
  const prev = doc.get("prevResult");
  if (prev !== null && prev.isObject()) c.prevResult = prev;
  return Result.success<TuningConf, CniError>(c);
}

function cniArgMac(req: Request): string {
  for (let i = 0; i < req.args.length; i++) if (req.args[i].f0 == "MAC") return req.args[i].f1;
  return "";
}

function backupKey(req: Request): string { return req.containerId + "_" + req.ifname + ".json"; }

// ---------------------------------------------------------------- originals

/** What DEL (or a failed ADD) puts back: the reference's file, plus "sysctl". */
class Saved {
  hasMac: bool = false; mac: string = "";
  hasPromisc: bool = false; promisc: bool = false;
  mtu: i32 = 0;
  hasAllmulti: bool = false; allmulti: bool = false;
  hasTxQLen: bool = false; txQLen: i32 = 0;
  sysctlKeys: Array<string> = new Array<string>();
  sysctlValues: Array<string> = new Array<string>();

  toJSON(): string {
    const o = JSONValue.newObject();
    if (this.hasMac) o.set("mac", JSONValue.fromString(this.mac));
    if (this.hasPromisc) o.set("promisc", JSONValue.fromBool(this.promisc));
    if (this.mtu != 0) o.set("mtu", JSONValue.fromNumber(<f64>this.mtu));
    if (this.hasAllmulti) o.set("allmulti", JSONValue.fromBool(this.allmulti));
    if (this.hasTxQLen) o.set("txQLen", JSONValue.fromNumber(<f64>this.txQLen));
    if (this.sysctlKeys.length > 0) {
      const s = JSONValue.newObject();
      for (let i = 0; i < this.sysctlKeys.length; i++) s.set(this.sysctlKeys[i], JSONValue.fromString(this.sysctlValues[i]));
      o.set("sysctl", s);
    }
    return o.stringify();
  }

  static parse(text: string): Saved {
    const s = new Saved();
    const v = parseConfigText(text);
    if (v === null) return s;
    s.hasMac = v.getString("mac").length > 0; s.mac = v.getString("mac");
    const p = v.get("promisc"); if (p !== null && p.isBool()) { s.hasPromisc = true; s.promisc = p.asBool(); }
    s.mtu = <i32>v.getNumber("mtu", 0);
    const a = v.get("allmulti"); if (a !== null && a.isBool()) { s.hasAllmulti = true; s.allmulti = a.asBool(); }
    const t = v.get("txQLen"); if (t !== null && t.isNumber()) { s.hasTxQLen = true; s.txQLen = <i32>t.asNumber(); }
    const sy = v.getObject("sysctl");
    if (sy !== null) {
      const ks = sy.keys();
      for (let i = 0; i < ks.length; i++) { s.sysctlKeys.push(ks[i]); s.sysctlValues.push(sy.getString(ks[i])); }
    }
    return s;
  }
}

import { parseJSON } from "../sdk/json";
function parseConfigText(text: string): JSONValue | null {
  const v = parseJSON(text);
  return v !== null && v.isObject() ? v : null;
}

/** Reads every original the ADD will change; a refused sysctl stops here, before any change. */
function readOriginals(req: Request, c: TuningConf): Result<Saved, CniError> {
  const s = new Saved();
  for (let i = 0; i < c.sysctls.length; i++) {
    const g = sysctl.get(Netns.Container, c.sysctls[i].slash);
    if (!g.ok) return Result.failure<Saved, CniError>(hostFailure("sysctl " + q(c.sysctls[i].key), g.error!));
    s.sysctlKeys.push(c.sysctls[i].slash);
    s.sysctlValues.push(g.value);
  }
  if (c.changesLink()) {
    const l = links.getSettings(req.ifname);
    if (!l.ok) return Result.failure<Saved, CniError>(hostFailure("failed to get " + q(req.ifname), l.error!));
    const cur = l.value;
    if (c.mac.length > 0) { s.hasMac = true; s.mac = cur.mac; }
    if (c.promisc) { s.hasPromisc = true; s.promisc = cur.promisc; }
    if (c.mtu != 0) s.mtu = <i32>cur.mtu;
    if (c.hasAllmulti) { s.hasAllmulti = true; s.allmulti = cur.allmulti; }
    if (c.hasTxQLen) { s.hasTxQLen = true; s.txQLen = <i32>cur.txqlen; }
  }
  return Result.success<Saved, CniError>(s);
}

/** Puts the originals back; returns what failed ("" for nothing). */
function restore(ifname: string, s: Saved): string {
  const errs = new Array<string>();
  if (s.mtu != 0) { const e = links.setMtu(Netns.Container, ifname, <u32>s.mtu); if (e !== null) errs.push("failed to restore MTU: " + e.message); }
  if (s.hasMac) { const e = links.setMac(Netns.Container, ifname, s.mac); if (e !== null) errs.push("failed to restore MAC address: " + e.message); }
  if (s.hasPromisc) { const e = links.setPromisc(Netns.Container, ifname, s.promisc); if (e !== null) errs.push("failed to restore promiscuous mode: " + e.message); }
  if (s.hasAllmulti) { const e = links.setAllmulti(ifname, s.allmulti); if (e !== null) errs.push("failed to restore all-multicast mode: " + e.message); }
  if (s.hasTxQLen) { const e = links.setTxqlen(ifname, <u32>s.txQLen); if (e !== null) errs.push("failed to restore transmit queue length: " + e.message); }
  for (let i = 0; i < s.sysctlKeys.length; i++) {
    const e = sysctl.set(Netns.Container, s.sysctlKeys[i], s.sysctlValues[i]);
    if (e !== null) errs.push("failed to restore sysctl " + s.sysctlKeys[i] + ": " + e.message);
  }
  return errs.join("; ");
}

function apply(req: Request, c: TuningConf): CniError | null {
  const ifname = req.ifname;
  for (let i = 0; i < c.sysctls.length; i++) {
    const e = sysctl.set(Netns.Container, c.sysctls[i].slash, c.sysctls[i].value);
    if (e !== null) return hostFailure("failed to set sysctl " + q(c.sysctls[i].key) + " to " + q(c.sysctls[i].value), e);
  }
  if (c.mac.length > 0) {
    const e = links.setMac(Netns.Container, ifname, c.mac);
    if (e !== null) return hostFailure("failed to set MAC address " + c.mac + " on " + q(ifname), e);
  }
  if (c.promisc) {
    const e = links.setPromisc(Netns.Container, ifname, true);
    if (e !== null) return hostFailure("failed to set promiscuous mode on " + q(ifname), e);
  }
  if (c.mtu != 0) {
    const e = links.setMtu(Netns.Container, ifname, <u32>c.mtu);
    if (e !== null) return hostFailure("failed to set MTU " + c.mtu.toString() + " on " + q(ifname), e);
  }
  if (c.hasAllmulti) {
    const e = links.setAllmulti(ifname, c.allmulti);
    if (e !== null) return hostFailure("failed to set all-multicast mode on " + q(ifname), e);
  }
  if (c.hasTxQLen) {
    const e = links.setTxqlen(ifname, <u32>c.txQLen);
    if (e !== null) return hostFailure("failed to set transmit queue length " + c.txQLen.toString() + " on " + q(ifname), e);
  }
  return null;
}

/** prevResult with the new MAC on the interfaces named CNI_IFNAME, as the reference reports it. */
function resultWithMac(prev: JSONValue, ifname: string, mac: string): string {
  if (mac.length > 0) {
    const ifs = prev.getArray("interfaces");
    if (ifs !== null) {
      for (let i = 0; i < ifs.length; i++) if (ifs[i].isObject() && ifs[i].getString("name") == ifname) ifs[i].set("mac", JSONValue.fromString(mac));
    }
  }
  return prev.stringify();
}

function noNetns(req: Request): CniError {
  return cniError(3, "failed to open netns " + q(req.netnsPath) + ": no such network namespace");
}

class Tuning extends CniPlugin {
  add(req: Request): Result<string, CniError> {
    const cr = loadConf(req);
    if (!cr.ok) return Result.failure<string, CniError>(cr.error!);
    const c = cr.value;
    if (c.prevResult === null) return Result.failure<string, CniError>(fail("Required prevResult missing"));
    if (!req.hasNetns) return Result.failure<string, CniError>(noNetns(req));
    if (c.sysctls.length == 0 && !c.changesLink()) return Result.success<string, CniError>(c.prevResult!.stringify());

    const orig = readOriginals(req, c);
    if (!orig.ok) return Result.failure<string, CniError>(orig.error!);
    const so = store.open(c.name, c.dataDir);
    if (so !== null) return Result.failure<string, CniError>(hostFailure("failed to open the tuning store in " + c.dataDir, so));
    const key = backupKey(req);
    // A second ADD keeps the first one's originals.
    const had = store.get(key);
    if (!had.ok) return Result.failure<string, CniError>(hostFailure("failed to read the saved settings", had.error!));
    const fresh = had.value === null;
    if (fresh) {
      const pe = store.put(key, orig.value.toJSON());
      if (pe !== null) return Result.failure<string, CniError>(hostFailure("failed to save the original settings", pe));
    }
    const ae = apply(req, c);
    if (ae !== null) {
      const left = restore(req.ifname, orig.value);
      if (left.length > 0) log.write(Level.Warn, "undoing a failed ADD: " + left);
      if (fresh) store.remove(key);
      return Result.failure<string, CniError>(ae);
    }
    return Result.success<string, CniError>(resultWithMac(c.prevResult!, req.ifname, c.mac));
  }

  del(req: Request): CniError | null {
    const cr = loadConf(req, true);
    if (!cr.ok) return cr.error!;
    const c = cr.value;
    // A config that tunes nothing saved nothing at ADD (the runtime sends DEL
    // the same config, runtimeConfig and CNI_ARGS): no store to open, so no
    // directory made for it.
    if (c.sysctls.length == 0 && !c.changesLink()) return null;
    const so = store.open(c.name, c.dataDir);
    if (so !== null) return hostFailure("failed to open the tuning store in " + c.dataDir, so);
    const key = backupKey(req);
    const had = store.get(key);
    if (!had.ok) return hostFailure("failed to read the saved settings", had.error!);
    if (had.value === null) return null; // nothing saved: nothing to put back
    if (req.hasNetns && links.getSettings(req.ifname).ok) {
      const left = restore(req.ifname, Saved.parse(had.value!));
      // As the reference, DEL does not fail over a setting it could not put back.
      if (left.length > 0) log.write(Level.Warn, "DEL: " + left);
    }
    const re = store.remove(key);
    return re !== null ? hostFailure("failed to remove the saved settings", re) : null;
  }

  /** Saved originals of attachments the runtime no longer lists go (the reference 1.1.1 has no GC). */
  gc(req: Request): CniError | null {
    const cr = loadConf(req, true);
    if (!cr.ok) return cr.error!;
    const c = cr.value;
    if (c.sysctls.length == 0 && !c.changesLink()) return null; // saves nothing, as DEL
    const doc = parseConfig(req)!;
    const valid = new Set<string>();
    const list = doc.getArray("cni.dev/valid-attachments");
    if (list !== null) {
      for (let i = 0; i < list.length; i++) {
        if (list[i].isObject()) valid.add(list[i].getString("containerID") + "_" + list[i].getString("ifname") + ".json");
      }
    }
    const so = store.open(c.name, c.dataDir);
    if (so !== null) return hostFailure("failed to open the tuning store in " + c.dataDir, so);
    const keys = store.keys();
    if (!keys.ok) return hostFailure("failed to list the saved settings", keys.error!);
    for (let i = 0; i < keys.value.length; i++) {
      const k = keys.value[i];
      if (!k.endsWith(".json") || valid.has(k)) continue;
      const e = store.remove(k);
      if (e !== null) return hostFailure("failed to remove " + k, e);
      log.write(Level.Info, "tuning: GC removed the saved settings " + k);
    }
    return null;
  }

  check(req: Request): CniError | null {
    const cr = loadConf(req);
    if (!cr.ok) return cr.error!;
    const c = cr.value;
    if (c.prevResult === null) return fail("Required prevResult missing");
    if (!req.hasNetns) return noNetns(req);
    for (let i = 0; i < c.sysctls.length; i++) {
      const g = sysctl.get(Netns.Container, c.sysctls[i].slash);
      if (!g.ok) return hostFailure("sysctl " + q(c.sysctls[i].key), g.error!);
      if (g.value != c.sysctls[i].value) {
        return fail("Error: Tuning configured value of /proc/sys/" + c.sysctls[i].slash + " is " + c.sysctls[i].value + ", current value is " + g.value);
      }
    }
    const l = links.getSettings(req.ifname);
    if (!l.ok) return fail("Cannot find container link " + req.ifname);
    const cur: LinkSettings = l.value;
    if (c.mac.length > 0 && c.mac != cur.mac) {
      return fail("Error: Tuning configured Ethernet of " + req.ifname + " is " + c.mac + ", current value is " + cur.mac);
    }
    if (c.promisc != cur.promisc) {
      return fail("Error: Tuning link " + req.ifname + " configured promisc is " + (c.promisc ? "true" : "false") + ", current value is " + (cur.promisc ? "1" : "0"));
    }
    if (c.mtu != 0 && <u32>c.mtu != cur.mtu) {
      return fail("Error: Tuning configured MTU of " + req.ifname + " is " + c.mtu.toString() + ", current value is " + cur.mtu.toString());
    }
    if (c.hasAllmulti && c.allmulti != cur.allmulti) {
      return fail("Error: Tuning configured all-multicast mode of " + req.ifname + " is " + (c.allmulti ? "true" : "false") + ", current value is " + (cur.allmulti ? "true" : "false"));
    }
    if (c.hasTxQLen && <u32>c.txQLen != cur.txqlen) {
      return fail("Error: Tuning configured Transmit Queue Length of " + req.ifname + " is " + c.txQLen.toString() + ", current value is " + cur.txqlen.toString());
    }
    return null;
  }
}

registerPlugin(new Tuning());
