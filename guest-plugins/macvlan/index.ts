// macvlan: give the container its own MAC on a host link (the master), as
// the reference macvlan plugin (containernetworking/plugins) does, with its
// later linkInContainer and bcqueuelen. ADD reads top to bottom like the
// recipe:
//
//   config → master (configured, or the default route's) and its MTU →
//   macvlan born in the container under a temporary name, renamed to
//   CNI_IFNAME → arp_notify/ndisc_notify → IPAM → addresses, link up,
//   routes (or only link up, without IPAM) → result
//
// The master is used as a parent only: the host lets this plugin create a
// macvlan on it and nothing else (no change, move or delete). A failed ADD
// takes back the link and the lease (the reference leaks the link when IPAM
// fails). DEL needs neither the master nor the namespace.
import {
  CniError, CniPlugin, CniResult, Command, Level, Link, MacvlanSpec, Netns, Request, Result,
  ERR_INTERNAL, ERR_UNKNOWN_CONTAINER, checkExpectedRoutes, checkInterfaceIPs, checkIpamAndPrevResult, cniError, configureIface,
  Undoable, delegate, hostFailure, ipamRun, links, log, registerPlugin, removeLink, trySysctl, undoIfFailed,
} from "../sdk";
import { MacvlanConf, loadConf, modeName } from "./config";

function fail(msg: string, details: string = ""): CniError { return cniError(ERR_INTERNAL, msg, details); }
function debug(msg: string): void { log.write(Level.Debug, msg); }
function q(s: string): string { return "\"" + s + "\""; }

function noNetns(req: Request): CniError {
  return cniError(ERR_UNKNOWN_CONTAINER, "failed to open netns " + q(req.netnsPath) + ": no such network namespace");
}

/** The kernel's reason as Go prints an errno ("invalid argument"), from the host's "what: Reason". */
function errnoText(message: string): string {
  const at = message.lastIndexOf(": ");
  const why = at >= 0 ? message.substring(at + 2) : message;
  return why.length > 0 ? why.charAt(0).toLowerCase() + why.substring(1) : why;
}

// ---------------------------------------------------------------- master

/**
 * The master, as the reference's loadConf finds it: the configured one, or
 * the link of the default route (in the container with linkInContainer);
 * then the MTU must be from 0 to the master's.
 */
function resolveMaster(c: MacvlanConf): Result<Link, CniError> {
  const ns = c.masterNs();
  if (!c.masterConfigured) {
    const d = links.defaultRouteLink(ns);
    if (!d.ok) {
      if (d.error!.code == "ENOENT") {
        return Result.failure<Link, CniError>(cniError(ERR_INTERNAL, "no default route interface found",
          "\"master\" is not set and the " + (c.linkInContainer ? "container" : "host") + " namespace has no default route; name the master link"));
      }
      return Result.failure<Link, CniError>(hostFailure("failed to find the default route interface", d.error!));
    }
    c.master = d.value.name;
  }
  const m = links.get(ns, c.master);
  if (!m.ok) {
    const e = m.error!;
    if (e.code == "ENODEV") {
      return Result.failure<Link, CniError>(cniError(ERR_INTERNAL, "failed to lookup master " + q(c.master) + ": Link not found",
        "\"master\" names no link in the " + (c.linkInContainer ? "container" : "host") + " namespace"));
    }
    return Result.failure<Link, CniError>(hostFailure("failed to lookup master " + q(c.master), e));
  }
  if (c.mtu < 0 || c.mtu > <i64>m.value.mtu) {
    return Result.failure<Link, CniError>(cniError(7, "invalid MTU " + c.mtu.toString() + ", must be [0, master MTU(" + m.value.mtu.toString() + ")]"));
  }
  return Result.success<Link, CniError>(m.value);
}

// ---------------------------------------------------------------- ADD

/** What this ADD has made so far, so a failure can take it back. */
class Attachment extends Undoable {
  linkMade: bool = false;
  ipamDone: bool = false;
  constructor(public req: Request, public conf: MacvlanConf) { super(); }

  undo(): void {
    if (this.ipamDone) {
      const r = delegate.run(this.conf.ipamType, Command.Del, this.req.config);
      if (!r.ok) debug("releasing the IPAM lease failed: " + r.error!.msg);
    }
    if (this.linkMade) {
      const e = links.remove(Netns.Container, this.req.ifname);
      if (e !== null) debug("removing " + q(this.req.ifname) + " failed: " + e.message);
    }
  }
}

function createMacvlan(a: Attachment): Result<Link, CniError> {
  const c = a.conf;
  const spec = new MacvlanSpec();
  spec.name = a.req.ifname;
  spec.master = c.master;
  spec.masterNs = c.masterNs();
  spec.mode = c.mode;
  spec.mtu = <u32>c.mtu;
  spec.mac = c.mac.length > 0 ? c.mac : null;
  spec.bcqueuelen = c.bcQueueLen;
  const r = links.createMacvlan(spec);
  if (!r.ok) {
    const e = r.error!;
    // the temporary name is the host's random pick: EEXIST is the rename to CNI_IFNAME
    if (e.code == "EEXIST") return Result.failure<Link, CniError>(fail("failed to rename macvlan to " + q(a.req.ifname) + ": file exists", e.message));
    return Result.failure<Link, CniError>(fail("failed to create macvlan: " + errnoText(e.message), e.message));
  }
  a.linkMade = true;
  return Result.success<Link, CniError>(r.value);
}

function addAttachment(a: Attachment): Result<string, CniError> {
  const c = a.conf, req = a.req;
  const mr = resolveMaster(c);
  if (!mr.ok) return Result.failure<string, CniError>(mr.error!);

  const lr = createMacvlan(a);
  if (!lr.ok) return Result.failure<string, CniError>(lr.error!);

  const result = new CniResult();
  result.addInterface(req.ifname, lr.value.mac, req.netnsPath);

  if (c.isLayer3()) {
    const out = delegate.run(c.ipamType, Command.Add, req.config);
    if (!out.ok) return Result.failure<string, CniError>(out.error!);
    a.ipamDone = true;
    const ipam = CniResult.parse(out.value);
    if (ipam === null) return Result.failure<string, CniError>(fail("could not read the result of IPAM plugin " + q(c.ipamType)));
    if (ipam.ips.length == 0) return Result.failure<string, CniError>(fail("IPAM plugin returned missing IP config"));
    result.ips = ipam.ips;
    result.routes = ipam.routes;
    // every address is the macvlan's
    for (let i = 0; i < result.ips.length; i++) result.ips[i].iface = 0;

    trySysctl(Netns.Container, "net/ipv4/conf/" + req.ifname + "/arp_notify", "1");
    trySysctl(Netns.Container, "net/ipv6/conf/" + req.ifname + "/ndisc_notify", "1");
    // DAD runs (macvlan leaves it on): wait for it before the IPv6 routes, as the reference does
    const ce = configureIface(req.ifname, result, false, true);
    if (ce !== null) return Result.failure<string, CniError>(ce);
  } else {
    // Layer 2 only: the link just has to be up.
    const e = links.setUp(Netns.Container, req.ifname, true);
    if (e !== null) return Result.failure<string, CniError>(hostFailure("failed to set " + q(req.ifname) + " UP", e));
  }

  // The config's DNS, as the reference reports it.
  result.dns = c.dns;
  return Result.success<string, CniError>(result.stringify());
}

// ---------------------------------------------------------------- CHECK

function checkAttachment(req: Request, c: MacvlanConf): CniError | null {
  const mr = resolveMaster(c);
  if (!mr.ok) return mr.error!;
  const pr = checkIpamAndPrevResult(c.ipamType, req, c.prevResult);
  if (!pr.ok) return pr.error!;
  const result = pr.value;

  let name = "", mac = "", sandbox = "";
  for (let i = 0; i < result.interfaces.length; i++) {
    const it = result.interfaces[i];
    if (it.name == req.ifname && it.sandbox == req.netnsPath) { name = it.name; mac = it.mac; sandbox = it.sandbox; }
  }
  if (sandbox != req.netnsPath) return fail("Sandbox in prevResult " + sandbox + " doesn't match configured netns: " + req.netnsPath);

  // validateCniContainerInterface: a macvlan in the container, in the configured mode, with the result's MAC
  if (name.length == 0) return fail("Container interface name missing in prevResult: " + name);
  const l = links.get(Netns.Container, name);
  if (!l.ok) return fail("Container Interface name in prevResult: " + name + " not found");
  if (l.value.kind != "macvlan") return fail("Error: Container interface " + name + " not of type macvlan");
  const mv = links.getMacvlan(Netns.Container, name);
  if (!mv.ok) return hostFailure("failed to read the macvlan settings of " + q(name), mv.error!);
  if (mv.value.mode != c.mode) {
    return fail("Container macvlan mode " + modeName(mv.value.mode) + " does not match expected value: " + modeName(c.mode));
  }
  if (mac.length > 0 && mac != l.value.mac) return fail("Interface " + name + " Mac " + mac + " doesn't match container Mac: " + l.value.mac);

  const ae = checkInterfaceIPs(req.ifname, result);
  if (ae !== null) return ae;
  return checkExpectedRoutes(result);
}

// ---------------------------------------------------------------- the plugin

/** DEL, GC and STATUS need only the IPAM type (lenient: as the reference's DEL, nothing else must decode). */
function ipamOnly(req: Request, cmd: Command): CniError | null {
  const cr = loadConf(req, true);
  return cr.ok ? ipamRun(cr.value.ipamType, cmd, req) : cr.error!;
}

class Macvlan extends CniPlugin {
  add(req: Request): Result<string, CniError> {
    const cr = loadConf(req);
    if (!cr.ok) return Result.failure<string, CniError>(cr.error!);
    if (!req.hasNetns) return Result.failure<string, CniError>(noNetns(req));
    const a = new Attachment(req, cr.value);
    return undoIfFailed(addAttachment(a), a);
  }

  /**
   * The lease first, then CNI_IFNAME in the container: neither the master
   * nor the namespace needs to be there still (the reference 1.1.1 looks the
   * master up first and fails when it is gone).
   */
  del(req: Request): CniError | null {
    const ie = ipamOnly(req, Command.Del);
    if (ie !== null) return ie;
    if (!req.hasNetns) return null;
    // After the lease, as the reference: a failed release leaves the link for
    // the runtime's retry. Done once the kernel announces the link gone.
    const e = removeLink(Netns.Container, req.ifname);
    if (e !== null && e.code != "ENODEV" && e.code != "ENETNS") return hostFailure("failed to delete " + q(req.ifname), e);
    return null;
  }

  check(req: Request): CniError | null {
    const cr = loadConf(req);
    if (!cr.ok) return cr.error!;
    if (!req.hasNetns) return noNetns(req);
    return checkAttachment(req, cr.value);
  }

  /** GC and STATUS are the IPAM plugin's business, as in the reference. */
  gc(req: Request): CniError | null { return ipamOnly(req, Command.Gc); }
  status(req: Request): CniError | null { return ipamOnly(req, Command.Status); }
}

registerPlugin(new Macvlan());
