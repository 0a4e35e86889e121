// bandwidth: limit a container's rates with token bucket filters, as the
// reference bandwidth plugin 1.1.1 (containernetworking/plugins
// plugins/meta/bandwidth) does. Chained only, after a plugin that made a veth:
//
//   ingress (what the container receives) = tbf root qdisc on the host veth
//   egress  (what it sends)               = the host veth's ingress qdisc
//     redirects everything to an IFB (bwp + hash), whose root is a tbf
//
// The tbf numbers are computed exactly as the reference computes them
// (bytes = bits / 8, buffer from the psched clock, 25 ms of latency), so the
// kernel ends up with the same state. Anything a failed ADD made is undone.
import {
  CniError, CniPlugin, JSONValue, Level, Netns, QdiscParent, Request, Result, Tbf,
  ERR_INTERNAL, ERR_INVALID_CONFIG, ERR_UNKNOWN_CONTAINER, cniError, configDecodeError, hostFailure, links, log,
  parseConfig, registerPlugin, tc,
} from "../sdk";
import { sha512Hex } from "./sha512";

const IFB_PREFIX = "bwp";
const MAX_IFNAME: i32 = 15;
const LATENCY_USEC: f64 = 25000; // 25 ms, as the reference
const TIME_UNITS_PER_SEC: f64 = 1000000;
const ROOT: u32 = 0xffffffff;
const U32_MAX: f64 = 4294967295;
const U64_LIMIT: f64 = 1.8446744073709552e19; // 2^64

function fail(msg: string, details: string = ""): CniError { return cniError(ERR_INTERNAL, msg, details); }
function invalid(msg: string): CniError { return cniError(ERR_INVALID_CONFIG, msg); }
function debug(msg: string): void { log.write(Level.Debug, msg); }

// ---------------------------------------------------------------- config

class Bandwidth {
  ingressRate: u64 = 0;
  ingressBurst: u64 = 0;
  egressRate: u64 = 0;
  egressBurst: u64 = 0;
  isZero(): bool { return this.ingressRate == 0 && this.ingressBurst == 0 && this.egressRate == 0 && this.egressBurst == 0; }
}

class Conf {
  name: string = "";
  cniVersion: string = "";
  /** null when neither the config nor runtimeConfig sets a rate or burst */
  bw: Bandwidth | null = null;
  prevResult: JSONValue | null = null;
}

const KEYS: string[] = ["ingressRate", "ingressBurst", "egressRate", "egressBurst"];

function kindName(v: JSONValue): string {
  if (v.isString()) return "string";
  if (v.isBool()) return "bool";
  if (v.isArray()) return "array";
  if (v.isObject()) return "object";
  return "number " + v.stringify();
}

/** The four keys of obj, as Go decodes uint64s: a whole number from 0 to 2^64-1. null when none is set. */
function readEntry(obj: JSONValue, where: string, err: Array<CniError>): Bandwidth | null {
  let any = false;
  const bw = new Bandwidth();
  for (let i = 0; i < KEYS.length; i++) {
    const v = obj.get(KEYS[i]);
    if (v === null || v.isNull()) continue;
    any = true;
    const n = v.isNumber() ? v.asNumber() : -1;
    if (!v.isNumber() || n < 0 || n != Math.floor(n) || n >= U64_LIMIT) {
      err.push(invalid("failed to parse network configuration: json: cannot unmarshal " + kindName(v) +
        " into Go struct field " + where + KEYS[i] + " of type uint64"));
      return null;
    }
    const x = <u64>n;
    if (i == 0) bw.ingressRate = x; else if (i == 1) bw.ingressBurst = x; else if (i == 2) bw.egressRate = x; else bw.egressBurst = x;
  }
  return any ? bw : null;
}

function validateRateAndBurst(rate: u64, burst: u64): CniError | null {
  if (burst == 0 && rate != 0) return invalid("if rate is set, burst must also be set");
  if (rate == 0 && burst != 0) return invalid("if burst is set, rate must also be set");
  if (burst / 8 >= <u64>0xffffffff) return invalid("burst cannot be more than 4GB");
  return null;
}

function loadConf(req: Request): Result<Conf, CniError> {
  const doc = parseConfig(req);
  if (doc === null) return Result.failure<Conf, CniError>(configDecodeError());
  const c = new Conf();
  c.name = doc.getString("name");
  c.cniVersion = doc.getString("cniVersion");
  const err = new Array<CniError>();
  // The static keys win over runtimeConfig, as the reference has it.
  let bw = readEntry(doc, "PluginConf.", err);
  if (err.length > 0) return Result.failure<Conf, CniError>(err[0]);
  if (bw === null) {
    const rc = doc.getObject("runtimeConfig");
    const b = rc !== null ? rc.get("bandwidth") : null;
    if (b !== null && !b.isNull()) {
      if (!b.isObject()) {
        return Result.failure<Conf, CniError>(invalid("failed to parse network configuration: json: cannot unmarshal " + kindName(b) +
          " into Go struct field .runtimeConfig.bandwidth of type main.BandwidthEntry"));
      }
      bw = readEntry(b, "BandwidthEntry.runtimeConfig.bandwidth.", err);
      if (err.length > 0) return Result.failure<Conf, CniError>(err[0]);
      // present but empty: a zero entry, as Go allocates it
      if (bw === null) bw = new Bandwidth();
    }
  }
  if (bw !== null) {
    const b = bw!;
    let e = validateRateAndBurst(b.ingressRate, b.ingressBurst);
    if (e === null) e = validateRateAndBurst(b.egressRate, b.egressBurst);
    if (e !== null) return Result.failure<Conf, CniError>(e);
  }
  c.bw = bw;
  const prev = doc.getObject("prevResult");
  c.prevResult = prev;
  return Result.success<Conf, CniError>(c);
}

// ---------------------------------------------------------------- tbf numbers

/** The tbf the reference makes for rate bits/s and burst bits; the error names the setting. */
function tbfFor(rateBits: u64, burstBits: u64, ticksPerUsec: f64, what: string): Result<Tbf, CniError> {
  const rate = rateBits / 8;
  const burst = burstBits / 8;
  if (rate == 0) {
    return Result.failure<Tbf, CniError>(invalid(what + "Rate " + rateBits.toString() +
      " bits/s is less than one byte per second: too small to shape (it would divide by zero)"));
  }
  const usec = <f64>burst * TIME_UNITS_PER_SEC / <f64>rate;
  const ticks = Math.floor(<f64><u32>Math.min(usec, U32_MAX) * ticksPerUsec);
  if (usec > U32_MAX || ticks > U32_MAX) {
    return Result.failure<Tbf, CniError>(invalid(what + "Burst " + burstBits.toString() + " bits at " + rateBits.toString() +
      " bits/s lasts longer than the kernel's tbf can hold (" + (<u64>usec).toString() + " us)"));
  }
  if (ticks < 1) {
    return Result.failure<Tbf, CniError>(invalid(what + "Burst " + burstBits.toString() + " bits is too small for " + rateBits.toString() +
      " bits/s: the bucket would last less than one clock tick"));
  }
  const lim = Math.floor(<f64>rate * LATENCY_USEC / TIME_UNITS_PER_SEC) + <f64>burst;
  if (lim > U32_MAX) {
    return Result.failure<Tbf, CniError>(invalid(what + "Rate " + rateBits.toString() + " with burst " + burstBits.toString() +
      " gives a queue limit above 4 GB"));
  }
  const t = new Tbf();
  t.rate = rate;
  t.buffer = <u32>ticks;
  t.limit = <u32>lim;
  return Result.success<Tbf, CniError>(t);
}

class Plan {
  ingress: Tbf | null = null;
  egress: Tbf | null = null;
}

function plan(bw: Bandwidth): Result<Plan, CniError> {
  const p = new Plan();
  if (bw.ingressRate == 0 && bw.egressRate == 0) return Result.success<Plan, CniError>(p);
  const t = tc.ticksPerUsec();
  if (!t.ok) return Result.failure<Plan, CniError>(hostFailure("failed to read the packet scheduler clock", t.error!));
  if (bw.ingressRate > 0 && bw.ingressBurst > 0) {
    const r = tbfFor(bw.ingressRate, bw.ingressBurst, t.value, "ingress");
    if (!r.ok) return Result.failure<Plan, CniError>(r.error!);
    p.ingress = r.value;
  }
  if (bw.egressRate > 0 && bw.egressBurst > 0) {
    const r = tbfFor(bw.egressRate, bw.egressBurst, t.value, "egress");
    if (!r.ok) return Result.failure<Plan, CniError>(r.error!);
    p.egress = r.value;
  }
  return Result.success<Plan, CniError>(p);
}

// ---------------------------------------------------------------- names

/**
 * The reference's name (bwp + sha512(network + container id)) for eth0, so an
 * IFB made by either implementation is found by the other; another ifname
 * joins the hash, so two interfaces of one container get two IFBs.
 */
export function ifbName(network: string, containerId: string, ifname: string): string {
  const key = ifname == "eth0" ? network + containerId : network + containerId + ifname;
  return (IFB_PREFIX + sha512Hex(key)).substring(0, MAX_IFNAME);
}

/** The host end of CNI_IFNAME's veth, which prevResult must list without a sandbox. */
function hostInterface(req: Request, prev: JSONValue): Result<string, CniError> {
  const ifs = prev.getArray("interfaces");
  if (ifs === null || ifs.length == 0) return Result.failure<string, CniError>(fail("no interfaces provided"));
  const peer = links.hostPeer(req.ifname);
  if (!peer.ok) {
    const e = peer.error!;
    if (e.code == "ENETNS") return Result.failure<string, CniError>(cniError(ERR_UNKNOWN_CONTAINER, "failed to open netns \"" + req.netnsPath + "\": " + e.message));
    if (e.code == "ENOENT") return Result.failure<string, CniError>(fail(e.message));
    const why = e.code == "ENODEV" ? "could not look up \"" + req.ifname + "\": Link not found" : e.message;
    return Result.failure<string, CniError>(fail("container interface " + req.ifname + " has no veth peer: " + why));
  }
  const name = peer.value.name;
  for (let i = 0; i < ifs.length; i++) {
    const it = ifs[i];
    if (it.isObject() && it.getString("sandbox").length == 0 && it.getString("name") == name) return Result.success<string, CniError>(name);
  }
  return Result.failure<string, CniError>(fail("no veth peer of container interface found in host ns"));
}

// ---------------------------------------------------------------- ADD

/** What this ADD made, so a failure can take it back. */
class Made {
  hostTbf: string = "";
  hostIngress: string = "";
  ifb: string = "";

  undo(): void {
    if (this.ifb.length > 0) { const e = links.remove(Netns.Host, this.ifb); if (e !== null) debug("removing " + this.ifb + ": " + e.message); }
    if (this.hostIngress.length > 0) { const e = tc.removeQdisc(Netns.Host, this.hostIngress, QdiscParent.Ingress); if (e !== null) debug("removing the ingress qdisc: " + e.message); }
    if (this.hostTbf.length > 0) { const e = tc.removeQdisc(Netns.Host, this.hostTbf, QdiscParent.Root); if (e !== null) debug("removing the tbf: " + e.message); }
  }
}

function shape(req: Request, c: Conf, p: Plan, host: string, made: Made, result: JSONValue): CniError | null {
  if (p.ingress !== null) {
    const e = tc.setTbf(Netns.Host, host, p.ingress!, false);
    if (e !== null) return hostFailure("create qdisc", e);
    made.hostTbf = host;
  }
  if (p.egress !== null) {
    const hl = links.get(Netns.Host, host);
    if (!hl.ok) return hostFailure("get host device", hl.error!);
    const ifb = ifbName(c.name, req.containerId, req.ifname);
    const l = links.createIfb(Netns.Host, ifb, hl.value.mtu, 0);
    if (!l.ok) return hostFailure("adding link", l.error!);
    made.ifb = ifb;
    const it = JSONValue.newObject();
    it.set("name", JSONValue.fromString(ifb));
    it.set("mac", JSONValue.fromString(l.value.mac));
    let ifs = result.get("interfaces");
    if (ifs === null || !ifs.isArray()) { ifs = JSONValue.newArray(); result.set("interfaces", ifs); }
    ifs.push(it);
    const ie = tc.addIngress(Netns.Host, host);
    if (ie !== null) return hostFailure("create ingress qdisc", ie);
    made.hostIngress = host;
    const fe = tc.redirectIngress(Netns.Host, host, ifb);
    if (fe !== null) return hostFailure("add filter", fe);
    const te = tc.setTbf(Netns.Host, ifb, p.egress!, false);
    if (te !== null) return hostFailure("create ifb qdisc: create qdisc", te);
  }
  return null;
}

// ---------------------------------------------------------------- CHECK

function checkTbf(host: string, want: Tbf): CniError | null {
  const l = tc.listQdiscs(Netns.Host, host);
  if (!l.ok) return hostFailure("failed to list the qdiscs of " + host, l.error!);
  for (let i = 0; i < l.value.length; i++) {
    const q = l.value[i];
    if (q.parent != ROOT || q.kind != "tbf" || q.tbf === null) continue;
    const t = q.tbf!;
    if (t.rate != want.rate) return fail("Rate doesn't match");
    if (t.limit != want.limit) return fail("Limit doesn't match");
    if (t.buffer != want.buffer) return fail("Buffer doesn't match");
    return null;
  }
  return fail("Failed to find qdisc");
}

function checkRedirect(host: string, ifb: string): CniError | null {
  const f = tc.listIngressFilters(Netns.Host, host);
  if (!f.ok) return hostFailure("failed to list the filters of " + host, f.error!);
  for (let i = 0; i < f.value.length; i++) {
    const x = f.value[i];
    if (x.kind == "u32" && x.matchAll && x.redirects.includes(ifb)) return null;
  }
  return fail("no filter on " + host + " redirects its traffic to " + ifb);
}

class BandwidthPlugin extends CniPlugin {
  add(req: Request): Result<string, CniError> {
    const cr = loadConf(req);
    if (!cr.ok) return Result.failure<string, CniError>(cr.error!);
    const c = cr.value;
    if (c.prevResult === null) return Result.failure<string, CniError>(fail("must be called as chained plugin"));
    const result = c.prevResult!;
    if (c.bw === null || c.bw!.isZero()) return Result.success<string, CniError>(result.stringify());
    const pr = plan(c.bw!);
    if (!pr.ok) return Result.failure<string, CniError>(pr.error!);
    if (!req.hasNetns) {
      return Result.failure<string, CniError>(cniError(ERR_UNKNOWN_CONTAINER, "failed to open netns \"" + req.netnsPath + "\": no such network namespace"));
    }
    const hr = hostInterface(req, result);
    if (!hr.ok) return Result.failure<string, CniError>(hr.error!);
    const made = new Made();
    const e = shape(req, c, pr.value, hr.value, made, result);
    if (e !== null) {
      debug("ADD failed (" + e.msg + "): undoing what it made");
      made.undo();
      return Result.failure<string, CniError>(e);
    }
    return Result.success<string, CniError>(result.stringify());
  }

  del(req: Request): CniError | null {
    const cr = loadConf(req);
    if (!cr.ok) return cr.error!;
    const ifb = ifbName(cr.value.name, req.containerId, req.ifname);
    // Missing is fine (DEL twice, or ADD never shaped egress).
    const l = links.get(Netns.Host, ifb);
    if (!l.ok) return l.error!.code == "ENODEV" ? null : hostFailure("failed to look up " + ifb, l.error!);
    const e = links.remove(Netns.Host, ifb);
    if (e === null || e.code == "ENODEV") return null;
    if (e.code == "EDENIED") {
      // Made by someone else (the reference plugin, before a switch): not ours to remove.
      log.write(Level.Warn, "leaving " + ifb + ": this attachment did not create it");
      return null;
    }
    return hostFailure("failed to delete " + ifb, e);
  }

  check(req: Request): CniError | null {
    const cr = loadConf(req);
    if (!cr.ok) return cr.error!;
    const c = cr.value;
    if (c.prevResult === null) return fail("must be called as a chained plugin");
    // Nothing to shape, nothing to compare (1.1.1 crashes here).
    if (c.bw === null || c.bw!.isZero()) return null;
    const pr = plan(c.bw!);
    if (!pr.ok) return pr.error!;
    if (!req.hasNetns) return cniError(ERR_UNKNOWN_CONTAINER, "failed to open netns \"" + req.netnsPath + "\": no such network namespace");
    const hr = hostInterface(req, c.prevResult!);
    if (!hr.ok) return hr.error!;
    const host = hr.value;
    const p = pr.value;
    if (p.ingress !== null) {
      const e = checkTbf(host, p.ingress!);
      if (e !== null) return e;
    }
    if (p.egress !== null) {
      const ifb = ifbName(c.name, req.containerId, req.ifname);
      const l = links.get(Netns.Host, ifb);
      if (!l.ok) return hostFailure("get ifb device", l.error!);
      const e = checkTbf(ifb, p.egress!);
      if (e !== null) return e;
      const fe = checkRedirect(host, ifb);
      if (fe !== null) return fe;
    }
    return null;
  }

  /** The host removes the IFBs (and qdiscs) of attachments GC does not list, from its ledger. */
  gc(req: Request): CniError | null {
    const cr = loadConf(req);
    return cr.ok ? null : cr.error!;
  }

  status(req: Request): CniError | null {
    const t = tc.ticksPerUsec();
    if (!t.ok) return cniError(50, "the packet scheduler clock is unreadable: " + t.error!.message);
    return null;
  }

  version(): Array<string> { return ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]; }
}

registerPlugin(new BandwidthPlugin());
