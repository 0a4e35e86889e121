// vpc-bridge's network configuration, read as aws's amazon-vpc-cni-plugins
// reads it (plugins/vpc-bridge/config): the same keys, defaults and error
// messages ("missing required parameter ENIName or ENIMACAddress", "invalid
// IPAddress ..."), but reported with the CNI code for a bad config (7) where
// aws's skeleton reports 999 for every error.
import {
  CniError, IPNet, JSONValue, Request, Result,
  ERR_INCOMPATIBLE_VERSION, ERR_INVALID_CONFIG, ERR_UNSUPPORTED_FIELD, cniError, parseCIDR, parseConfig, parseIP,
} from "../sdk";

export const BRIDGE_L2 = "L2";
export const BRIDGE_L3 = "L3";
/** aws's vpc.JumboFrameMTU */
export const JUMBO_MTU: u32 = 9001;
/** aws's PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0"), and 1.1.0 which our host speaks */
export const VERSIONS: Array<string> = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

export class KubernetesConfig {
  namespace: string = "";
  podName: string = "";
  podInfraContainerId: string = "";
  serviceCidr: string = "";
}

export class VpcConf {
  doc: JSONValue = JSONValue.newObject();
  cniVersion: string = "";
  name: string = "";
  eniName: string = "";
  /** lower-case colon form, "" when not given */
  eniMac: string = "";
  eniIPs: Array<IPNet> = new Array<IPNet>();
  vpcCIDRs: Array<IPNet> = new Array<IPNet>();
  bridgeType: string = BRIDGE_L3;
  bridgeNetNSPath: string = "";
  ips: Array<IPNet> = new Array<IPNet>();
  /** "" when not given */
  gateway: string = "";
  interfaceType: string = "veth";
  kubernetes: KubernetesConfig | null = null;
  prevResult: JSONValue | null = null;

  isL2(): bool { return this.bridgeType == BRIDGE_L2; }
}

function invalid(msg: string): CniError { return cniError(ERR_INVALID_CONFIG, msg); }

function goKind(v: JSONValue): string {
  if (v.isString()) return "string";
  if (v.isNumber()) return "number";
  if (v.isBool()) return "bool";
  if (v.isArray()) return "array";
  return "object";
}

/** encoding/json's complaint about a value of the wrong type. */
function unmarshal(v: JSONValue, key: string, goType: string): CniError {
  return invalid("failed to parse network config: json: cannot unmarshal " + goKind(v) + " into Go struct field netConfigJSON." + key + " of type " + goType);
}

class Reader {
  err: CniError | null = null;
  constructor(public doc: JSONValue) {}

  str(key: string): string {
    const v = this.doc.get(key);
    if (v === null || v.isNull()) return "";
    if (!v.isString()) { if (this.err === null) this.err = unmarshal(v, key, "string"); return ""; }
    return v.asString();
  }

  list(key: string): Array<string> {
    const out = new Array<string>();
    const v = this.doc.get(key);
    if (v === null || v.isNull()) return out;
    if (!v.isArray()) { if (this.err === null) this.err = unmarshal(v, key, "[]string"); return out; }
    const a = v.asArray();
    for (let i = 0; i < a.length; i++) {
      if (!a[i].isString()) { if (this.err === null) this.err = unmarshal(a[i], key, "string"); return out; }
      out.push(a[i].asString());
    }
    return out;
  }
}

function hex(c: i32): bool {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46);
}

/** net.ParseMAC for 6-byte addresses (colon, dash or dot form) → "aa:bb:cc:dd:ee:ff", or "". */
export function parseMac(s: string): string {
  let digits = "";
  if (s.length == 17) {
    const sep = s.charCodeAt(2);
    if (sep != 0x3a && sep != 0x2d) return "";
    for (let i = 0; i < 17; i++) {
      const c = s.charCodeAt(i);
      if (i % 3 == 2) { if (c != sep) return ""; } else if (!hex(c)) return ""; else digits += String.fromCharCode(c);
    }
  } else if (s.length == 14) {
    for (let i = 0; i < 14; i++) {
      const c = s.charCodeAt(i);
      if (i % 5 == 4) { if (c != 0x2e) return ""; } else if (!hex(c)) return ""; else digits += String.fromCharCode(c);
    }
  } else {
    return "";
  }
  const parts = new Array<string>();
  for (let i = 0; i < 12; i += 2) parts.push(digits.substr(i, 2));
  return parts.join(":").toLowerCase();
}

function supported(v: string): bool {
  for (let i = 0; i < VERSIONS.length; i++) if (VERSIONS[i] == v) return true;
  return false;
}

function quoted(a: Array<string>): string {
  const q = new Array<string>();
  for (let i = 0; i < a.length; i++) q.push("\"" + a[i] + "\"");
  return "[" + q.join(" ") + "]";
}

/** CNI_ARGS as aws reads them when they mention K8S (IgnoreUnknown); tolerant of a partial set. */
function readKubernetes(req: Request, conf: VpcConf, serviceCidr: string): void {
  let any = false;
  for (let i = 0; i < req.args.length; i++) {
    if (req.args[i].f0.includes("K8S") || req.args[i].f1.includes("K8S")) any = true;
  }
  if (!any) return;
  const k = new KubernetesConfig();
  k.serviceCidr = serviceCidr;
  for (let i = 0; i < req.args.length; i++) {
    const key = req.args[i].f0, v = req.args[i].f1;
    if (key == "K8S_POD_NAMESPACE") k.namespace = v;
    else if (key == "K8S_POD_NAME") k.podName = v;
    else if (key == "K8S_POD_INFRA_CONTAINER_ID") k.podInfraContainerId = v;
  }
  // aws requires the namespace and pod name on ADD ("missing required args");
  // runtimes such as podman send K8S_POD_NAME alone, so a partial set is accepted.
  conf.kubernetes = k;
}

export function loadConf(req: Request): Result<VpcConf, CniError> {
  const doc = parseConfig(req);
  if (doc === null) return Result.failure<VpcConf, CniError>(invalid("failed to parse network config: not a JSON object"));
  const c = new VpcConf();
  c.doc = doc;
  const r = new Reader(doc);
  c.cniVersion = r.str("cniVersion");
  c.name = r.str("name");
  c.eniName = r.str("eniName");
  const mac = r.str("eniMACAddress");
  const eniIPs = r.list("eniIPAddresses");
  const vpcCIDRs = r.list("vpcCIDRs");
  const bridgeType = r.str("bridgeType");
  c.bridgeNetNSPath = r.str("bridgeNetNSPath");
  const ips = r.list("ipAddresses");
  c.gateway = r.str("gatewayIPAddress");
  const ifType = r.str("interfaceType");
  const tapUser = r.str("tapUserID");
  const serviceCidr = r.str("serviceCIDR");
  if (r.err !== null) return Result.failure<VpcConf, CniError>(r.err!);

  if (!supported(c.cniVersion)) {
    return Result.failure<VpcConf, CniError>(cniError(ERR_INCOMPATIBLE_VERSION, "incompatible CNI versions",
      "config is \"" + c.cniVersion + "\", plugin supports " + quoted(VERSIONS)));
  }
  if (c.eniName.length == 0 && mac.length == 0) {
    return Result.failure<VpcConf, CniError>(invalid("missing required parameter ENIName or ENIMACAddress"));
  }
  c.bridgeType = bridgeType.length > 0 ? bridgeType : BRIDGE_L3;
  c.interfaceType = ifType.length > 0 ? ifType : "veth";
  if (mac.length > 0) {
    c.eniMac = parseMac(mac);
    if (c.eniMac.length == 0) return Result.failure<VpcConf, CniError>(invalid("invalid ENIMACAddress " + mac));
  }
  for (let i = 0; i < eniIPs.length; i++) {
    const n = parseCIDR(eniIPs[i]);
    if (n === null) return Result.failure<VpcConf, CniError>(invalid("invalid ENIIPAddress " + eniIPs[i]));
    c.eniIPs.push(n);
  }
  for (let i = 0; i < vpcCIDRs.length; i++) {
    const n = parseCIDR(vpcCIDRs[i]);
    if (n === null) return Result.failure<VpcConf, CniError>(invalid("invalid VPCCIDR " + vpcCIDRs[i]));
    c.vpcCIDRs.push(new IPNet(n.network(), n.prefix));
  }
  if (c.bridgeType != BRIDGE_L2 && c.bridgeType != BRIDGE_L3) {
    return Result.failure<VpcConf, CniError>(invalid("invalid BridgeType " + c.bridgeType));
  }
  for (let i = 0; i < ips.length; i++) {
    const n = parseCIDR(ips[i]);
    if (n === null) return Result.failure<VpcConf, CniError>(invalid("invalid IPAddress " + ips[i]));
    c.ips.push(n);
  }
  if (c.gateway.length > 0 && parseIP(c.gateway) === null) {
    return Result.failure<VpcConf, CniError>(invalid("invalid GatewayIPAddress " + c.gateway));
  }
  if (c.interfaceType != "veth" && c.interfaceType != "tap") {
    return Result.failure<VpcConf, CniError>(invalid("invalid InterfaceType " + c.interfaceType));
  }
  if (tapUser.length > 0) {
    let okNum = true;
    for (let i = 0; i < tapUser.length; i++) {
      const ch = tapUser.charCodeAt(i);
      if (!(ch >= 0x30 && ch <= 0x39) && !(i == 0 && (ch == 0x2d || ch == 0x2b) && tapUser.length > 1)) okNum = false;
    }
    if (!okNum) return Result.failure<VpcConf, CniError>(invalid("invalid TapUserID " + tapUser));
  }
  // What this host cannot do (yet), said plainly instead of half-done.
  if (c.interfaceType == "tap") {
    return Result.failure<VpcConf, CniError>(cniError(ERR_UNSUPPORTED_FIELD, "\"interfaceType\": \"tap\" is not supported by this vpc-bridge (veth only)"));
  }
  if (c.bridgeNetNSPath.length > 0) {
    return Result.failure<VpcConf, CniError>(cniError(ERR_UNSUPPORTED_FIELD,
      "\"bridgeNetNSPath\" is not supported by this vpc-bridge: the bridge is made in the namespace the plugin runs in",
      "moving the ENI into another namespace would need a host function for it; leave \"bridgeNetNSPath\" empty"));
  }
  if (c.isL2() && c.eniIPs.length == 0) {
    return Result.failure<VpcConf, CniError>(invalid("\"bridgeType\": \"L2\" needs \"eniIPAddresses\": the ENI's address moves to the bridge"));
  }
  readKubernetes(req, c, serviceCidr);
  c.prevResult = doc.getObject("prevResult");
  return Result.success<VpcConf, CniError>(c);
}
