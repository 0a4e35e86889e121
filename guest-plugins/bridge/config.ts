// The bridge plugin's network configuration: the keys the reference bridge
// reads, with their defaults, type-checked the way Go's encoding/json would
// reject them (a string where a bool belongs, a fraction for the MTU), but
// reported as CNI code 7 with a message that names the key.
import {
  CniError, JSONValue, Request, Result,
  ERR_INVALID_CONFIG, ERR_INVALID_ENV, cniError, configDecodeError, parseConfig,
} from "../sdk";

export const DEFAULT_BRIDGE = "cni0";

export class BridgeConf {
  /** the whole document, as the runtime sent it (IPAM gets it unchanged) */
  doc: JSONValue = JSONValue.newObject();
  name: string = "";
  bridge: string = DEFAULT_BRIDGE;
  isGateway: bool = false;
  isDefaultGateway: bool = false;
  forceAddress: bool = false;
  ipMasq: bool = false;
  mtu: i32 = 0;
  hairpinMode: bool = false;
  promiscMode: bool = false;
  vlan: i32 = 0;
  macSpoofChk: bool = false;
  enableDad: bool = false;
  disableContainerInterface: bool = false;
  portIsolation: bool = false;
  /** container MAC from CNI_ARGS MAC, args.cni.mac or runtimeConfig.mac (last wins), "" for random */
  mac: string = "";
  /** "" when the config has no IPAM section: an L2-only attachment */
  ipamType: string = "";
  /** the config's own "dns", null when absent or empty */
  dns: JSONValue | null = null;
  prevResult: JSONValue | null = null;

  isLayer3(): bool { return this.ipamType.length > 0; }
}

function kindName(v: JSONValue): string {
  if (v.isString()) return "a string";
  if (v.isNumber()) return "a number";
  if (v.isBool()) return "a boolean";
  if (v.isArray()) return "a list";
  if (v.isObject()) return "an object";
  return "null";
}

function badType(key: string, want: string, v: JSONValue): CniError {
  return cniError(ERR_INVALID_CONFIG, "failed to load netconf: \"" + key + "\" must be " + want + ", not " + kindName(v));
}

// Each reader leaves the default when the key is absent or null (as Go does)
// and records the first type error it meets.
class Reader {
  err: CniError | null = null;
  constructor(public doc: JSONValue) {}

  bool(key: string, def: bool): bool {
    const v = this.doc.get(key);
    if (v === null || v.isNull()) return def;
    if (!v.isBool()) { if (this.err === null) this.err = badType(key, "true or false", v); return def; }
    return v.asBool();
  }

  int(key: string, def: i32, min: i32, max: i32): i32 {
    const v = this.doc.get(key);
    if (v === null || v.isNull()) return def;
    if (!v.isNumber()) { if (this.err === null) this.err = badType(key, "a whole number", v); return def; }
    const n = v.asNumber();
    if (n != Math.floor(n) || n < <f64>min || n > <f64>max) {
      if (this.err === null) {
        this.err = cniError(ERR_INVALID_CONFIG, "failed to load netconf: \"" + key + "\" must be a whole number from " +
          min.toString() + " to " + max.toString() + ", not " + v.stringify());
      }
      return def;
    }
    return <i32>n;
  }

  str(key: string, def: string): string {
    const v = this.doc.get(key);
    if (v === null || v.isNull()) return def;
    if (!v.isString()) { if (this.err === null) this.err = badType(key, "a string", v); return def; }
    return v.asString();
  }
}

function hexDigit(c: i32): bool {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46);
}

/** "aa:bb:cc:dd:ee:ff" or "aa-bb-..." → lower-case colon form; "" when it is not a 6-byte MAC. */
export function normalizeMac(s: string): string {
  if (s.length != 17) return "";
  const sep = s.charCodeAt(2);
  if (sep != 0x3a && sep != 0x2d) return "";
  for (let i = 0; i < 17; i++) {
    const c = s.charCodeAt(i);
    if (i % 3 == 2) { if (c != sep) return ""; } else if (!hexDigit(c)) return "";
  }
  return s.replaceAll("-", ":").toLowerCase();
}

// Go's %q of a []string: ["a" "b"]
function quoteList(items: Array<string>): string {
  const parts = new Array<string>();
  for (let i = 0; i < items.length; i++) parts.push(JSONValue.fromString(items[i]).stringify());
  return "[" + parts.join(" ") + "]";
}

/** CNI_ARGS as the reference reads them: MAC, and IgnoreUnknown for everything else. */
function readCniArgs(req: Request, conf: BridgeConf): CniError | null {
  let ignoreUnknown = false;
  const unknown = new Array<string>();
  for (let i = 0; i < req.args.length; i++) {
    const k = req.args[i].f0, v = req.args[i].f1;
    if (k == "IgnoreUnknown") {
      const l = v.toLowerCase();
      if (l == "1" || l == "true") ignoreUnknown = true;
      else if (l == "0" || l == "false") ignoreUnknown = false;
      else return cniError(ERR_INVALID_ENV, "ARGS: error parsing value of pair \"" + k + "=" + v + "\": boolean unmarshal error: invalid input " + v);
    } else if (k == "MAC") {
      if (v.length > 0) conf.mac = v;
    } else {
      unknown.push(k + "=" + v);
    }
  }
  // libcni's LoadArgs: unknown keys are an error unless IgnoreUnknown is set.
  if (unknown.length > 0 && !ignoreUnknown) return cniError(ERR_INVALID_ENV, "ARGS: unknown args " + quoteList(unknown));
  return null;
}

export function loadConf(req: Request): Result<BridgeConf, CniError> {
  const doc = parseConfig(req);
  if (doc === null) return Result.failure<BridgeConf, CniError>(configDecodeError());
  const c = new BridgeConf();
  c.doc = doc;
  c.name = doc.getString("name");
  const r = new Reader(doc);
  c.bridge = r.str("bridge", DEFAULT_BRIDGE);
  if (c.bridge.length == 0) c.bridge = DEFAULT_BRIDGE;
  c.isGateway = r.bool("isGateway", false);
  c.isDefaultGateway = r.bool("isDefaultGateway", false);
  c.forceAddress = r.bool("forceAddress", false);
  c.ipMasq = r.bool("ipMasq", false);
  c.mtu = r.int("mtu", 0, 0, 65535);
  c.hairpinMode = r.bool("hairpinMode", false);
  c.promiscMode = r.bool("promiscMode", false);
  c.macSpoofChk = r.bool("macspoofchk", false);
  c.enableDad = r.bool("enabledad", false);
  c.disableContainerInterface = r.bool("disableContainerInterface", false);
  c.portIsolation = r.bool("portIsolation", false);
  // The VLAN range check comes after the type check, with the reference's words.
  const vlan = doc.get("vlan");
  if (vlan !== null && vlan.isNumber() && vlan.asNumber() == Math.floor(vlan.asNumber()) &&
      (vlan.asNumber() < 0 || vlan.asNumber() > 4094) && r.err === null) {
    r.err = cniError(ERR_INVALID_CONFIG, "invalid VLAN ID " + (<i64>vlan.asNumber()).toString() + " (must be between 0 and 4094)");
  }
  c.vlan = r.int("vlan", 0, 0, 4094);
  if (r.err !== null) return Result.failure<BridgeConf, CniError>(r.err!);

  const ipam = doc.getObject("ipam");
  if (ipam !== null) c.ipamType = ipam.getString("type");
  const dns = doc.getObject("dns");
  if (dns !== null && dns.keys().length > 0) c.dns = dns;
  const prev = doc.getObject("prevResult");
  if (prev !== null) c.prevResult = prev;

  const argErr = readCniArgs(req, c);
  if (argErr !== null) return Result.failure<BridgeConf, CniError>(argErr!);
  let macFrom = c.mac.length > 0 ? "CNI_ARGS MAC" : "";
  const args = doc.getObject("args");
  if (args !== null) {
    const cni = args.getObject("cni");
    if (cni !== null && cni.getString("mac").length > 0) { c.mac = cni.getString("mac"); macFrom = "args.cni.mac"; }
  }
  const rc = doc.getObject("runtimeConfig");
  if (rc !== null && rc.getString("mac").length > 0) { c.mac = rc.getString("mac"); macFrom = "runtimeConfig.mac"; }
  if (c.mac.length > 0) {
    const m = normalizeMac(c.mac);
    if (m.length == 0) {
      return Result.failure<BridgeConf, CniError>(cniError(macFrom == "CNI_ARGS MAC" ? ERR_INVALID_ENV : ERR_INVALID_CONFIG,
        "invalid MAC address \"" + c.mac + "\" in " + macFrom, "a MAC address is six hex pairs, e.g. 0a:58:0a:0f:14:02"));
    }
    c.mac = m;
  }
  return Result.success<BridgeConf, CniError>(c);
}
