// dhcp: the IPAM plugin of the reference's dhcp, talking to cni-wasm's DHCP
// daemon (`dhcp daemon`, host/dhcp/daemon.ts) through the dhcp host
// interface. The daemon holds the lease and renews it; the DHCP protocol
// runs in its own client component (./client).
//
// Keys as the reference: ipam.daemonSocketPath (default /run/cni/dhcp.sock),
// ipam.provide [{option, value | fromArg}], ipam.request [{option,
// skipDefault}] (routers and subnet-mask are requested unless skipDefault),
// ipam.priority (the metric of the routes). ADD returns the lease (ips,
// routes); DEL releases it (DHCPRELEASE); CHECK asks the daemon for the
// lease it holds and never acquires one (the reference's CHECK calls
// Allocate, which acquires a lease when the daemon has none). GC releases
// the network's leases of attachments not in cni.dev/valid-attachments;
// STATUS is error 50 when no daemon serves the socket (the reference has
// neither).
import {
  CniError, CniPlugin, DhcpOption, ERR_INTERNAL, ERR_INVALID_CONFIG, ERR_TRY_AGAIN, JSONValue, Lease, LeaseOptions,
  Request, Result, cniArg, cniError, configDecodeError, dhcp, parseConfig, registerPlugin,
} from "../sdk";
import { HostError, Tuple2 } from "../sdk/generated/types";

/** CNI 1.1: the plugin is not available (STATUS). */
const ERR_NOT_AVAILABLE: u32 = 50;

const OPT_SUBNET_MASK: u8 = 1;
const OPT_ROUTER: u8 = 3;

class Conf {
  socket: string = "";
  valid: Array<Tuple2<string, string>> = new Array<Tuple2<string, string>>();
  opts: LeaseOptions = new LeaseOptions();
  priority: i32 = 0;
  ips: Array<string> = new Array<string>();
}

/** The reference's option names, or a decimal option code (0-255). */
function optionCode(name: string): i32 {
  if (name == "dhcp-client-identifier") return 61;
  if (name == "subnet-mask") return 1;
  if (name == "routers") return 3;
  if (name == "host-name") return 12;
  if (name == "user-class") return 77;
  if (name == "vendor-class-identifier") return 60;
  if (name.length == 0 || name.length > 3) return -1;
  let v: i32 = 0;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 48 || c > 57) return -1;
    v = v * 10 + (c - 48);
  }
  return v > 255 ? -1 : v;
}

function badOption(name: string): CniError {
  return cniError(ERR_INVALID_CONFIG, "Can not parse option \"" + name + "\": Can not parse option: strconv.ParseUint: parsing \"" + name + "\": invalid syntax");
}

function loadConf(req: Request): Result<Conf, CniError> {
  const v = parseConfig(req);
  if (v === null) return Result.failure<Conf, CniError>(configDecodeError());
  const ipam = v.getObject("ipam");
  if (ipam === null) return Result.failure<Conf, CniError>(cniError(ERR_INVALID_CONFIG, "IPAM config missing 'ipam' key"));
  const c = new Conf();
  const sp = ipam.get("daemonSocketPath");
  if (sp !== null && !sp.isString() && !sp.isNull()) return Result.failure<Conf, CniError>(cniError(ERR_INVALID_CONFIG, "ipam.daemonSocketPath must be a string"));
  c.socket = ipam.getString("daemonSocketPath");
  const pr = ipam.get("priority");
  if (pr !== null && !pr.isNull()) {
    if (!pr.isNumber() || pr.asNumber() != Math.floor(pr.asNumber())) return Result.failure<Conf, CniError>(cniError(ERR_INVALID_CONFIG, "ipam.priority must be an integer"));
    c.priority = <i32>pr.asNumber();
  }
  const provide = ipam.getArray("provide");
  if (provide !== null) {
    for (let i = 0; i < provide.length; i++) {
      const p = provide[i];
      const name = p.getString("option");
      const code = optionCode(name);
      if (code < 0) return Result.failure<Conf, CniError>(badOption(name));
      const value = p.getString("value");
      if (value.length > 0) {
        if (String.UTF8.byteLength(value) > 255) return Result.failure<Conf, CniError>(cniError(ERR_INVALID_CONFIG, "value too long for option \"" + name + "\": \"" + value + "\""));
        const o = new DhcpOption(); o.code = <u8>code; o.value = value; c.opts.provide.push(o);
      }
      const from = p.getString("fromArg");
      if (from.length > 0) {
        let found = false;
        for (let k = 0; k < req.args.length; k++) if (req.args[k].f0 == from) found = true;
        if (found) {
          const av = cniArg(req, from);
          if (String.UTF8.byteLength(av) > 255) return Result.failure<Conf, CniError>(cniError(ERR_INVALID_CONFIG, "value too long for option \"" + name + "\" from CNI_ARGS \"" + from + "\""));
          const o = new DhcpOption(); o.code = <u8>code; o.value = av; c.opts.provide.push(o);
        }
      }
    }
  }
  let skipDefault = false;
  const request = ipam.getArray("request");
  if (request !== null) {
    for (let i = 0; i < request.length; i++) {
      const r = request[i];
      if (r.getBool("skipDefault")) skipDefault = true;
      const name = r.getString("option");
      if (name.length == 0) continue;
      const code = optionCode(name);
      if (code < 0) return Result.failure<Conf, CniError>(badOption(name));
      if (!c.opts.request.includes(<u8>code)) c.opts.request.push(<u8>code);
    }
  }
  if (!skipDefault) {
    if (!c.opts.request.includes(OPT_ROUTER)) c.opts.request.push(OPT_ROUTER);
    if (!c.opts.request.includes(OPT_SUBNET_MASK)) c.opts.request.push(OPT_SUBNET_MASK);
  }
  const va = v.getArray("cni.dev/valid-attachments");
  if (va !== null) {
    for (let i = 0; i < va.length; i++) c.valid.push(new Tuple2<string, string>(va[i].getString("containerID"), va[i].getString("ifname")));
  }
  const prev = v.getObject("prevResult");
  if (prev !== null) {
    const ips = prev.getArray("ips");
    if (ips !== null) for (let i = 0; i < ips.length; i++) c.ips.push(ips[i].getString("address"));
  }
  return Result.success<Conf, CniError>(c);
}

function daemonError(doing: string, e: HostError): CniError {
  // no daemon: try again later, naming the socket and how to start one
  if (e.code == "ENODAEMON") return cniError(ERR_TRY_AGAIN, e.message, doing);
  return cniError(ERR_INTERNAL, "error calling " + doing + ": " + e.message, e.code);
}

function resultOf(l: Lease, priority: i32): string {
  const o = JSONValue.newObject().set("cniVersion", JSONValue.fromString("1.1.0"));
  const ip = JSONValue.newObject().set("address", JSONValue.fromString(l.address));
  if (l.gateway.length > 0) ip.set("gateway", JSONValue.fromString(l.gateway));
  o.set("ips", JSONValue.newArray().push(ip));
  if (l.routes.length > 0) {
    const rs = JSONValue.newArray();
    for (let i = 0; i < l.routes.length; i++) {
      const r = l.routes[i];
      const j = JSONValue.newObject().set("dst", JSONValue.fromString(r.dst));
      if (r.gw.length > 0) j.set("gw", JSONValue.fromString(r.gw));
      if (priority != 0) j.set("priority", JSONValue.fromNumber(<f64>priority));
      if (r.onLink) j.set("scope", JSONValue.fromNumber(253));
      rs.push(j);
    }
    o.set("routes", rs);
  }
  o.set("dns", JSONValue.newObject());
  return o.stringify();
}

class Dhcp extends CniPlugin {
  add(req: Request): Result<string, CniError> {
    const c = loadConf(req);
    if (!c.ok) return Result.failure<string, CniError>(c.error!);
    const r = dhcp.acquire(c.value.socket, c.value.opts);
    if (!r.ok) return Result.failure<string, CniError>(daemonError("DHCP.Allocate", r.error!));
    return Result.success<string, CniError>(resultOf(r.value, c.value.priority));
  }

  del(req: Request): CniError | null {
    const c = loadConf(req);
    if (!c.ok) return c.error!;
    const e = dhcp.release(c.value.socket);
    return e !== null ? daemonError("DHCP.Release", e) : null;
  }

  check(req: Request): CniError | null {
    const c = loadConf(req);
    if (!c.ok) return c.error!;
    const r = dhcp.check(c.value.socket);
    if (!r.ok) return daemonError("DHCP.Check", r.error!);
    // the runtime's prevResult must name the address the daemon holds
    const ips = c.value.ips;
    for (let i = 0; i < ips.length; i++) {
      if (ips[i] == r.value.address) return null;
    }
    if (ips.length == 0) return null;
    return cniError(ERR_INTERNAL, "the DHCP lease is " + r.value.address + ", not the prevResult's " + ips.join(", "));
  }

  /** Releases the network's leases that no valid attachment holds (the reference has no GC). */
  gc(req: Request): CniError | null {
    const c = loadConf(req);
    if (!c.ok) return c.error!;
    const e = dhcp.collect(c.value.socket, c.value.valid);
    return e !== null ? daemonError("DHCP.GC", e) : null;
  }

  /** Ready when a daemon serves the socket. */
  status(req: Request): CniError | null {
    const c = loadConf(req);
    if (!c.ok) return c.error!;
    const e = dhcp.ready(c.value.socket);
    if (e === null) return null;
    return cniError(ERR_NOT_AVAILABLE, e.message, e.code);
  }
}

registerPlugin(new Dhcp());
