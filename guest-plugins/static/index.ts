// static: the addresses, routes and DNS the configuration names, as the
// reference plugin gives them. Addresses may also come from CNI_ARGS
// ("IP=" CIDRs, comma separated, with "GATEWAY=") are added to the configured
// ones; args.cni.ips, then runtimeConfig.ips, replace all before them.
//
// Differences from the reference, on purpose: error codes are 7 for an
// invalid configuration and 4 for bad CNI_ARGS (the reference answers 999;
// the messages are its own), and ADD refuses a route without "dst" instead
// of printing "<nil>".
import {
  CniError, CniPlugin, CniResult, IP, IPConfig, IPNet, JSONValue, Request, Result, ResultRoute,
  ERR_INTERNAL, ERR_INVALID_CONFIG, ERR_INVALID_ENV, cniError, configDecodeError, parseConfig, registerPlugin,
} from "../sdk";
import {
  ARG_STRING, Decoder, GoCIDR, goIPString, goParseCIDR, goParseIP, loadEnvArgs, matchField, trimSpace, versionAtLeast,
  ConfRoute, checkRoutes, decodeRoute,
} from "../sdk/gocompat";

class Address {
  /** "address" as written */
  text: string = "";
  /** parsed: set for addresses from CNI_ARGS/args/runtimeConfig, and after loading */
  net: GoCIDR | null = null;
  gateway: IP | null = null;
}

class StaticConfig {
  cniVersion: string = "";
  hasIpam: bool = false;
  addresses: Array<Address> = new Array<Address>();
  routes: Array<ConfRoute> = new Array<ConfRoute>();
  dns: JSONValue = JSONValue.newObject();
  argIPs: Array<string> | null = null;
  runtimeIPs: Array<string> | null = null;
  doc: JSONValue = JSONValue.nul();
}

/** Decoded config, or the CNI error that stopped decoding. */
type Loaded = Result<StaticConfig, CniError>;

function fail(code: u32, msg: string): Loaded {
  return Result.failure<StaticConfig, CniError>(cniError(code, msg));
}

const ADDRESS_FIELDS: Array<string> = ["address", "gateway", "Address", "Version"];
const DNS_FIELDS: Array<string> = ["nameservers", "domain", "search", "options"];

function decodeAddress(d: Decoder, v: JSONValue): Address {
  const a = new Address();
  if (v.isNull()) return a;
  if (!v.isObject()) { d.typeError(v, "IPAMConfig", "ipam.addresses", "main.Address"); return a; }
  const keys = v.keys();
  for (let i = 0; i < keys.length && !d.stopped; i++) {
    const name = matchField(keys[i], ADDRESS_FIELDS);
    const f = v.get(keys[i])!;
    if (name == "address") a.text = d.str(f, a.text, "Address", "ipam.addresses.address");
    else if (name == "gateway") a.gateway = d.netIP(f, "Address", "ipam.addresses.gateway");
    else if (name == "Version") d.str(f, "", "Address", "ipam.addresses.Version");
    else if (name == "Address" && !f.isNull() && !f.isObject()) d.typeError(f, "Address", "ipam.addresses.Address", "net.IPNet");
  }
  return a;
}

/** types.DNS, kept as the result's "dns" object (empty members left out). */
function decodeDNS(d: Decoder, v: JSONValue): JSONValue {
  const out = JSONValue.newObject();
  if (v.isNull()) return out;
  if (!v.isObject()) { d.typeError(v, "IPAMConfig", "ipam.dns", "types.DNS"); return out; }
  let nameservers: Array<string> | null = null, search: Array<string> | null = null, options: Array<string> | null = null;
  let domain = "";
  const keys = v.keys();
  for (let i = 0; i < keys.length && !d.stopped; i++) {
    const name = matchField(keys[i], DNS_FIELDS);
    const f = v.get(keys[i])!;
    if (name == "nameservers") nameservers = d.strings(f, "DNS", "ipam.dns.nameservers");
    else if (name == "domain") domain = d.str(f, domain, "DNS", "ipam.dns.domain");
    else if (name == "search") search = d.strings(f, "DNS", "ipam.dns.search");
    else if (name == "options") options = d.strings(f, "DNS", "ipam.dns.options");
  }
  if (nameservers !== null && nameservers.length > 0) out.set("nameservers", stringArray(nameservers));
  if (domain.length > 0) out.set("domain", JSONValue.fromString(domain));
  if (search !== null && search.length > 0) out.set("search", stringArray(search));
  if (options !== null && options.length > 0) out.set("options", stringArray(options));
  return out;
}

function stringArray(list: Array<string>): JSONValue {
  const a = JSONValue.newArray();
  for (let i = 0; i < list.length; i++) a.push(JSONValue.fromString(list[i]));
  return a;
}

function decodeIpam(d: Decoder, v: JSONValue, c: StaticConfig): void {
  if (v.isNull()) { c.hasIpam = false; return; }
  if (!v.isObject()) { d.typeError(v, "Net", "ipam", "main.IPAMConfig"); return; }
  c.hasIpam = true;
  const keys = v.keys();
  for (let i = 0; i < keys.length && !d.stopped; i++) {
    const name = matchField(keys[i], ["Name", "type", "routes", "addresses", "dns"]);
    const f = v.get(keys[i])!;
    if (name == "Name" || name == "type") d.str(f, "", "IPAMConfig", "ipam." + name);
    else if (name == "routes") {
      if (f.isNull()) { c.routes = new Array<ConfRoute>(); continue; }
      if (!f.isArray()) { d.typeError(f, "IPAMConfig", "ipam.routes", "[]*types.Route"); continue; }
      const items = f.asArray();
      const routes = new Array<ConfRoute>();
      for (let j = 0; j < items.length && !d.stopped; j++) decodeRoute(d, items[j], routes);
      c.routes = routes;
    } else if (name == "addresses") {
      c.addresses = new Array<Address>();
      if (f.isNull()) continue;
      if (!f.isArray()) { d.typeError(f, "IPAMConfig", "ipam.addresses", "[]main.Address"); continue; }
      const items = f.asArray();
      for (let j = 0; j < items.length && !d.stopped; j++) c.addresses.push(decodeAddress(d, items[j]));
    } else if (name == "dns") {
      c.dns = decodeDNS(d, f);
    }
  }
}

function decodeNet(d: Decoder, doc: JSONValue, c: StaticConfig): void {
  const keys = doc.keys();
  for (let i = 0; i < keys.length && !d.stopped; i++) {
    const name = matchField(keys[i], ["name", "cniVersion", "ipam", "runtimeConfig", "args"]);
    const f = doc.get(keys[i])!;
    if (name == "cniVersion") c.cniVersion = d.str(f, c.cniVersion, "Net", "cniVersion");
    else if (name == "ipam") decodeIpam(d, f, c);
    else if (name == "runtimeConfig") {
      if (!f.isObject()) continue; // the host has checked it is an object
      const rk = f.keys();
      for (let j = 0; j < rk.length && !d.stopped; j++) {
        if (matchField(rk[j], ["ips"]) == "ips") c.runtimeIPs = d.strings(f.get(rk[j])!, "", "runtimeConfig.ips");
      }
    } else if (name == "args") {
      if (!f.isObject()) continue;
      const ak = f.keys();
      for (let j = 0; j < ak.length && !d.stopped; j++) {
        if (matchField(ak[j], ["cni"]) != "cni") continue;
        const cni = f.get(ak[j])!;
        if (cni.isNull()) { c.argIPs = null; continue; }
        if (!cni.isObject()) { d.typeError(cni, "", "args.cni", "main.IPAMArgs"); continue; }
        const ck = cni.keys();
        for (let k = 0; k < ck.length && !d.stopped; k++) {
          if (matchField(ck[k], ["ips"]) == "ips") c.argIPs = d.strings(cni.get(ck[k])!, "IPAMArgs", "args.cni.ips");
        }
      }
    }
  }
}

/** Addresses from a list of CIDRs that replaces all others (args.cni.ips, runtimeConfig.ips). */
function replaceAddresses(list: Array<string>, c: StaticConfig): string {
  const out = new Array<Address>();
  for (let i = 0; i < list.length; i++) {
    const n = goParseCIDR(list[i]);
    if (n === null) return "an entry in the 'ips' field is NOT in CIDR notation, got: '" + list[i] + "'";
    const a = new Address();
    a.text = list[i];
    a.net = n;
    out.push(a);
  }
  c.addresses = out;
  return "";
}

function loadIPAMConfig(req: Request): Loaded {
  const doc = parseConfig(req);
  if (doc === null) {
    return Result.failure<StaticConfig, CniError>(configDecodeError());
  }
  const d = new Decoder();
  const c = new StaticConfig();
  c.doc = doc;
  decodeNet(d, doc, c);
  if (d.failed) return fail(ERR_INVALID_CONFIG, d.error());
  if (!c.hasIpam) return fail(ERR_INVALID_CONFIG, "IPAM config missing 'ipam' key");

  if (req.args.length > 0) {
    const env = loadEnvArgs(req.args, ["IP", "GATEWAY"], [ARG_STRING, ARG_STRING]);
    if (env.error.length > 0) return fail(ERR_INVALID_ENV, env.error);
    const ipText = env.values[0], gwText = env.values[1];
    if (ipText.length > 0) {
      const items = ipText.split(",");
      for (let i = 0; i < items.length; i++) {
        const s = trimSpace(items[i]);
        const n = goParseCIDR(s);
        if (n === null) return fail(ERR_INVALID_ENV, "the 'ip' field is expected to be in CIDR notation, got: '" + s + "'");
        const a = new Address();
        a.text = s;
        a.net = n;
        c.addresses.push(a);
      }
    }
    if (gwText.length > 0) {
      const items = gwText.split(",");
      for (let i = 0; i < items.length; i++) {
        const gw = goParseIP(trimSpace(items[i]));
        if (gw === null) return fail(ERR_INVALID_ENV, "invalid gateway address: " + items[i]);
        // only addresses already parsed (those from CNI_ARGS) can contain it
        for (let j = 0; j < c.addresses.length; j++) {
          const n = c.addresses[j].net;
          if (n !== null && new IPNet(n.ip, n.prefix).contains(gw)) c.addresses[j].gateway = gw;
        }
      }
    }
  }

  const argIPs = c.argIPs;
  if (argIPs !== null && argIPs.length > 0) {
    const e = replaceAddresses(argIPs, c);
    if (e.length > 0) return fail(ERR_INVALID_CONFIG, e);
  }
  const runtimeIPs = c.runtimeIPs;
  if (runtimeIPs !== null && runtimeIPs.length > 0) {
    const e = replaceAddresses(runtimeIPs, c);
    if (e.length > 0) return fail(ERR_INVALID_CONFIG, e);
  }

  let numV4 = 0, numV6 = 0;
  for (let i = 0; i < c.addresses.length; i++) {
    const a = c.addresses[i];
    let n = a.net;
    if (n === null) {
      n = goParseCIDR(a.text);
      if (n === null) return fail(ERR_INVALID_CONFIG, "the 'address' field is expected to be in CIDR notation, got: '" + a.text + "'");
      a.net = n;
    }
    if (n.ip.family == 4) numV4++;
    else numV6++;
  }
  if ((numV4 > 1 || numV6 > 1) && !versionAtLeast(c.cniVersion, "0.3.0")) {
    return fail(ERR_INVALID_CONFIG, "CNI version " + c.cniVersion + " does not support more than 1 address per family");
  }
  return Result.success<StaticConfig, CniError>(c);
}

/** The address part of "10.1.2.3/24" (or of a bare address). */
function addressIP(cidr: string): IP | null {
  if (cidr.indexOf("/") >= 0) {
    const n = goParseCIDR(cidr);
    return n === null ? null : n.ip;
  }
  return goParseIP(cidr);
}

class Static extends CniPlugin {
  add(req: Request): Result<string, CniError> {
    const l = loadIPAMConfig(req);
    if (!l.ok) return Result.failure<string, CniError>(l.error!);
    const c = l.value;
    const re = checkRoutes(c.routes);
    if (re.length > 0) return Result.failure<string, CniError>(cniError(ERR_INVALID_CONFIG, re));
    const result = new CniResult();
    for (let i = 0; i < c.addresses.length; i++) {
      const a = c.addresses[i];
      const ipc = new IPConfig();
      ipc.address = a.net!.toString();
      const gw = a.gateway;
      if (gw !== null) ipc.gateway = goIPString(gw);
      result.ips.push(ipc);
    }
    for (let i = 0; i < c.routes.length; i++) {
      const rt = new ResultRoute();
      rt.dst = c.routes[i].dst;
      rt.gw = c.routes[i].gw;
      result.routes.push(rt);
    }
    if (c.dns.keys().length > 0) result.dns = c.dns;
    return Result.success<string, CniError>(result.stringify());
  }

  /** Nothing was allocated, so there is nothing to release. */
  del(req: Request): CniError | null { return null; }

  check(req: Request): CniError | null {
    const l = loadIPAMConfig(req);
    if (!l.ok) return l.error;
    const c = l.value;
    const prev = c.doc.getObject("prevResult");
    if (prev === null) return cniError(ERR_INVALID_CONFIG, "Required prevResult missing");
    const result = CniResult.fromJSON(prev);
    // each configured address that the result has must carry the configured gateway
    for (let i = 0; i < c.addresses.length; i++) {
      const a = c.addresses[i];
      const want = a.net!.ip;
      for (let j = 0; j < result.ips.length; j++) {
        const got = addressIP(result.ips[j].address);
        if (got === null || !got.equals(want)) continue;
        const gw = a.gateway;
        if (gw === null) break;
        const prevGw = result.ips[j].gateway.length > 0 ? goParseIP(result.ips[j].gateway) : null;
        if (prevGw !== null && prevGw.equals(gw)) break;
        return cniError(ERR_INTERNAL, "static: Failed to match addr " + goIPString(got) + " on interface " + req.ifname);
      }
    }
    return null;
  }
}

registerPlugin(new Static());
