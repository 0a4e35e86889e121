// bridge: attach a container to a Linux bridge in the host namespace through
// a veth pair, as the reference bridge plugin (containernetworking/plugins)
// does. ADD reads top to bottom like the recipe:
//
//   config → bridge → veth pair begun → IPAM (host-local or static: while
//   the kernel makes the pair; any other IPAM, or with a MAC spoof check,
//   after the pair is made, joined and checked) → veth joined to the bridge
//   → container addresses and routes → gateway on the bridge + forwarding →
//   masquerade → result
//
// Anything a failed ADD made is taken back (the IPAM lease, the veth, its MAC
// spoof check, a bridge this call created), so a failed ADD leaves the host as
// it found it.
import {
  CniError, CniPlugin, CniResult, Command, HostError, IPNet, IpFamily, Level, Link,
  MacSpoofCheck, Masquerade, Netns, PortOptions, Request, Result, ResultRoute, Route, VethSpec,
  ERR_INTERNAL, ERR_UNSUPPORTED_FIELD, addresses, cniError, configureIface, delegate, firewall, hostFailure, links, log,
  Undoable, ipamRun, masqueradeEntries, parseCIDR, parseIP, registerPlugin, sysctl, trySysctl, undoIfFailed,
} from "../sdk";
import { BridgeConf, loadConf } from "./config";
import { checkAttachment } from "./check";

/** Index of the container interface in the result: [bridge, host veth, container]. */
const CONTAINER_IFACE: i32 = 2;

function fail(msg: string, details: string = ""): CniError {
  return cniError(ERR_INTERNAL, msg, details);
}

function debug(msg: string): void {
  log.write(Level.Debug, msg);
}

function q(s: string): string {
  return "\"" + s + "\"";
}

/** What this ADD has made so far, so a failure can take it back. */
class Attachment extends Undoable {
  createdBridge: bool = false;
  /** begun (begin-create-veth) and not yet finished */
  vethPending: bool = false;
  vethCreated: bool = false;
  hostVeth: string = "";
  ipamDone: bool = false;
  masq: Array<Masquerade> = new Array<Masquerade>();
  spoofCheck: MacSpoofCheck | null = null;
  /** the bridge's MAC before any port joined: ensureAddr pins it */
  bridgeMac: string = "";

  constructor(public req: Request, public conf: BridgeConf) { super(); }

  undo(): void {
    if (this.masq.length > 0) firewall.masqueradeDel(this.masq);
    if (this.spoofCheck !== null) firewall.macSpoofCheckDel(this.spoofCheck!);
    if (this.ipamDone) {
      const r = delegate.run(this.conf.ipamType, Command.Del, this.req.config);
      if (!r.ok) debug("releasing the IPAM lease failed: " + r.error!.msg);
    }
    if (this.vethPending && links.finishCreateVeth(this.hostVeth).ok) this.vethCreated = true;
    if (this.vethCreated) {
      // Deleting either end deletes the pair; the host end first, so the
      // ledger forgets it too.
      if (links.remove(Netns.Host, this.hostVeth) !== null) links.remove(Netns.Container, this.req.ifname);
    }
    // A bridge this call created goes too, unless a concurrent ADD has
    // already put its own port on it.
    if (this.createdBridge && !hasPorts(this.conf.bridge)) links.remove(Netns.Host, this.conf.bridge);
  }
}

function hasPorts(bridge: string): bool {
  const all = links.list(Netns.Host);
  if (!all.ok) return true; // cannot tell: leave it
  for (let i = 0; i < all.value.length; i++) if (all.value[i].master == bridge) return true;
  return false;
}

// ---------------------------------------------------------------- bridge

function ensureBridge(a: Attachment): Result<Link, CniError> {
  const c = a.conf;
  const br = c.bridge;
  const what = "failed to create bridge " + q(br);
  let got = links.get(Netns.Host, br);
  if (!got.ok) {
    if (got.error!.code != "ENODEV") return Result.failure<Link, CniError>(hostFailure(what + ": could not lookup " + q(br), got.error!));
    const made = links.createBridge(br, <u32>c.mtu, c.vlan != 0);
    if (made.ok) {
      a.createdBridge = true;
    } else {
      const e = made.error!;
      if (e.code == "EOPNOTSUPP" && c.vlan != 0) return Result.failure<Link, CniError>(vlanUnsupported(c));
      if (e.code != "EEXIST") return Result.failure<Link, CniError>(hostFailure(what + ": could not add " + q(br), e));
    }
    got = links.get(Netns.Host, br);
    if (!got.ok) return Result.failure<Link, CniError>(hostFailure(what + ": could not lookup " + q(br), got.error!));
  }
  // Checked before touching it: never set flags on something that is not ours to bridge.
  if (got.value.kind != "bridge") return Result.failure<Link, CniError>(fail(what + ": " + q(br) + " already exists but is not a bridge"));
  if (c.promiscMode) {
    const e = links.setPromisc(Netns.Host, br, true);
    if (e !== null) return Result.failure<Link, CniError>(hostFailure(what + ": could not set promiscuous mode on " + q(br), e));
  }
  // We own the routes for this interface.
  trySysctl(Netns.Host, "net/ipv6/conf/" + br + "/accept_ra", "0");
  // (an up bridge is left as it is: the same end state, one host call less)
  if (!got.value.up) {
    const up = links.setUp(Netns.Host, br, true);
    if (up !== null) return Result.failure<Link, CniError>(hostFailure(what, up));
  }
  a.bridgeMac = got.value.mac;
  return Result.success<Link, CniError>(got.value);
}

function vlanUnsupported(c: BridgeConf): CniError {
  return cniError(ERR_UNSUPPORTED_FIELD,
    "\"vlan\": " + c.vlan.toString() + " is not supported here: this kernel has no bridge VLAN filtering",
    "the kernel was built without CONFIG_BRIDGE_VLAN_FILTERING (EOPNOTSUPP); remove \"vlan\" or use a kernel with it");
}

// ---------------------------------------------------------------- veth

class VethEnds {
  hostName: string = "";
  hostMac: string = "";
  containerMac: string = "";
}

/**
 * Starts making the veth pair; the kernel works on it while IPAM runs.
 * Refused up front, as the reference does before IPAM, when the container
 * already has an interface of that name (ADD twice): IPAM must not run then,
 * as its undo would release the lease of the attachment that is there.
 */
function beginVeth(a: Attachment): CniError | null {
  const ifname = a.req.ifname;
  if (links.get(Netns.Container, ifname).ok) return fail("container veth name provided (" + ifname + ") already exists");
  return beginPair(a);
}

function beginPair(a: Attachment): CniError | null {
  const spec = new VethSpec();
  spec.containerName = a.req.ifname;
  spec.hostName = ""; // the host picks vethXXXXXXXX
  spec.mtu = <u32>a.conf.mtu;
  spec.containerMac = a.conf.mac;
  const r = links.beginCreateVeth(spec);
  if (!r.ok) return hostFailure("failed to make veth pair", r.error!);
  a.hostVeth = r.value;
  a.vethPending = true;
  return null;
}

/** The pair beginVeth started, made and its host end joined to the bridge. */
function finishVeth(a: Attachment): Result<VethEnds, CniError> {
  const c = a.conf, ifname = a.req.ifname;
  let hostName = "", hostMac = "", contMac = "";
  // A clash on the random host-side name is retried with a new draw; a clash
  // on the container name is the caller's mistake (ADD twice).
  let tries = 0;
  while (hostName.length == 0) {
    const r = links.finishCreateVeth(a.hostVeth);
    a.vethPending = false;
    if (r.ok) {
      hostName = r.value.host.name;
      hostMac = r.value.host.mac;
      contMac = r.value.container.mac;
    } else {
      const e = r.error!;
      if (e.code != "EEXIST") return Result.failure<VethEnds, CniError>(hostFailure("failed to make veth pair", e));
      if (links.get(Netns.Container, ifname).ok) {
        return Result.failure<VethEnds, CniError>(fail("container veth name provided (" + ifname + ") already exists"));
      }
      if (++tries == 10) return Result.failure<VethEnds, CniError>(fail("failed to find a unique veth name"));
      const b = beginPair(a);
      if (b !== null) return Result.failure<VethEnds, CniError>(b);
    }
  }
  a.vethCreated = true;
  a.hostVeth = hostName;
  const ends = new VethEnds();
  ends.hostName = hostName;
  ends.hostMac = hostMac;
  ends.containerMac = contMac;

  trySysctl(Netns.Host, "net/ipv6/conf/" + hostName + "/accept_ra", "0");
  // up, on the bridge, hairpin/isolated: one host call
  const port = new PortOptions();
  port.hairpin = c.hairpinMode;
  port.isolated = c.portIsolation;
  const j = links.joinBridge(hostName, c.bridge, port);
  if (j !== null) return Result.failure<VethEnds, CniError>(hostFailure("failed to connect " + q(hostName) + " to bridge " + c.bridge, j));
  if (c.vlan != 0) {
    const v = links.bridgeVlanAdd(hostName, <u32>c.vlan, true, true, false);
    if (v !== null) {
      if (v.code == "EOPNOTSUPP") return Result.failure<VethEnds, CniError>(vlanUnsupported(c));
      return Result.failure<VethEnds, CniError>(hostFailure("failed to setup vlan tag on interface " + q(hostName), v));
    }
  }
  return Result.success<VethEnds, CniError>(ends);
}

// ---------------------------------------------------------------- addresses

class Gateways {
  v4: Array<IPNet> = new Array<IPNet>();
  v6: Array<IPNet> = new Array<IPNet>();
}

function isDefaultDst(dst: string, family: i32): bool {
  const n = parseCIDR(dst);
  return n !== null && n.prefix == 0 && n.ip.family == family;
}

/**
 * Points every IP at the container interface, fills in gateways (the
 * subnet's first address) when the bridge is the gateway, and adds a default
 * route per family for isDefaultGateway unless IPAM gave one with a gateway.
 */
function calcGateways(result: CniResult, c: BridgeConf): Result<Gateways, CniError> {
  const gws = new Gateways();
  let found4 = false, found6 = false;
  for (let i = 0; i < result.ips.length; i++) {
    const ipc = result.ips[i];
    const addr = parseCIDR(ipc.address);
    if (addr === null) return Result.failure<Gateways, CniError>(fail("Unknown IP object: " + ipc.address));
    const fam = addr.ip.family;
    ipc.iface = CONTAINER_IFACE;
    if (ipc.gateway.length == 0 && c.isGateway) ipc.gateway = addr.network().next().toString();
    if (c.isDefaultGateway && !(fam == 4 ? found4 : found6)) {
      let found = false;
      for (let j = 0; j < result.routes.length; j++) {
        const r = result.routes[j];
        if (r.gw.length > 0 && isDefaultDst(r.dst, fam)) { found = true; break; }
      }
      if (!found) {
        const rt = new ResultRoute();
        rt.dst = fam == 4 ? "0.0.0.0/0" : "::/0";
        rt.gw = ipc.gateway;
        result.routes.push(rt);
      }
      if (fam == 4) found4 = true; else found6 = true;
    }
    if (c.isGateway) {
      const gw = parseIP(ipc.gateway);
      if (gw === null || gw.family != fam) {
        return Result.failure<Gateways, CniError>(fail("invalid gateway " + q(ipc.gateway) + " for " + ipc.address));
      }
      (fam == 4 ? gws.v4 : gws.v6).push(new IPNet(gw, addr.prefix));
    }
  }
  return Result.success<Gateways, CniError>(gws);
}

/**
 * Puts gateway address gw on the bridge. Another address of the family (or,
 * for IPv6, an overlapping one) is an error, or is replaced with forceAddress.
 */
function ensureAddr(a: Attachment, gw: IPNet): CniError | null {
  const br = a.conf.bridge;
  const fam = gw.isV4() ? IpFamily.V4 : IpFamily.V6;
  const want = gw.toString();
  const list = addresses.list(Netns.Host, br, fam);
  if (!list.ok) return hostFailure("could not get list of IP addresses", list.error!);
  for (let i = 0; i < list.value.length; i++) {
    const cur = parseCIDR(list.value[i].cidr);
    if (cur === null) continue;
    if (cur.ip.equals(gw.ip) && cur.prefix == gw.prefix) return null;
    if (gw.isV4() || cur.contains(gw.ip) || gw.contains(cur.ip)) {
      if (!a.conf.forceAddress) return fail(q(br) + " already has an IP address different from " + want);
      const e = addresses.del(Netns.Host, br, list.value[i].cidr);
      if (e !== null) return hostFailure("could not remove IP address from " + q(br), e);
    }
  }
  const e = addresses.add(Netns.Host, br, want, false);
  if (e !== null && e.code != "EEXIST") return hostFailure("could not add IP address to " + q(br), e);
  // Pin the bridge's MAC: otherwise it follows the lowest port MAC as ports come and go.
  if (a.bridgeMac.length > 0) {
    const m = links.setMac(Netns.Host, br, a.bridgeMac);
    if (m !== null) return hostFailure("could not set bridge's mac", m);
  }
  return null;
}

function setupGateways(a: Attachment, gws: Gateways): CniError | null {
  for (let f = 0; f < 2; f++) {
    const list = f == 0 ? gws.v4 : gws.v6;
    for (let i = 0; i < list.length; i++) {
      const e = ensureAddr(a, list[i]);
      if (e !== null) return fail("failed to set bridge addr: " + e.msg, e.details);
    }
    if (list.length > 0) {
      const key = f == 0 ? "net/ipv4/ip_forward" : "net/ipv6/conf/all/forwarding";
      const e = sysctl.set(Netns.Host, key, "1");
      if (e !== null) return hostFailure("failed to enable forwarding", e);
    }
  }
  return null;
}

function teardownMasquerade(c: BridgeConf, ips: Array<IPNet>): CniError | null {
  if (!c.isLayer3() || !c.ipMasq || ips.length == 0) return null;
  const e = firewall.masqueradeDel(masqueradeEntries(c.name, ips));
  return e !== null ? hostFailure("failed to tear down IP masquerade", e) : null;
}

function setupMasquerade(a: Attachment, result: CniResult): CniError | null {
  const addrs = new Array<IPNet>();
  for (let i = 0; i < result.ips.length; i++) addrs.push(parseCIDR(result.ips[i].address)!);
  const entries = masqueradeEntries(a.conf.name, addrs);
  const e = firewall.masqueradeAdd(entries);
  if (e !== null) return hostFailure("failed to set up IP masquerade", e);
  a.masq = entries;
  return null;
}

// ---------------------------------------------------------------- ADD

function addAttachment(a: Attachment): Result<string, CniError> {
  const c = a.conf, req = a.req;

  const brr = ensureBridge(a);
  if (!brr.ok) return Result.failure<string, CniError>(brr.error!);

  const be = beginVeth(a);
  if (be !== null) return Result.failure<string, CniError>(be);

  // As the reference: the veth and its spoof check before IPAM. Only IPAM
  // plugins known never to touch the interface (host-local, static) overlap
  // the veth's making; dhcp, say, leases through it.
  let veth: VethEnds | null = null;
  const overlap = !c.macSpoofChk && (c.ipamType == "host-local" || c.ipamType == "static");
  if (!overlap) {
    const vr = finishVeth(a);
    if (!vr.ok) return Result.failure<string, CniError>(vr.error!);
    veth = vr.value;
  }
  if (c.macSpoofChk) {
    const sc = new MacSpoofCheck();
    sc.port = veth!.hostName;
    sc.mac = veth!.containerMac;
    const e = firewall.macSpoofCheckAdd(sc);
    if (e !== null) return Result.failure<string, CniError>(hostFailure("failed to setup spoof-check", e));
    a.spoofCheck = sc;
  }

  let ipamOut = "";
  if (c.isLayer3()) {
    const out = delegate.run(c.ipamType, Command.Add, req.config);
    if (!out.ok) return Result.failure<string, CniError>(out.error!);
    a.ipamDone = true;
    ipamOut = out.value;
  }
  if (veth === null) {
    const vr = finishVeth(a);
    if (!vr.ok) return Result.failure<string, CniError>(vr.error!);
    veth = vr.value;
  }

  const result = new CniResult();
  result.addInterface(c.bridge, "", "");
  result.addInterface(veth!.hostName, "", "");
  result.addInterface(req.ifname, veth!.containerMac, req.netnsPath);

  if (c.isLayer3()) {
    const ipam = CniResult.parse(ipamOut);
    if (ipam === null) return Result.failure<string, CniError>(fail("could not read the result of IPAM plugin " + q(c.ipamType)));
    result.ips = ipam.ips;
    result.routes = ipam.routes;
    if (result.ips.length == 0) return Result.failure<string, CniError>(fail("IPAM plugin returned missing IP config"));

    const gr = calcGateways(result, c);
    if (!gr.ok) return Result.failure<string, CniError>(gr.error!);

    // The reference turns DAD off with accept_dad=0 before adding addresses;
    // doing the same leaves identical state and nothing to wait for. Should
    // the sysctl be refused, IFA_F_NODAD on each address has the same effect.
    let noDad = false;
    if (c.enableDad) {
      trySysctl(Netns.Container, "net/ipv6/conf/" + req.ifname + "/enhanced_dad", "1");
      trySysctl(Netns.Container, "net/ipv6/conf/" + req.ifname + "/accept_dad", "1");
    } else {
      noDad = !trySysctl(Netns.Container, "net/ipv6/conf/" + req.ifname + "/accept_dad", "0");
    }
    trySysctl(Netns.Container, "net/ipv4/conf/" + req.ifname + "/arp_notify", "1");
    const ce = configureIface(req.ifname, result, noDad, c.enableDad);
    if (ce !== null) return Result.failure<string, CniError>(ce);

    if (c.isGateway) {
      const ge = setupGateways(a, gr.value);
      if (ge !== null) return Result.failure<string, CniError>(ge);
    }
    if (c.ipMasq) {
      const me = setupMasquerade(a, result);
      if (me !== null) return Result.failure<string, CniError>(me);
    }
  } else if (!c.disableContainerInterface) {
    // Layer 2 only: the container end still has to be up.
    const e = links.setUp(Netns.Container, req.ifname, true);
    if (e !== null) return Result.failure<string, CniError>(hostFailure("failed to set " + q(req.ifname) + " up", e));
  }

  // The bridge's MAC now: it may have changed as the port joined or the
  // gateway was set (the veth's own is the one it was made with).
  result.interfaces[1].mac = veth!.hostMac;
  const bl = links.get(Netns.Host, c.bridge);
  if (!bl.ok) return Result.failure<string, CniError>(hostFailure("could not lookup " + q(c.bridge), bl.error!));
  result.interfaces[0].mac = bl.value.mac;

  // The config's DNS, as the reference 1.1.1 reports it (what IPAM said is dropped).
  result.dns = c.dns;
  return Result.success<string, CniError>(result.stringify());
}

/** Refusals that need nothing created first. */
function precheck(c: BridgeConf, req: Request): CniError | null {
  if (c.isLayer3() && c.disableContainerInterface) return fail("cannot use IPAM when DisableContainerInterface flag is set");
  if (c.hairpinMode && c.promiscMode) return fail("cannot set hairpin mode and promiscuous mode at the same time.");
  if (c.vlan != 0 && c.isGateway) {
    return cniError(ERR_UNSUPPORTED_FIELD, "\"vlan\": " + c.vlan.toString() + " together with \"isGateway\" is not supported by cni-wasm's bridge yet",
      "the gateway would need a host-side VLAN veth on the bridge, which no host function creates");
  }
  if (!req.hasNetns) {
    return cniError(3, "failed to open netns " + q(req.netnsPath) + ": no such network namespace");
  }
  return null;
}

// ---------------------------------------------------------------- DEL

function isGlobalUnicast(n: IPNet): bool {
  const b = n.ip.bytes;
  if (n.isV4()) {
    if (b[12] == 0 || b[12] == 127 || b[12] >= 224) return false; // unspecified/this-net, loopback, multicast+broadcast
    return !(b[12] == 169 && b[13] == 254);
  }
  if (b[0] == 0xff) return false; // multicast
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return false; // link-local
  let zero = true;
  for (let i = 0; i < 15; i++) if (b[i] != 0) { zero = false; break; }
  return !(zero && (b[15] == 0 || b[15] == 1)); // :: and ::1
}

function ipamDel(c: BridgeConf, req: Request): CniError | null {
  return ipamRun(c.ipamType, Command.Del, req);
}

function ifaceAddresses(ifname: string, out: Array<IPNet>): HostError | null {
  for (let f = 0; f < 2; f++) {
    const l = addresses.list(Netns.Container, ifname, f == 0 ? IpFamily.V4 : IpFamily.V6);
    if (!l.ok) return l.error!;
    for (let i = 0; i < l.value.length; i++) {
      const n = parseCIDR(l.value[i].cidr);
      if (n !== null && isGlobalUnicast(n)) out.push(n);
    }
  }
  return null;
}

/**
 * The port and MAC from prevResult: the host veth is the interface with no
 * sandbox that is not the bridge, the container's is ours with a sandbox.
 * Failures are logged, not returned, as the reference only prints them.
 */
function spoofCheckDel(c: BridgeConf, req: Request, liveMac: string): void {
  const prev = c.prevResult;
  if (prev === null) return;
  const ifs = prev.getArray("interfaces");
  if (ifs === null) return;
  let port = "", mac = liveMac;
  for (let i = 0; i < ifs.length; i++) {
    const it = ifs[i];
    if (!it.isObject()) continue;
    const name = it.getString("name"), sandbox = it.getString("sandbox");
    if (sandbox.length == 0 && name != c.bridge && port.length == 0) port = name;
    else if (sandbox.length > 0 && name == req.ifname && it.getString("mac").length > 0) mac = it.getString("mac");
  }
  if (port.length == 0 || mac.length == 0) return;
  const sc = new MacSpoofCheck();
  sc.port = port;
  sc.mac = mac;
  const e = firewall.macSpoofCheckDel(sc);
  if (e !== null) debug("removing the MAC spoof check on " + q(port) + ": " + e.message);
}

class Bridge extends CniPlugin {
  add(req: Request): Result<string, CniError> {
    const cr = loadConf(req);
    if (!cr.ok) return Result.failure<string, CniError>(cr.error!);
    const c = cr.value;
    if (c.isDefaultGateway) c.isGateway = true;
    const pe = precheck(c, req);
    if (pe !== null) return Result.failure<string, CniError>(pe);

    const a = new Attachment(req, c);
    return undoIfFailed(addAttachment(a), a);
  }

  del(req: Request): CniError | null {
    const cr = loadConf(req);
    if (!cr.ok) return cr.error!;
    const c = cr.value;
    // No namespace (never given, or already gone): only the lease is left to release.
    if (!req.hasNetns) return ipamDel(c, req);

    // A DHCP lease is released by a DHCPRELEASE sent from the container's
    // interface, so dhcp goes before the veth does (the reference releases
    // after deleting it, when its daemon can no longer send the release).
    const dhcpFirst = c.ipamType == "dhcp";
    if (dhcpFirst) {
      const de = ipamDel(c, req);
      if (de !== null) return de;
    }
    const ips = new Array<IPNet>();
    let removed = false, ipamReleased = false, contMac = "";
    let ipamErr: CniError | null = null;
    const l = links.get(Netns.Container, req.ifname);
    if (!l.ok) {
      const e = l.error!;
      if (e.code == "ENETNS") return ipamDel(c, req);
      if (e.code != "ENODEV") return hostFailure("failed to lookup " + q(req.ifname), e);
      // Already gone (DEL twice): nothing to remove, and no masquerade to find by it.
    } else {
      contMac = l.value.mac;
      // The addresses only name the masquerade entries to remove.
      const ae = c.isLayer3() && c.ipMasq ? ifaceAddresses(req.ifname, ips) : null;
      if (ae !== null) {
        if (ae.code == "ENETNS") return ipamDel(c, req);
        if (ae.code != "ENODEV") return hostFailure("failed to get IP addresses for " + q(req.ifname), ae);
      }
      // Masquerade goes first: the kernel frees deleted set elements after an
      // RCU grace period, which then runs while the veth is being deleted
      // instead of holding up the end of the call.
      const me = teardownMasquerade(c, ips);
      if (me !== null) return me;
      // The kernel confirms a deletion only after RCU grace periods: the
      // lease is released meanwhile (the order of the two does not show).
      let e = links.beginRemove(Netns.Container, req.ifname);
      if (e === null) {
        if (!dhcpFirst) ipamErr = ipamDel(c, req);
        ipamReleased = true;
        e = links.finishRemove(Netns.Container, req.ifname);
      }
      if (e !== null) {
        if (e.code == "ENETNS") return ipamReleased ? ipamErr : ipamDel(c, req);
        if (e.code != "ENODEV") return hostFailure("failed to delete " + q(req.ifname), e);
      } else {
        removed = true;
      }
    }
    // The attachment was there: stop checking its port. Otherwise (DEL twice,
    // no prevResult to name the port) the host's ledger sweep removes the check.
    if (c.macSpoofChk && removed) spoofCheckDel(c, req, contMac);

    if (!dhcpFirst && !ipamReleased) ipamErr = ipamDel(c, req);
    return ipamErr;
  }

  check(req: Request): CniError | null {
    const cr = loadConf(req);
    if (!cr.ok) return cr.error!;
    return checkAttachment(req, cr.value);
  }

  /** GC and STATUS are the IPAM plugin's business, as in the reference. */
  gc(req: Request): CniError | null { return ipamOnly(req, Command.Gc); }
  status(req: Request): CniError | null { return ipamOnly(req, Command.Status); }
}

function ipamOnly(req: Request, cmd: Command): CniError | null {
  const cr = loadConf(req);
  return cr.ok ? ipamRun(cr.value.ipamType, cmd, req) : cr.error!;
}

registerPlugin(new Bridge());
