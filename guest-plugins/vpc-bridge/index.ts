// vpc-bridge: containers behind a bridge per ENI, with aws's
// amazon-vpc-cni-plugins semantics on Linux (plugins/vpc-bridge). ADD:
//
//   config → the ENI (by name, or by MAC) → the network part, once per ENI:
//   bridge "<name>br<ENI ifindex>" at MTU 9001 with its MTU-pinning companion
//   link (a dummy; an IFB where the kernel has no dummy driver), bridge MAC
//   pinned to the companion's, L3 sysctls (proxy ARP, forwarding, accept_ra)
//   → the endpoint: veth "veth<cid[:8]>" into the bridge, the peer as
//   CNI_IFNAME, a host /32 (/128) scope-link route to the bridge, the
//   container's addresses, a default route via the gateway (onlink) and a
//   permanent neighbour entry gateway → bridge MAC → result.
//
// The network part is built between groups.join and groups.seal, so every
// attachment on the ENI holds it in its ledger and the sweep of the last one
// removes it (and puts the sysctls back). A failed ADD is swept by the host.
import {
  CniError, CniPlugin, CniResult, HostError, IPNet, IpFamily, Level, Link, Neighbour, Netns, Request, Result, Route, VethSpec,
  ERR_INTERNAL, IPConfig, cniError, groups, hostFailure, links, log, neighbours, addresses, parseCIDR, parseIP, registerPlugin, removeLink, routes, sysctl, uplinks,
} from "../sdk";
import { JUMBO_MTU, VERSIONS, VpcConf, loadConf } from "./config";

function fail(msg: string, details: string = ""): CniError { return cniError(ERR_INTERNAL, msg, details); }
function debug(msg: string): void { log.write(Level.Debug, msg); }
function q(s: string): string { return "\"" + s + "\""; }

/** Errors that mean "already gone" to a DEL. */
function gone(e: HostError): bool {
  return e.code == "ENODEV" || e.code == "ENOENT" || e.code == "ESRCH" || e.code == "ENETNS" || e.code == "EADDRNOTAVAIL";
}

// ---------------------------------------------------------------- the ENI

function findEni(c: VpcConf): Result<Link, CniError> {
  if (c.eniName.length > 0) {
    const l = links.get(Netns.Host, c.eniName);
    if (!l.ok) {
      if (l.error!.code == "ENODEV") return Result.failure<Link, CniError>(fail("failed to find ENI " + q(c.eniName) + " (\"eniName\"): no such network interface"));
      return Result.failure<Link, CniError>(hostFailure("failed to find ENI " + q(c.eniName), l.error!));
    }
    return Result.success<Link, CniError>(l.value);
  }
  // By MAC: the one with the shortest name, as aws picks.
  const all = links.list(Netns.Host);
  if (!all.ok) return Result.failure<Link, CniError>(hostFailure("failed to list links", all.error!));
  let best: Link | null = null;
  for (let i = 0; i < all.value.length; i++) {
    const l = all.value[i];
    if (l.mac == c.eniMac && (best === null || best.name.length > l.name.length)) best = l;
  }
  if (best === null) return Result.failure<Link, CniError>(fail("failed to find ENI by \"eniMACAddress\" " + c.eniMac + ": invalid MAC address"));
  return Result.success<Link, CniError>(best!);
}

export function bridgeName(c: VpcConf, eni: Link): string { return c.name + "br" + eni.index.toString(); }
export function companionName(bridge: string): string { return bridge + "dummy"; }
export function vethName(req: Request): string {
  return "veth" + (req.containerId.length > 8 ? req.containerId.substr(0, 8) : req.containerId);
}

function hasV4(a: Array<IPNet>): bool { for (let i = 0; i < a.length; i++) if (a[i].isV4()) return true; return false; }
function hasV6(a: Array<IPNet>): bool { for (let i = 0; i < a.length; i++) if (a[i].isV6()) return true; return false; }

// ---------------------------------------------------------------- network part

function setKey(key: string, value: string): CniError | null {
  const e = sysctl.setRestored(Netns.Host, key, value);
  return e !== null ? hostFailure("failed to set " + key + "=" + value, e) : null;
}

/** The bridge and what goes with it, unless the bridge exists (then, as aws, it is used as found). */
function buildNetwork(c: VpcConf, eni: Link, br: string): Result<Link, CniError> {
  const found = links.get(Netns.Host, br);
  if (found.ok) {
    if (found.value.kind != "bridge") return Result.failure<Link, CniError>(fail(q(br) + " already exists but is not a bridge"));
    return Result.success<Link, CniError>(found.value);
  }
  if (found.error!.code != "ENODEV") return Result.failure<Link, CniError>(hostFailure("failed to look up bridge " + q(br), found.error!));
  const made = links.createBridge(br, JUMBO_MTU, false);
  if (!made.ok) return Result.failure<Link, CniError>(hostFailure("failed to create bridge link " + q(br), made.error!));

  // The bridge takes the smallest MTU of its ports: a companion port at 9001 pins it.
  const comp = companionName(br);
  let cl = links.createDummy(comp, JUMBO_MTU);
  if (!cl.ok && cl.error!.code == "EOPNOTSUPP") {
    // No dummy driver in this kernel: an IFB does the same job (a port that never carries traffic).
    debug("no dummy link type here; the companion link " + comp + " is an IFB");
    cl = links.createIfb(Netns.Host, comp, JUMBO_MTU, 1000);
  }
  if (!cl.ok) return Result.failure<Link, CniError>(hostFailure("failed to create dummy link " + q(comp), cl.error!));
  let e = links.setMaster(Netns.Host, comp, br);
  if (e !== null) return Result.failure<Link, CniError>(hostFailure("failed to connect " + q(comp) + " to " + q(br), e));
  e = links.setUp(Netns.Host, comp, true);
  if (e !== null) return Result.failure<Link, CniError>(hostFailure("failed to set dummy link state up", e));
  // A fixed MAC: the bridge would otherwise follow the lowest port MAC as veths come and go.
  e = links.setMac(Netns.Host, br, cl.value.mac);
  if (e !== null) return Result.failure<Link, CniError>(hostFailure("failed to set bridge link MAC address", e));
  e = links.setUp(Netns.Host, br, true);
  if (e !== null) return Result.failure<Link, CniError>(hostFailure("failed to set bridge link state up", e));

  if (c.isL2()) {
    // L2: the bridge takes the ENI's address and default route (to the subnet's gateway);
    // frames are switched between the veths and the ENI, which becomes a port.
    const addr = c.eniIPs[0];
    e = uplinks.lend(eni.name, br, addr.toString(), subnetGateway(addr), JUMBO_MTU);
    if (e !== null) return Result.failure<Link, CniError>(hostFailure("failed to move ENI " + q(eni.name) + " and its address " + addr.toString() + " to " + q(br), e));
    e = uplinks.natAdd(eni.name);
    if (e !== null) return Result.failure<Link, CniError>(hostFailure("failed to add the layer-2 rules for ENI link " + q(eni.name), e));
    const gotL2 = links.get(Netns.Host, br);
    if (!gotL2.ok) return Result.failure<Link, CniError>(hostFailure("failed to look up bridge " + q(br), gotL2.error!));
    return Result.success<Link, CniError>(gotL2.value);
  }

  // L3: the IP address and default route stay on the ENI; datagrams are routed between it and the bridge.
  if (hasV4(c.eniIPs)) {
    let se = setKey("net/ipv4/conf/" + br + "/proxy_arp", "1");
    if (se !== null) return Result.failure<Link, CniError>(se!);
    se = setKey("net/ipv4/neigh/" + br + "/proxy_delay", "0");
    if (se !== null) debug(se!.msg); // aws logs this one and carries on
    se = setKey("net/ipv4/conf/" + br + "/forwarding", "1");
    if (se !== null) return Result.failure<Link, CniError>(se!);
    se = setKey("net/ipv4/conf/" + eni.name + "/forwarding", "1");
    if (se !== null) return Result.failure<Link, CniError>(se!);
  }
  if (hasV6(c.eniIPs)) {
    let se = setKey("net/ipv6/conf/all/forwarding", "1");
    if (se !== null) return Result.failure<Link, CniError>(se!);
    se = setKey("net/ipv6/conf/" + br + "/accept_ra", "2");
    if (se !== null) return Result.failure<Link, CniError>(se!);
    se = setKey("net/ipv6/conf/" + eni.name + "/accept_ra", "2");
    if (se !== null) return Result.failure<Link, CniError>(se!);
  }
  const got = links.get(Netns.Host, br);
  if (!got.ok) return Result.failure<Link, CniError>(hostFailure("failed to look up bridge " + q(br), got.error!));
  return Result.success<Link, CniError>(got.value);
}

// ---------------------------------------------------------------- endpoint

class Plan {
  /** container addresses: IPv4 as given, IPv6 as /128 */
  addrs: Array<IPNet> = new Array<IPNet>();
  gateways: Array<string> = new Array<string>();
  gw4: string = "";
}

function hostRoute(ip: IPNet, br: string): Route {
  const r = new Route();
  r.dst = ip.ip.toString() + "/" + ip.ip.bitLen().toString();
  r.dev = br;
  r.scope = "link";
  return r;
}

/** The subnet's first host: the VPC router (aws's vpc.NewSubnet(...).Gateways[0]). */
function subnetGateway(ip: IPNet): string { return ip.network().next().toString(); }

function bridgeLinkLocal(br: string): string {
  const l = addresses.list(Netns.Host, br, IpFamily.V6);
  if (!l.ok) return "";
  let found = "";
  for (let i = 0; i < l.value.length; i++) {
    if (l.value[i].scope == "link") { const n = parseCIDR(l.value[i].cidr); if (n !== null) found = n.ip.toString(); }
  }
  return found;
}

function plan(c: VpcConf, br: string): Plan {
  const p = new Plan();
  let have6 = false;
  for (let i = 0; i < c.ips.length; i++) {
    const ip = c.ips[i];
    if (ip.isV4()) {
      p.addrs.push(ip);
      if (p.gw4.length == 0) {
        p.gw4 = c.gateway.length > 0 ? c.gateway : subnetGateway(ip);
        p.gateways.push(p.gw4);
      }
    } else {
      p.addrs.push(new IPNet(ip.ip, 128));
      if (!have6) { have6 = true; p.gateways.push(bridgeLinkLocal(br)); }
    }
  }
  return p;
}

/** L2: the container's addresses as given (aws's L2 path forgets them) and a default route via the gateway. */
function planL2(c: VpcConf): Plan {
  const p = new Plan();
  for (let i = 0; i < c.ips.length; i++) {
    p.addrs.push(c.ips[i]);
    if (c.ips[i].isV4() && p.gw4.length == 0) { p.gw4 = c.gateway.length > 0 ? c.gateway : subnetGateway(c.ips[i]); p.gateways.push(p.gw4); }
  }
  return p;
}

function addEndpoint(req: Request, c: VpcConf, eni: Link, bridge: Link): Result<string, CniError> {
  const br = bridge.name, veth = vethName(req), ifname = req.ifname;
  const spec = new VethSpec();
  spec.containerName = ifname;
  spec.hostName = veth;
  spec.mtu = JUMBO_MTU;
  const pair = links.createVeth(spec);
  if (!pair.ok) {
    if (pair.error!.code == "EEXIST") return Result.failure<string, CniError>(fail("failed to add veth pair " + veth + ": " + q(veth) + " or " + q(ifname) + " already exists"));
    return Result.failure<string, CniError>(hostFailure("failed to add veth pair " + veth, pair.error!));
  }
  let e = links.setMaster(Netns.Host, veth, br);
  if (e !== null) return Result.failure<string, CniError>(hostFailure("failed to connect " + q(veth) + " to bridge " + q(br), e));
  e = links.setUp(Netns.Host, veth, true);
  if (e !== null) return Result.failure<string, CniError>(hostFailure("failed to set veth link " + veth + " state up", e));

  const p = c.isL2() ? planL2(c) : plan(c, br);
  if (!c.isL2()) {
    for (let i = 0; i < c.ips.length; i++) {
      const re = routes.add(Netns.Host, hostRoute(c.ips[i], br));
      if (re !== null && re.code != "EEXIST") return Result.failure<string, CniError>(hostFailure("failed to add IP route to bridge for " + c.ips[i].ip.toString(), re));
    }
  }

  // The container side.
  e = links.setUp(Netns.Container, ifname, true);
  if (e !== null) return Result.failure<string, CniError>(hostFailure("failed to set veth link state up", e));
  for (let i = 0; i < p.addrs.length; i++) {
    const a = p.addrs[i];
    if (a.isV6()) {
      e = sysctl.set(Netns.Container, "net/ipv6/conf/" + ifname + "/accept_dad", "0");
      if (e !== null) return Result.failure<string, CniError>(hostFailure("failed to disable IPv6 accept DAD on " + ifname, e));
    }
    e = addresses.add(Netns.Container, ifname, a.toString(), a.isV6());
    if (e !== null) return Result.failure<string, CniError>(hostFailure("failed to assign IP address to link " + ifname, e));
  }
  for (let i = 0; i < p.gateways.length; i++) {
    const gw = p.gateways[i];
    const g = parseIP(gw);
    if (g === null) return Result.failure<string, CniError>(fail("no gateway address for " + (i == 0 && p.gw4.length > 0 ? "IPv4" : "IPv6") + " on bridge " + q(br)));
    const rt = new Route();
    rt.dst = g.isV4() ? "0.0.0.0/0" : "::/0";
    rt.gw = gw;
    rt.dev = ifname;
    rt.onlink = true;
    e = routes.add(Netns.Container, rt);
    if (e !== null) return Result.failure<string, CniError>(hostFailure("failed to add IP route " + rt.dst + " via " + gw, e));
    if (g.isV4() && bridge.mac.length > 0 && !c.isL2()) {
      const n = new Neighbour();
      n.link = ifname;
      n.ip = gw;
      n.mac = bridge.mac;
      n.permanent = true;
      e = neighbours.add(Netns.Container, n);
      if (e !== null) return Result.failure<string, CniError>(hostFailure("failed to add neighbor entry for gateway " + gw, e));
    }
  }

  if (c.isL2()) {
    // what arrives on the ENI for the endpoint's address goes to the endpoint's MAC
    for (let i = 0; i < c.ips.length; i++) {
      if (!c.ips[i].isV4()) continue;
      e = uplinks.endpointAdd(eni.name, c.ips[i].ip.toString(), pair.value.container.mac);
      if (e !== null) return Result.failure<string, CniError>(hostFailure("failed to append DNAT rule for veth link " + veth, e));
    }
  }

  const result = new CniResult();
  result.addInterface(ifname, pair.value.container.mac, req.netnsPath);
  for (let i = 0; i < c.ips.length; i++) {
    const ip = c.ips[i];
    const ipc = new IPConfigLike();
    const out = result.ips;
    const entry = ipc.make(ip.toString(), ip.isV4() ? c.gateway : "");
    if (ip.isV6() && c.kubernetes !== null) {
      // aws: Kubernetes takes the first address; report only the first IPv6 one in dual stack
      result.ips = [entry];
      break;
    }
    out.push(entry);
  }
  return Result.success<string, CniError>(result.stringify());
}

class IPConfigLike {
  make(address: string, gateway: string): IPConfig {
    const x = new IPConfig();
    x.address = address;
    x.gateway = gateway;
    x.iface = 0;
    return x;
  }
}

// ---------------------------------------------------------------- CHECK

function checkAttachment(req: Request, c: VpcConf): CniError | null {
  const er = findEni(c);
  if (!er.ok) return er.error!;
  const br = bridgeName(c, er.value);
  const b = links.get(Netns.Host, br);
  if (!b.ok) return fail("bridge " + q(br) + " is missing");
  if (b.value.kind != "bridge" || !b.value.up) return fail("bridge " + q(br) + " is not an up bridge");
  if (b.value.mtu != JUMBO_MTU) return fail("bridge " + q(br) + " has MTU " + b.value.mtu.toString() + ", expected " + JUMBO_MTU.toString());
  const veth = vethName(req);
  const v = links.get(Netns.Host, veth);
  if (!v.ok) return fail("veth " + q(veth) + " is missing");
  if (v.value.master != br || !v.value.up) return fail("veth " + q(veth) + " is not an up port of " + q(br));
  if (!req.hasNetns) return fail("the container's network namespace is gone");
  const ct = links.get(Netns.Container, req.ifname);
  if (!ct.ok) return fail("container interface " + q(req.ifname) + " is missing");
  if (!ct.value.up) return fail("container interface " + q(req.ifname) + " is down");
  const prev = c.prevResult;
  if (prev !== null) {
    const ifs = prev!.getArray("interfaces");
    if (ifs !== null) {
      for (let i = 0; i < ifs!.length; i++) {
        const it = ifs![i];
        if (it.getString("name") == req.ifname && it.getString("mac").length > 0 && it.getString("mac").toLowerCase() != ct.value.mac) {
          return fail("container interface " + q(req.ifname) + " has MAC " + ct.value.mac + ", prevResult says " + it.getString("mac"));
        }
      }
    }
  }
  if (c.isL2()) {
    // the ENI is a port of the bridge, which holds the ENI's address
    if (er.value.master != br) return fail("ENI " + q(er.value.name) + " is not a port of " + q(br));
    const ba = addresses.list(Netns.Host, br, c.eniIPs[0].isV4() ? IpFamily.V4 : IpFamily.V6);
    if (!ba.ok) return hostFailure("failed to list addresses of " + q(br), ba.error!);
    let has = false;
    for (let j = 0; j < ba.value.length; j++) if (ba.value[j].cidr == c.eniIPs[0].toString()) has = true;
    if (!has) return fail("bridge " + q(br) + " lacks the ENI's address " + c.eniIPs[0].toString());
  }
  const p = c.isL2() ? planL2(c) : plan(c, br);
  for (let f = 0; f < 2; f++) {
    const list = addresses.list(Netns.Container, req.ifname, f == 0 ? IpFamily.V4 : IpFamily.V6);
    if (!list.ok) return hostFailure("failed to list addresses of " + q(req.ifname), list.error!);
    for (let i = 0; i < p.addrs.length; i++) {
      const want = p.addrs[i];
      if ((f == 0) != want.isV4()) continue;
      let found = false;
      for (let j = 0; j < list.value.length; j++) {
        const have = parseCIDR(list.value[j].cidr);
        if (have !== null && have.ip.equals(want.ip) && have.prefix == want.prefix) found = true;
      }
      if (!found) return fail("container interface " + q(req.ifname) + " lacks address " + want.toString());
    }
  }
  for (let i = 0; i < c.ips.length && !c.isL2(); i++) {
    const want = hostRoute(c.ips[i], br);
    const rl = routes.list(Netns.Host, c.ips[i].isV4() ? IpFamily.V4 : IpFamily.V6);
    if (!rl.ok) return hostFailure("failed to list host routes", rl.error!);
    let found = false;
    // (IPv6 routes have no scope: the kernel keeps them all as universe)
    for (let j = 0; j < rl.value.length; j++) if (rl.value[j].dst == want.dst && rl.value[j].dev == br && (rl.value[j].scope == "link" || c.ips[i].isV6())) found = true;
    if (!found) return fail("host route " + want.dst + " dev " + br + (c.ips[i].isV4() ? " scope link" : "") + " is missing");
  }
  for (let i = 0; i < p.gateways.length; i++) {
    const gw = p.gateways[i];
    const g = parseIP(gw);
    if (g === null) return fail("no IPv6 gateway (link-local address) on " + q(br));
    const rl = routes.list(Netns.Container, g.isV4() ? IpFamily.V4 : IpFamily.V6);
    if (!rl.ok) return hostFailure("failed to list container routes", rl.error!);
    let found = false;
    for (let j = 0; j < rl.value.length; j++) {
      const r = rl.value[j];
      if (parseCIDR(r.dst) !== null && parseCIDR(r.dst)!.prefix == 0 && r.gw == gw && r.dev == req.ifname && (r.onlink || c.isL2())) found = true;
    }
    if (!found) return fail("the container's default route via " + gw + " dev " + req.ifname + " onlink is missing");
    if (g.isV4() && !c.isL2()) {
      const nl = neighbours.list(Netns.Container, req.ifname);
      if (!nl.ok) return hostFailure("failed to list neighbours of " + q(req.ifname), nl.error!);
      let nf = false;
      for (let j = 0; j < nl.value.length; j++) if (nl.value[j].ip == gw && nl.value[j].mac == b.value.mac && nl.value[j].permanent) nf = true;
      if (!nf) return fail("the permanent neighbour entry " + gw + " lladdr " + b.value.mac + " on " + q(req.ifname) + " is missing");
    }
  }
  if (hasV4(c.eniIPs) && !c.isL2()) {
    const keys: string[] = ["net/ipv4/conf/" + br + "/proxy_arp", "net/ipv4/conf/" + br + "/forwarding", "net/ipv4/conf/" + er.value.name + "/forwarding"];
    for (let i = 0; i < keys.length; i++) {
      const v = sysctl.get(Netns.Host, keys[i]);
      if (!v.ok || v.value != "1") return fail(keys[i] + " is " + (v.ok ? v.value : v.error!.message) + ", expected 1");
    }
  }
  return null;
}

// ---------------------------------------------------------------- plugin

class VpcBridge extends CniPlugin {
  version(): Array<string> { return VERSIONS; }

  add(req: Request): Result<string, CniError> {
    const cr = loadConf(req);
    if (!cr.ok) return Result.failure<string, CniError>(cr.error!);
    const c = cr.value;
    if (!req.hasNetns) return Result.failure<string, CniError>(cniError(4, "the container's network namespace (CNI_NETNS) is missing"));
    const er = findEni(c);
    if (!er.ok) return Result.failure<string, CniError>(er.error!);
    const eni = er.value;
    const br = bridgeName(c, eni);
    if (br.length > 15 - 5) {
      return Result.failure<string, CniError>(cniError(7, "bridge name " + q(br) + " (\"name\" + \"br\" + the ENI's index) is too long for an interface name with its \"dummy\" companion"));
    }
    const j = groups.join(br);
    if (!j.ok) return Result.failure<string, CniError>(hostFailure("failed to take the network of " + q(eni.name), j.error!));
    const nw = buildNetwork(c, eni, br);
    groups.seal();
    if (!nw.ok) return Result.failure<string, CniError>(nw.error!);
    return addEndpoint(req, c, eni, nw.value);
  }

  del(req: Request): CniError | null {
    const cr = loadConf(req);
    if (!cr.ok) return cr.error!;
    const c = cr.value;
    // The container side first, while its namespace is there (it may not be).
    if (req.hasNetns) {
      // (done once the kernel announces the pair gone: its host end is out of the tables by then)
      const e = removeLink(Netns.Container, req.ifname);
      if (e !== null && !gone(e)) debug("failed to delete " + req.ifname + ": " + e.message);
    }
    // The host side whatever became of the namespace (aws returns early here and leaks).
    const veth = vethName(req);
    const ve = removeLink(Netns.Host, veth);
    if (ve !== null && !gone(ve) && ve.code != "EDENIED") return hostFailure("failed to delete veth pair " + veth, ve);
    const er = findEni(c);
    if (er.ok && c.isL2()) {
      for (let i = 0; i < c.ips.length; i++) {
        if (!c.ips[i].isV4()) continue;
        const ne = uplinks.endpointDel(er.value.name, c.ips[i].ip.toString());
        if (ne !== null && !gone(ne) && ne.code != "EDENIED") return hostFailure("failed to delete DNAT rule for endpoint", ne);
      }
    } else if (er.ok) {
      const br = bridgeName(c, er.value);
      for (let i = 0; i < c.ips.length; i++) {
        const re = routes.del(Netns.Host, hostRoute(c.ips[i], br));
        if (re !== null && !gone(re) && re.code != "EDENIED") return hostFailure("failed to delete IP route " + c.ips[i].ip.toString(), re);
      }
    }
    // The network part goes with the last endpoint: the host's sweep of this attachment decides.
    return null;
  }

  check(req: Request): CniError | null {
    const cr = loadConf(req);
    if (!cr.ok) return cr.error!;
    return checkAttachment(req, cr.value);
  }
}

registerPlugin(new VpcBridge());
