// CNI vocabulary for plugins: error codes, the network config, and the result
// document. Results cross the host boundary in the current spec shape (1.1.0);
// the host converts to and from whatever version the runtime asked for.
import { CniError, HostError, Request } from "./generated/types";
import { JSONValue, parseJSON, lastJSONError } from "./json";

export const ERR_INCOMPATIBLE_VERSION: u32 = 1;
export const ERR_UNSUPPORTED_FIELD: u32 = 2;
export const ERR_UNKNOWN_CONTAINER: u32 = 3;
export const ERR_INVALID_ENV: u32 = 4;
export const ERR_IO: u32 = 5;
export const ERR_DECODE: u32 = 6;
export const ERR_INVALID_CONFIG: u32 = 7;
export const ERR_TRY_AGAIN: u32 = 11;
/** Plugin-specific failures start at 100. */
export const ERR_INTERNAL: u32 = 999;

export function cniError(code: u32, msg: string, details: string = ""): CniError {
  const e = new CniError();
  e.code = code;
  e.msg = msg;
  e.details = details;
  return e;
}

/** A host call failed: say what we were doing and what the kernel said. */
export function hostFailure(doing: string, e: HostError): CniError {
  const code = e.code == "EDENIED" ? ERR_INTERNAL : e.code == "ENETNS" ? ERR_UNKNOWN_CONTAINER : ERR_INTERNAL;
  return cniError(code, doing + ": " + e.message, e.code);
}

/** The network configuration (already checked by the host to be a JSON object). */
export function parseConfig(req: Request): JSONValue | null {
  const v = parseJSON(req.config);
  if (v === null || !v.isObject()) return null;
  return v;
}

export function configDecodeError(): CniError {
  return cniError(ERR_DECODE, "failed to decode the network configuration: " + lastJSONError());
}

/** Value of KEY in CNI_ARGS, or "" when absent. */
export function cniArg(req: Request, key: string): string {
  for (let i = 0; i < req.args.length; i++) {
    if (req.args[i].f0 == key) return req.args[i].f1;
  }
  return "";
}

export class ResultInterface {
  name: string = "";
  mac: string = "";
  mtu: i32 = 0;
  /** the container's netns path for container-side interfaces, "" for host ones */
  sandbox: string = "";
}

export class IPConfig {
  /** address with prefix, e.g. "10.1.2.3/24" */
  address: string = "";
  gateway: string = "";
  /** index into interfaces, -1 for none */
  iface: i32 = -1;
}

export class ResultRoute {
  dst: string = "";
  gw: string = "";
}

export class CniResult {
  cniVersion: string = "1.1.0";
  interfaces: Array<ResultInterface> = new Array<ResultInterface>(0);
  ips: Array<IPConfig> = new Array<IPConfig>(0);
  routes: Array<ResultRoute> = new Array<ResultRoute>(0);
  dns: JSONValue | null = null;

  addInterface(name: string, mac: string, sandbox: string, mtu: i32 = 0): i32 {
    const i = new ResultInterface();
    i.name = name; i.mac = mac; i.sandbox = sandbox; i.mtu = mtu;
    this.interfaces.push(i);
    return this.interfaces.length - 1;
  }

  toJSON(): JSONValue {
    const o = JSONValue.newObject();
    o.set("cniVersion", JSONValue.fromString(this.cniVersion));
    if (this.interfaces.length > 0) {
      const a = JSONValue.newArray();
      for (let i = 0; i < this.interfaces.length; i++) {
        const it = this.interfaces[i];
        const j = JSONValue.newObject().set("name", JSONValue.fromString(it.name));
        if (it.mac.length > 0) j.set("mac", JSONValue.fromString(it.mac));
        if (it.mtu > 0) j.set("mtu", JSONValue.fromNumber(<f64>it.mtu));
        if (it.sandbox.length > 0) j.set("sandbox", JSONValue.fromString(it.sandbox));
        a.push(j);
      }
      o.set("interfaces", a);
    }
    if (this.ips.length > 0) {
      const a = JSONValue.newArray();
      for (let i = 0; i < this.ips.length; i++) {
        const ip = this.ips[i];
        const j = JSONValue.newObject();
        if (ip.iface >= 0) j.set("interface", JSONValue.fromNumber(<f64>ip.iface));
        j.set("address", JSONValue.fromString(ip.address));
        if (ip.gateway.length > 0) j.set("gateway", JSONValue.fromString(ip.gateway));
        a.push(j);
      }
      o.set("ips", a);
    }
    if (this.routes.length > 0) {
      const a = JSONValue.newArray();
      for (let i = 0; i < this.routes.length; i++) {
        const j = JSONValue.newObject().set("dst", JSONValue.fromString(this.routes[i].dst));
        if (this.routes[i].gw.length > 0) j.set("gw", JSONValue.fromString(this.routes[i].gw));
        a.push(j);
      }
      o.set("routes", a);
    }
    const dns = this.dns;
    o.set("dns", dns !== null ? dns : JSONValue.newObject());
    return o;
  }

  stringify(): string { return this.toJSON().stringify(); }

  /** Reads a result document in the current shape (the host converts older ones). */
  static fromJSON(v: JSONValue): CniResult {
    const r = new CniResult();
    r.cniVersion = v.getString("cniVersion", "1.1.0");
    const ifs = v.getArray("interfaces");
    if (ifs !== null) {
      for (let i = 0; i < ifs.length; i++) {
        const j = ifs[i];
        r.addInterface(j.getString("name"), j.getString("mac"), j.getString("sandbox"), <i32>j.getNumber("mtu", 0));
      }
    }
    const ips = v.getArray("ips");
    if (ips !== null) {
      for (let i = 0; i < ips.length; i++) {
        const j = ips[i];
        const ip = new IPConfig();
        ip.address = j.getString("address");
        ip.gateway = j.getString("gateway");
        ip.iface = j.has("interface") ? <i32>j.getNumber("interface", -1) : -1;
        r.ips.push(ip);
      }
    }
    const routes = v.getArray("routes");
    if (routes !== null) {
      for (let i = 0; i < routes.length; i++) {
        const rt = new ResultRoute();
        rt.dst = routes[i].getString("dst");
        rt.gw = routes[i].getString("gw");
        r.routes.push(rt);
      }
    }
    const dns = v.getObject("dns");
    if (dns !== null && dns.keys().length > 0) r.dns = dns;
    return r;
  }

  static parse(text: string): CniResult | null {
    const v = parseJSON(text);
    if (v === null || !v.isObject()) return null;
    return CniResult.fromJSON(v);
  }
}
