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

/**
 * Where to shape. Normally the host end of CNI_IFNAME's veth, which
 * prevResult must list without a sandbox (the reference's rule). When
 * CNI_IFNAME is no veth, or its peer is not in the host namespace (macvlan,
 * ipvlan, host-device), and prevResult lists it in the sandbox, inside the
 * container instead: egress = tbf on CNI_IFNAME, ingress = its ingress
 * redirected to an IFB in the container namespace. The reference errors there.
 */
class Target {
  ns: Netns = Netns.Host;
  /** the host veth, or CNI_IFNAME in the container */
  link: string = "";
  inContainer(): bool { return this.ns == Netns.Container; }
}

function listsInSandbox(ifs: Array<JSONValue>, name: string): bool {
  for (let i = 0; i < ifs.length; i++) {
    const it = ifs[i];
    if (it.isObject() && it.getString("name") == name && it.getString("sandbox").length > 0) return true;
  }
  return false;
}

function target(req: Request, prev: JSONValue): Result<Target, CniError> {
  const ifs = prev.getArray("interfaces");
  if (ifs === null || ifs.length == 0) return Result.failure<Target, CniError>(fail("no interfaces provided"));
  const t = new Target();
  const peer = links.hostPeer(req.ifname);
  if (!peer.ok) {
    const e = peer.error!;
    if (e.code == "ENETNS") return Result.failure<Target, CniError>(cniError(ERR_UNKNOWN_CONTAINER, "failed to open netns \"" + req.netnsPath + "\": " + e.message));
    if ((e.code == "EINVAL" || e.code == "ENOENT") && listsInSandbox(ifs!, req.ifname)) {
      t.ns = Netns.Container;
      t.link = req.ifname;
      return Result.success<Target, CniError>(t);
    }
    if (e.code == "ENOENT") return Result.failure<Target, CniError>(fail(e.message));
    const why = e.code == "ENODEV" ? "could not look up \"" + req.ifname + "\": Link not found" : e.message;
    return Result.failure<Target, CniError>(fail("container interface " + req.ifname + " has no veth peer: " + why));
  }
  const name = peer.value.name;
  for (let i = 0; i < ifs.length; i++) {
    const it = ifs[i];
    if (it.isObject() && it.getString("sandbox").length == 0 && it.getString("name") == name) {
      t.link = name;
      return Result.success<Target, CniError>(t);
    }
  }
  return Result.failure<Target, CniError>(fail("no veth peer of container interface found in host ns"));
}

// ---------------------------------------------------------------- ADD

/** What this ADD made, so a failure can take it back. */
class Made {
  ns: Netns = Netns.Host;
  rootTbf: string = "";
  ingressQdisc: string = "";
  ifb: string = "";

  undo(): void {
    if (this.ifb.length > 0) { const e = links.remove(this.ns, this.ifb); if (e !== null) debug("removing " + this.ifb + ": " + e.message); }
    if (this.ingressQdisc.length > 0) { const e = tc.removeQdisc(this.ns, this.ingressQdisc, QdiscParent.Ingress); if (e !== null) debug("removing the ingress qdisc: " + e.message); }
    if (this.rootTbf.length > 0) { const e = tc.removeQdisc(this.ns, this.rootTbf, QdiscParent.Root); if (e !== null) debug("removing the tbf: " + e.message); }
  }
}

/** The IFB that takes `link`'s received traffic through `spec`; appended to the result. */
function redirectThroughIfb(req: Request, c: Conf, t: Target, spec: Tbf, made: Made, result: JSONValue): CniError | null {
  const hl = links.get(t.ns, t.link);
  if (!hl.ok) return hostFailure("get host device", hl.error!);
  const ifb = ifbName(c.name, req.containerId, req.ifname);
  const l = links.createIfb(t.ns, ifb, hl.value.mtu, 0);
  if (!l.ok) return hostFailure("adding link", l.error!);
  made.ifb = ifb;
  const it = JSONValue.newObject();
  it.set("name", JSONValue.fromString(ifb));
  it.set("mac", JSONValue.fromString(l.value.mac));
  if (t.inContainer()) it.set("sandbox", JSONValue.fromString(req.netnsPath));
  let ifs = result.get("interfaces");
  if (ifs === null || !ifs.isArray()) { ifs = JSONValue.newArray(); result.set("interfaces", ifs); }
  ifs.push(it);
  const ie = tc.addIngress(t.ns, t.link);
  if (ie !== null) return hostFailure("create ingress qdisc", ie);
  made.ingressQdisc = t.link;
  const fe = tc.redirectIngress(t.ns, t.link, ifb);
  if (fe !== null) return hostFailure("add filter", fe);
  const te = tc.setTbf(t.ns, ifb, spec, false);
  if (te !== null) return hostFailure("create ifb qdisc: create qdisc", te);
  return null;
}

function shape(req: Request, c: Conf, p: Plan, t: Target, made: Made, result: JSONValue): CniError | null {
  made.ns = t.ns;
  // On the host veth the root tbf limits what the container receives, the
  // IFB what it sends; inside the container the other way round.
  const onRoot = t.inContainer() ? p.egress : p.ingress;
  const viaIfb = t.inContainer() ? p.ingress : p.egress;
  if (onRoot !== null) {
    const e = tc.setTbf(t.ns, t.link, onRoot!, false);
    if (e !== null) return hostFailure("create qdisc", e);
    made.rootTbf = t.link;
  }
  if (viaIfb !== null) return redirectThroughIfb(req, c, t, viaIfb!, made, result);
  return null;
}

// ---------------------------------------------------------------- CHECK

function checkTbf(ns: Netns, link: string, want: Tbf): CniError | null {
  const l = tc.listQdiscs(ns, link);
  if (!l.ok) return hostFailure("failed to list the qdiscs of " + link, l.error!);
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

function checkRedirect(ns: Netns, link: string, ifb: string): CniError | null {
  const f = tc.listIngressFilters(ns, link);
  if (!f.ok) return hostFailure("failed to list the filters of " + link, f.error!);
  for (let i = 0; i < f.value.length; i++) {
    const x = f.value[i];
    if (x.kind == "u32" && x.matchAll && x.redirects.includes(ifb)) return null;
  }
  return fail("no filter on " + link + " redirects its traffic to " + ifb);
}

/** Removes the IFB in ns if it is there; EDENIED (not ours) is left with a warning. */
function removeIfb(ns: Netns, ifb: string): CniError | null {
  const l = links.get(ns, ifb);
  if (!l.ok) return l.error!.code == "ENODEV" || l.error!.code == "ENETNS" ? null : hostFailure("failed to look up " + ifb, l.error!);
  const e = links.remove(ns, ifb);
  if (e === null || e.code == "ENODEV") return null;
  if (e.code == "EDENIED") {
    // Made by someone else (the reference plugin, before a switch): not ours to remove.
    log.write(Level.Warn, "leaving " + ifb + ": this attachment did not create it");
    return null;
  }
  return hostFailure("failed to delete " + ifb, e);
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
    const tr = target(req, result);
    if (!tr.ok) return Result.failure<string, CniError>(tr.error!);
    const made = new Made();
    const e = shape(req, c, pr.value, tr.value, made, result);
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
    // Missing is fine (DEL twice, or ADD never made one); the host's IFB
    // first, then one inside the container (shaping without a host veth).
    const ifb = ifbName(cr.value.name, req.containerId, req.ifname);
    const e = removeIfb(Netns.Host, ifb);
    if (e !== null) return e;
    if (!req.hasNetns) return null;
    const inside = links.get(Netns.Container, ifb);
    if (!inside.ok) return null;
    const ce = removeIfb(Netns.Container, ifb);
    if (ce !== null) return ce;
    // and the qdiscs it put on CNI_IFNAME, which may outlive this DEL
    const q = tc.removeQdisc(Netns.Container, req.ifname, QdiscParent.Ingress);
    if (q !== null) debug("removing the ingress qdisc of " + req.ifname + ": " + q.message);
    const l = tc.listQdiscs(Netns.Container, req.ifname);
    if (l.ok) {
      for (let i = 0; i < l.value.length; i++) {
        if (l.value[i].kind == "tbf" && l.value[i].parent == ROOT) tc.removeQdisc(Netns.Container, req.ifname, QdiscParent.Root);
      }
    }
    return null;
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
    const tr = target(req, c.prevResult!);
    if (!tr.ok) return tr.error!;
    const t = tr.value;
    const p = pr.value;
    const onRoot = t.inContainer() ? p.egress : p.ingress;
    const viaIfb = t.inContainer() ? p.ingress : p.egress;
    if (onRoot !== null) {
      const e = checkTbf(t.ns, t.link, onRoot!);
      if (e !== null) return e;
    }
    if (viaIfb !== null) {
      const ifb = ifbName(c.name, req.containerId, req.ifname);
      const l = links.get(t.ns, ifb);
      if (!l.ok) return hostFailure("get ifb device", l.error!);
      const e = checkTbf(t.ns, ifb, viaIfb!);
      if (e !== null) return e;
      const fe = checkRedirect(t.ns, t.link, ifb);
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
}

registerPlugin(new BandwidthPlugin());
