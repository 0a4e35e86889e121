// flannel: the meta-plugin of flannel-io/cni-plugin. It reads the subnet
// flanneld leased this node (subnetFile, default /run/flannel/subnet.env),
// builds the delegate's config from it (bridge by default, ipMasq unless
// flanneld masquerades, the flannel MTU, the bridge as gateway, host-local
// with the node's subnet as its range and a route to each flannel network),
// saves that config as dataDir/<container id> (default /var/lib/cni/flannel)
// BEFORE running the delegate, and returns the delegate's result. DEL
// replays the saved config's DEL and removes the file.
//
// The files go through the host's `files` interface: only the FLANNEL_*
// lines of the subnet file cross, and only paths the runtime's config names
// under subnetFile and dataDir (declared in grants.json).
//
// Where this differs from flannel-io/cni-plugin, on purpose:
// - DEL removes a saved config that does not parse (the reference's deferred
//   cleanup sees the parse error and keeps it); when the delegate's DEL
//   fails, the saved config is kept (the reference removes it) so that the
//   runtime's retry can still release what the delegate holds;
// - CHECK, as the reference's, checks nothing but the config. Replaying the
//   delegate's CHECK would be easy, but the reference bridge 1.1.1 fails its
//   own CHECK on flannel's gateway-less routes ("Expected Route {Dst:... GW:<nil>}
//   not found in routing table", seen here with flannel's delegate config), so a
//   runtime's CHECK would fail where flannel-io's passes;
// - GC (spec 1.1) removes saved configs of containers not in
//   cni.dev/valid-attachments and runs the delegate's GC (the reference has none);
// - a subnet.env line without "=" is an error naming it (the reference panics);
// (The saved config is written as Go's encoding/json writes a map: keys
// sorted, "<", ">", "&", U+2028 and U+2029 escaped.)
// The host fills in cniVersion "0.1.0" when the runtime's config has none
// (as libcni reads it), so the delegate gets "cniVersion":"0.1.0" where the
// reference leaves the key out; both mean the same to the delegate.
import {
  CniError, CniPlugin, Command, EnvLine, JSONValue, Request, Result,
  ERR_INTERNAL, cniError, configDecodeError, delegate, files, parseConfig, parseJSON, registerPlugin,
} from "../sdk";
import { GoCIDR, goParseCIDR, goParseIP, goIPString, goQuote, jsonKindName, matchField } from "../sdk/gocompat";
import { IPNet } from "../sdk/ip";

const DEFAULT_SUBNET_FILE = "/run/flannel/subnet.env";
const DEFAULT_DATA_DIR = "/var/lib/cni/flannel";
const ENV_KEYS: Array<string> = ["FLANNEL_NETWORK", "FLANNEL_SUBNET", "FLANNEL_IPV6_NETWORK", "FLANNEL_IPV6_SUBNET", "FLANNEL_MTU", "FLANNEL_IPMASQ"];
const VALID_ATTACHMENTS = "cni.dev/valid-attachments";

function fail(msg: string, details: string = ""): CniError {
  return cniError(ERR_INTERNAL, msg, details);
}

// ---------------------------------------------------------------- config

class FlannelConf {
  cniVersion: string = "";
  name: string = "";
  subnetFile: string = DEFAULT_SUBNET_FILE;
  dataDir: string = DEFAULT_DATA_DIR;
  delegate: JSONValue | null = null;
  ipam: JSONValue | null = null;
  runtimeConfig: JSONValue | null = null;
  doc: JSONValue = JSONValue.newObject();
}

const FIELDS: Array<string> = ["subnetFile", "dataDir", "delegate", "ipam", "runtimeConfig"];

/** loadFlannelNetConf: encoding/json into the NetConf struct (the first type error wins). */
function loadConf(req: Request): Result<FlannelConf, CniError> {
  const doc = parseConfig(req);
  if (doc === null) return Result.failure<FlannelConf, CniError>(configDecodeError());
  const c = new FlannelConf();
  c.doc = doc;
  c.cniVersion = doc.getString("cniVersion");
  c.name = doc.getString("name");
  let typeErr = "";
  const keys = doc.keys();
  for (let i = 0; i < keys.length; i++) {
    const field = matchField(keys[i], FIELDS);
    if (field.length == 0) continue;
    const v = doc.get(keys[i])!;
    const isMap = field == "delegate" || field == "ipam" || field == "runtimeConfig";
    if (v.isNull()) {
      // null leaves a string field as it was and makes a map nil
      if (field == "delegate") c.delegate = null;
      else if (field == "ipam") c.ipam = null;
      else if (field == "runtimeConfig") c.runtimeConfig = null;
      continue;
    }
    if (isMap ? !v.isObject() : !v.isString()) {
      if (typeErr.length == 0) {
        typeErr = "json: cannot unmarshal " + jsonKindName(v) + " into Go struct field NetConf." + field + " of type " +
          (isMap ? "map[string]interface {}" : "string");
      }
      continue;
    }
    if (field == "subnetFile") c.subnetFile = v.asString();
    else if (field == "dataDir") c.dataDir = v.asString();
    else if (field == "delegate") c.delegate = v.clone();
    else if (field == "ipam") c.ipam = v.clone();
    else c.runtimeConfig = v.clone();
  }
  if (typeErr.length > 0) return Result.failure<FlannelConf, CniError>(fail("failed to load netconf: " + typeErr));
  return Result.success<FlannelConf, CniError>(c);
}

// ---------------------------------------------------------------- subnet.env

class SubnetEnv {
  nws: Array<string> = new Array<string>();
  sn: string = "";
  ip6Nws: Array<string> = new Array<string>();
  ip6Sn: string = "";
  hasMtu: bool = false;
  mtu: u64 = 0;
  hasIpmasq: bool = false;
  ipmasq: bool = false;

  missing(): string {
    const m = new Array<string>();
    if (this.nws.length == 0 && this.ip6Nws.length == 0) { m.push("FLANNEL_NETWORK"); m.push("FLANNEL_IPV6_NETWORK"); }
    if (this.sn.length == 0 && this.ip6Sn.length == 0) { m.push("FLANNEL_SUBNET"); m.push("FLANNEL_IPV6_SUBNET"); }
    if (!this.hasMtu) m.push("FLANNEL_MTU");
    if (!this.hasIpmasq) m.push("FLANNEL_IPMASQ");
    return m.join(", ");
  }
}

/** net.ParseCIDR's network (host bits cleared) as net.IPNet.String() writes it, or null. */
function networkOf(s: string): string | null {
  const c: GoCIDR | null = goParseCIDR(s);
  if (c === null) return null;
  let prefix = c.prefix;
  // an IPv4-mapped address with an IPv6 mask: Go keeps the IPv4 part
  if (c.ip.family == 4 && c.bits == 128) {
    if (prefix < 96) return c.ip.toString() + "/" + prefix.toString();
    prefix -= 96;
  }
  const n = new IPNet(c.ip, prefix);
  return goIPString(n.network()) + "/" + prefix.toString();
}

function cidrError(s: string): string { return "invalid CIDR address: " + s; }

/** strconv.ParseUint(s, 10, 32) */
function parseUint32(s: string): Result<u64, string> {
  const syntax = "strconv.ParseUint: parsing " + goQuote(s) + ": invalid syntax";
  if (s.length == 0) return Result.failure<u64, string>(syntax);
  let n: u64 = 0;
  let over = false;
  for (let i = 0; i < s.length; i++) {
    const ch = s.charCodeAt(i);
    if (ch < 0x30 || ch > 0x39) return Result.failure<u64, string>(syntax);
    if (!over) {
      n = n * 10 + <u64>(ch - 0x30);
      if (n > 0xffffffff) over = true;
    }
  }
  if (over) return Result.failure<u64, string>("strconv.ParseUint: parsing " + goQuote(s) + ": value out of range");
  return Result.success<u64, string>(n);
}

function addNetworks(value: string, into: Array<string>): string {
  into.length = 0;
  const cidrs = value.split(",");
  for (let i = 0; i < cidrs.length; i++) {
    const nw = networkOf(cidrs[i]);
    if (nw === null) return cidrError(cidrs[i]);
    if (!into.includes(nw)) into.push(nw);
  }
  return "";
}

/** loadFlannelSubnetEnv: the lines in file order, each as flannel reads it. */
function loadSubnetEnv(path: string): Result<SubnetEnv, string> {
  const r = files.readEnv(path, ENV_KEYS);
  if (!r.ok) return Result.failure<SubnetEnv, string>(r.error!.message);
  const se = new SubnetEnv();
  const lines: Array<EnvLine> = r.value;
  for (let i = 0; i < lines.length; i++) {
    const k = lines[i].key;
    const vv = lines[i].value;
    if (vv === null) return Result.failure<SubnetEnv, string>(path + ": line " + goQuote(k) + " has no \"=\" and no value");
    const v = vv!;
    let err = "";
    if (k == "FLANNEL_NETWORK") err = addNetworks(v, se.nws);
    else if (k == "FLANNEL_IPV6_NETWORK") err = addNetworks(v, se.ip6Nws);
    else if (k == "FLANNEL_SUBNET" || k == "FLANNEL_IPV6_SUBNET") {
      const nw = networkOf(v);
      if (nw === null) err = cidrError(v);
      else if (k == "FLANNEL_SUBNET") se.sn = nw;
      else se.ip6Sn = nw;
    } else if (k == "FLANNEL_MTU") {
      const m = parseUint32(v);
      if (!m.ok) err = m.error!;
      else { se.mtu = m.value; se.hasMtu = true; }
    } else if (k == "FLANNEL_IPMASQ") {
      se.ipmasq = v == "true";
      se.hasIpmasq = true;
    }
    if (err.length > 0) return Result.failure<SubnetEnv, string>(err);
  }
  const m = se.missing();
  if (m.length > 0) return Result.failure<SubnetEnv, string>(path + " is missing " + m);
  return Result.success<SubnetEnv, string>(se);
}

// ---------------------------------------------------------------- delegate config

/** types.Route as CNI 1.3 marshals it: dst, gw and the optional numbers, omitempty. */
function routeJSON(dst: string, src: JSONValue | null): JSONValue {
  const o = JSONValue.newObject().set("dst", JSONValue.fromString(dst));
  if (src === null) return o;
  const gw = src.get("gw");
  if (gw !== null && gw.isString() && gw.asString().length > 0) {
    const ip = goParseIP(gw.asString());
    if (ip !== null) o.set("gw", JSONValue.fromString(goIPString(ip)));
  }
  const ints: Array<string> = ["mtu", "advmss", "priority"];
  for (let i = 0; i < ints.length; i++) {
    const n = src.get(ints[i]);
    if (n !== null && n.isNumber() && n.asNumber() != 0) o.set(ints[i], JSONValue.fromNumber(n.asNumber()));
  }
  const ptrs: Array<string> = ["table", "scope"];
  for (let i = 0; i < ptrs.length; i++) {
    const n = src.get(ptrs[i]);
    if (n !== null && n.isNumber()) o.set(ptrs[i], JSONValue.fromNumber(n.asNumber()));
  }
  return o;
}

/** getIPAMRoutes: the config's ipam.routes, read as []types.Route. */
function ipamRoutes(ipam: JSONValue): Result<Array<JSONValue>, string> {
  const out = new Array<JSONValue>();
  const v = ipam.get("routes");
  if (v === null || v.isNull()) return Result.success<Array<JSONValue>, string>(out);
  const pre = "failed to parse ipam.routes: ";
  if (!v.isArray()) return Result.failure<Array<JSONValue>, string>(pre + "json: cannot unmarshal " + jsonKindName(v) + " into Go value of type []types.Route");
  const items = v.asArray();
  for (let i = 0; i < items.length; i++) {
    const it = items[i];
    if (it.isNull()) { out.push(routeJSON("<nil>", null)); continue; }
    if (!it.isObject()) return Result.failure<Array<JSONValue>, string>(pre + "json: cannot unmarshal " + jsonKindName(it) + " into Go value of type types.Route");
    const dst = it.get("dst");
    let d = "<nil>";
    if (dst !== null && !dst.isNull()) {
      if (!dst.isString()) return Result.failure<Array<JSONValue>, string>(pre + "json: cannot unmarshal " + jsonKindName(dst) + " into Go struct field route.dst of type string");
      const c = goParseCIDR(dst.asString());
      if (c === null) return Result.failure<Array<JSONValue>, string>(pre + cidrError(dst.asString()));
      d = c.toString();
    }
    const gw = it.get("gw");
    if (gw !== null && gw.isString() && gw.asString().length > 0 && goParseIP(gw.asString()) === null) {
      return Result.failure<Array<JSONValue>, string>(pre + "invalid IP address: " + gw.asString());
    }
    out.push(routeJSON(d, it));
  }
  return Result.success<Array<JSONValue>, string>(out);
}

function rangeSet(subnet: string): JSONValue {
  return JSONValue.newArray().push(JSONValue.newObject().set("subnet", JSONValue.fromString(subnet)));
}

/** getDelegateIPAM: the config's ipam, with flannel's ranges and routes. */
function delegateIpam(c: FlannelConf, se: SubnetEnv): Result<JSONValue, string> {
  const ipam = c.ipam !== null ? c.ipam!.clone() : JSONValue.newObject();
  if (!ipam.has("type")) ipam.set("type", JSONValue.fromString("host-local"));
  const ranges = JSONValue.newArray();
  if (se.sn.length > 0) ranges.push(rangeSet(se.sn));
  if (se.ip6Sn.length > 0) ranges.push(rangeSet(se.ip6Sn));
  ipam.set("ranges", ranges);
  const rr = ipamRoutes(ipam);
  if (!rr.ok) return Result.failure<JSONValue, string>("failed to read IPAM routes: " + rr.error!);
  const routes = JSONValue.newArray();
  for (let i = 0; i < rr.value.length; i++) routes.push(rr.value[i]);
  for (let i = 0; i < se.nws.length; i++) routes.push(routeJSON(se.nws[i], null));
  for (let i = 0; i < se.ip6Nws.length; i++) routes.push(routeJSON(se.ip6Nws[i], null));
  ipam.set("routes", routes);
  return Result.success<JSONValue, string>(ipam);
}

/** cmdAdd's checks on the config's delegate dictionary. */
function checkDelegate(d: JSONValue | null): CniError | null {
  if (d === null) return null;
  const t = d.get("type");
  if (t !== null && !t.isString()) return fail("'delegate' dictionary, if present, must have (string) 'type' field");
  if (d.has("name")) return fail("'delegate' dictionary must not have 'name' field, it'll be set by flannel");
  if (d.has("ipam")) return fail("'delegate' dictionary must not have 'ipam' field, it'll be set by flannel");
  return null;
}

/** doCmdAdd: the delegate's config. */
function delegateConf(c: FlannelConf, se: SubnetEnv): Result<JSONValue, CniError> {
  const d = c.delegate !== null ? c.delegate!.clone() : JSONValue.newObject();
  if (c.runtimeConfig !== null) d.set("runtimeConfig", c.runtimeConfig!);
  d.set("name", JSONValue.fromString(c.name));
  if (!d.has("type")) d.set("type", JSONValue.fromString("bridge"));
  // if flannel is not masquerading, the delegate should
  if (!d.has("ipMasq")) d.set("ipMasq", JSONValue.fromBool(!se.ipmasq));
  if (!d.has("mtu")) d.set("mtu", JSONValue.fromNumber(<f64>se.mtu));
  if (d.getString("type") == "bridge" && !d.has("isGateway")) d.set("isGateway", JSONValue.fromBool(true));
  if (c.cniVersion.length > 0) d.set("cniVersion", JSONValue.fromString(c.cniVersion));
  const ipam = delegateIpam(c, se);
  if (!ipam.ok) return Result.failure<JSONValue, CniError>(fail("failed to assemble Delegate IPAM: " + ipam.error!));
  d.set("ipam", ipam.value);
  return Result.success<JSONValue, CniError>(d);
}

/** Compact JSON as Go's encoding/json writes a map[string]interface{}: keys sorted, HTML-safe. */
function goJSON(v: JSONValue): string {
  // these characters only occur inside strings, so escaping the text is escaping the strings
  return sorted(v).stringify().replaceAll("<", "\\u003c").replaceAll(">", "\\u003e").replaceAll("&", "\\u0026")
    .replaceAll("\u2028", "\\u2028").replaceAll("\u2029", "\\u2029");
}

/** The document with every object's keys sorted, as Go's encoding/json writes a map. */
function sorted(v: JSONValue): JSONValue {
  if (v.isArray()) {
    const a = JSONValue.newArray();
    const items = v.asArray();
    for (let i = 0; i < items.length; i++) a.push(sorted(items[i]));
    return a;
  }
  if (!v.isObject()) return v;
  const keys = v.keys();
  keys.sort((x: string, y: string): i32 => (x < y ? -1 : x > y ? 1 : 0));
  const o = JSONValue.newObject();
  for (let i = 0; i < keys.length; i++) o.set(keys[i], sorted(v.get(keys[i])!));
  return o;
}

// ---------------------------------------------------------------- the saved config

class Saved {
  text: string = "";
  type: string = "";
}

/** consumeScratchNetConf: the saved config, null when there is none. */
function loadSaved(c: FlannelConf, req: Request): Result<Saved | null, CniError> {
  const r = files.load(c.dataDir, req.containerId);
  if (!r.ok) return Result.failure<Saved | null, CniError>(fail(r.error!.message, r.error!.code));
  if (r.value === null) return Result.success<Saved | null, CniError>(null);
  const s = new Saved();
  s.text = r.value!;
  const parsed = parseJSON(s.text);
  if (parsed !== null && parsed.isObject()) s.type = parsed.getString("type");
  return Result.success<Saved | null, CniError>(s);
}

function removeSaved(c: FlannelConf, req: Request): CniError | null {
  const e = files.remove(c.dataDir, req.containerId);
  return e !== null ? fail("failed to remove " + c.dataDir + "/" + req.containerId + ": " + e.message, e.code) : null;
}

// ---------------------------------------------------------------- commands

class Flannel extends CniPlugin {
  add(req: Request): Result<string, CniError> {
    const cr = loadConf(req);
    if (!cr.ok) return Result.failure<string, CniError>(fail("failed to load flannel netconf file: " + cr.error!.msg));
    const c = cr.value;
    const se = loadSubnetEnv(c.subnetFile);
    if (!se.ok) {
      return Result.failure<string, CniError>(fail("failed to load flannel 'subnet.env' file: " + se.error! + ". Check the flannel pod log for this node."));
    }
    const de = checkDelegate(c.delegate);
    if (de !== null) return Result.failure<string, CniError>(de);
    const dc = delegateConf(c, se.value);
    if (!dc.ok) return Result.failure<string, CniError>(dc.error!);
    const text = goJSON(dc.value);
    // saved for DEL before the delegate runs; a failed ADD takes it back (the host's ledger)
    const sv = files.save(c.dataDir, req.containerId, text);
    if (sv !== null) return Result.failure<string, CniError>(fail(sv.message, sv.code));
    const r = delegate.run(dc.value.getString("type"), Command.Add, text);
    if (!r.ok) {
      // the host's sweep of this failed ADD removes the saved config (its ledger entry)
      const e = r.error!;
      // the delegate's error wrapped, as Go's %w gives it to skel: code 999, "msg; details"
      return Result.failure<string, CniError>(fail("failed to delegate add: " + e.msg + (e.details.length > 0 ? "; " + e.details : "")));
    }
    return Result.success<string, CniError>(r.value);
  }

  del(req: Request): CniError | null {
    const cr = loadConf(req);
    if (!cr.ok) return cr.error!;
    const c = cr.value;
    const sr = loadSaved(c, req);
    if (!sr.ok) return sr.error!;
    // nothing saved: nothing to undo (per spec, DEL of what is gone succeeds)
    if (sr.value === null) return null;
    const s = sr.value!;
    // unparseable: nothing can be replayed; the file goes (the reference keeps it)
    if (s.type.length == 0) return removeSaved(c, req);
    const r = delegate.run(s.type, Command.Del, s.text);
    if (!r.ok) return r.error!; // kept: the runtime's next DEL tries again
    return removeSaved(c, req);
  }

  /** As the reference: the config must load, nothing is checked (see the header). */
  check(req: Request): CniError | null {
    const cr = loadConf(req);
    return cr.ok ? null : cr.error!;
  }

  gc(req: Request): CniError | null {
    const cr = loadConf(req);
    if (!cr.ok) return cr.error!;
    const c = cr.value;
    const valid = new Set<string>();
    const va = c.doc.getArray(VALID_ATTACHMENTS);
    if (va !== null) for (let i = 0; i < va.length; i++) if (va[i].isObject()) valid.add(va[i].getString("containerID"));
    const names = files.list(c.dataDir);
    if (!names.ok) return fail("failed to list " + c.dataDir + ": " + names.error!.message, names.error!.code);
    for (let i = 0; i < names.value.length; i++) {
      const n = names.value[i];
      if (valid.has(n)) continue;
      const e = files.remove(c.dataDir, n);
      if (e !== null) return fail("failed to remove " + c.dataDir + "/" + n + ": " + e.message, e.code);
    }
    // the delegate's own GC (host-local releases leases), with the config ADD would build now
    const se = loadSubnetEnv(c.subnetFile);
    if (!se.ok || checkDelegate(c.delegate) !== null) return null;
    const dc = delegateConf(c, se.value);
    if (!dc.ok) return null;
    const d = dc.value;
    const list = c.doc.get(VALID_ATTACHMENTS);
    d.set(VALID_ATTACHMENTS, list !== null ? list : JSONValue.newArray());
    const r = delegate.run(d.getString("type"), Command.Gc, goJSON(d));
    return r.ok ? null : r.error!;
  }
}

registerPlugin(new Flannel());
