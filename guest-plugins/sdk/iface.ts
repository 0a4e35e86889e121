// Chores every interface plugin shares, written once: configure the
// container interface from an IPAM result (the reference's
// ipam.ConfigureIface), best-effort sysctls, the masquerade entries of a
// set of addresses, running the IPAM plugin, undoing a failed ADD.
import { CniError, Command, HostError, IpFamily, Level, Masquerade, Netns, Request, Result, Route } from "./generated/types";
import { addresses, delegate, links, log, routes, sysctl } from "./generated/imports";
import { CniResult, ERR_INTERNAL, cniError, hostFailure } from "./cni";
import { IPNet, parseCIDR, parseIP } from "./ip";

function q(s: string): string { return "\"" + s + "\""; }
function debug(msg: string): void { log.write(Level.Debug, msg); }
function fail(msg: string): CniError { return cniError(ERR_INTERNAL, msg); }

/** Sets a sysctl, logging (not failing) when the host refuses: the reference ignores these errors too. */
export function trySysctl(ns: Netns, key: string, value: string): bool {
  const e: HostError | null = sysctl.set(ns, key, value);
  if (e !== null) debug("sysctl " + key + "=" + value + ": " + e.message);
  return e === null;
}

/** One masquerade entry per address (its network's subnet excluded), for one nftables transaction. */
export function masqueradeEntries(network: string, addrs: Array<IPNet>): Array<Masquerade> {
  const out = new Array<Masquerade>();
  for (let i = 0; i < addrs.length; i++) {
    const m = new Masquerade();
    m.network = network;
    m.source = addrs[i].ip.toString();
    m.exclude = addrs[i].networkCIDR();
    out.push(m);
  }
  return out;
}

/** Addresses, link up, then routes, inside the container (the reference's ipam.ConfigureIface). */
export function configureIface(ifname: string, result: CniResult, noDad: bool, settle: bool): CniError | null {
  let v6enabled = false;
  let v4gw = "", v6gw = "";
  for (let i = 0; i < result.ips.length; i++) {
    const ipc = result.ips[i];
    const addr = parseCIDR(ipc.address)!;
    if (addr.isV6() && !v6enabled) {
      // An IPv6 address needs IPv6 on for lo and the interface.
      const names: string[] = ["lo", ifname];
      for (let k = 0; k < names.length; k++) {
        const key = "net/ipv6/conf/" + names[k] + "/disable_ipv6";
        const cur = sysctl.get(Netns.Container, key);
        if (!cur.ok || cur.value == "0") continue;
        const e = sysctl.set(Netns.Container, key, "0");
        if (e !== null) return hostFailure("failed to enable IPv6 for interface " + q(names[k]) + " (" + key + "=" + cur.value + ")", e);
      }
      v6enabled = true;
    }
    const e = addresses.add(Netns.Container, ifname, ipc.address, noDad);
    if (e !== null) return hostFailure("failed to add IP addr " + ipc.address + " to " + q(ifname), e);
    if (ipc.gateway.length > 0) {
      const gw = parseIP(ipc.gateway);
      if (gw !== null && gw.isV4() && v4gw.length == 0) v4gw = ipc.gateway;
      else if (gw !== null && gw.isV6() && v6gw.length == 0) v6gw = ipc.gateway;
    }
  }
  const up = links.setUp(Netns.Container, ifname, true);
  if (up !== null) return hostFailure("failed to set " + q(ifname) + " UP", up);
  // With DAD on, an IPv6 gateway is unusable until the address leaves its
  // tentative state: wait for that, as the reference does (up to 10 s).
  if (settle && v6gw.length > 0) {
    const se = addresses.settle(Netns.Container, ifname, 10000);
    if (se !== null) debug("addresses did not settle: " + se.message);
  }
  for (let i = 0; i < result.routes.length; i++) {
    const r = result.routes[i];
    const dst = parseCIDR(r.dst);
    if (dst === null) return fail("invalid route destination " + q(r.dst));
    let gw = r.gw;
    if (gw.length == 0) gw = dst.isV4() ? v4gw : v6gw;
    const rt = new Route();
    rt.dst = r.dst;
    rt.gw = gw;
    rt.dev = ifname;
    rt.scope = "universe"; // as Go's netlink sends it, gateway or not
    // Beside any route to the same destination another interface has (a
    // second network's default route), as the reference adds them.
    const e = routes.addEcmp(Netns.Container, rt);
    if (e !== null) return hostFailure("failed to add route '" + r.dst + " via " + (gw.length > 0 ? gw : "<nil>") + " dev " + ifname + "'", e);
  }
  return null;
}


/** Runs the config's IPAM plugin for `cmd` (nothing to do without IPAM: an L2-only attachment). */
export function ipamRun(ipamType: string, cmd: Command, req: Request): CniError | null {
  if (ipamType.length == 0) return null;
  const r = delegate.run(ipamType, cmd, req.config);
  return r.ok ? null : r.error!;
}

/** What an ADD has made so far, taken back when it fails. */
export abstract class Undoable {
  abstract undo(): void;
}

/** An ADD's result, after undoing what it made if it failed. */
export function undoIfFailed(r: Result<string, CniError>, made: Undoable): Result<string, CniError> {
  if (!r.ok) {
    debug("ADD failed (" + r.error!.msg + "): undoing what it made");
    made.undo();
  }
  return r;
}

/**
 * Removes a link, with links.remove's outcome (ENODEV when it is not there),
 * returning once the kernel has announced it gone rather than after the RCU
 * grace periods its answer waits for (links.begin-remove, then finish-remove
 * at once: for a DEL with nothing to do in between).
 */
export function removeLink(ns: Netns, name: string): HostError | null {
  const e = links.beginRemove(ns, name);
  return e !== null ? e : links.finishRemove(ns, name);
}
