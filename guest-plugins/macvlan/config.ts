// The macvlan plugin's network configuration: the keys the reference macvlan
// reads (containernetworking/plugins, with its later linkInContainer and
// bcqueuelen), matched and type-checked as Go's encoding/json does (keys
// case-insensitively, "json: cannot unmarshal ..." for a wrong type), and
// CNI_ARGS as libcni's LoadArgs reads them (MAC; IgnoreUnknown lets other
// keys, such as host-local's IP=, through to IPAM). Bad input is code 7
// (4 for CNI_ARGS) with the reference's words where it has them.
import {
  CniError, JSONValue, MacvlanMode, Netns, Request, Result,
  ERR_INVALID_CONFIG, ERR_INVALID_ENV, cniError, configDecodeError, parseConfig,
} from "../sdk";
import { ARG_STRING, Decoder, goQuote, loadEnvArgs, matchField } from "../sdk/gocompat";
import { normalizeMac } from "../bridge/config";

export class MacvlanConf {
  /** "" until resolved: then the configured master, or the default route's link */
  master: string = "";
  /** the config named the master (else it is the default route's) */
  masterConfigured: bool = false;
  modeName: string = "";
  mode: MacvlanMode = MacvlanMode.Bridge;
  mtu: i64 = 0;
  /** lower-case colon form, "" for a random address */
  mac: string = "";
  /** runtimeConfig.mac (the "mac" capability): it wins over "mac" and CNI_ARGS MAC */
  runtimeMac: string = "";
  linkInContainer: bool = false;
  bcQueueLen: u32 = 0;
  /** "" when the config has no IPAM section: an L2-only attachment */
  ipamType: string = "";
  /** the config's own "dns", null when absent */
  dns: JSONValue | null = null;
  prevResult: JSONValue | null = null;

  isLayer3(): bool { return this.ipamType.length > 0; }
  /** where the master is looked up */
  masterNs(): Netns { return this.linkInContainer ? Netns.Container : Netns.Host; }
}

function invalid(msg: string, details: string = ""): CniError {
  return cniError(ERR_INVALID_CONFIG, msg, details);
}

/** modeFromString: "" is bridge. */
export function parseMode(s: string): i32 {
  if (s == "" || s == "bridge") return <i32>MacvlanMode.Bridge;
  if (s == "private") return <i32>MacvlanMode.Private;
  if (s == "vepa") return <i32>MacvlanMode.Vepa;
  if (s == "passthru") return <i32>MacvlanMode.Passthru;
  return -1;
}

export function modeName(m: MacvlanMode): string {
  switch (m) {
    case MacvlanMode.Private: return "private";
    case MacvlanMode.Vepa: return "vepa";
    case MacvlanMode.Passthru: return "passthru";
    default: return "bridge";
  }
}

const FIELDS: Array<string> = ["master", "mode", "mtu", "mac", "linkInContainer", "bcqueuelen", "runtimeConfig", "ipam", "dns", "prevResult"];

function decode(d: Decoder, doc: JSONValue, c: MacvlanConf): void {
  const keys = doc.keys();
  for (let i = 0; i < keys.length && !d.stopped; i++) {
    const name = matchField(keys[i], FIELDS);
    const v = doc.get(keys[i])!;
    if (name == "master") c.master = d.str(v, c.master, "NetConf", "master");
    else if (name == "mode") c.modeName = d.str(v, c.modeName, "NetConf", "mode");
    else if (name == "mtu") c.mtu = d.integer(v, c.mtu, "NetConf", "mtu", "int", -9007199254740991, 9007199254740991);
    else if (name == "mac") c.mac = d.str(v, c.mac, "NetConf", "mac");
    else if (name == "linkInContainer") c.linkInContainer = d.boolean(v, c.linkInContainer, "NetConf", "linkInContainer");
    else if (name == "bcqueuelen") c.bcQueueLen = <u32>d.integer(v, <i64>c.bcQueueLen, "NetConf", "bcqueuelen", "uint32", 0, 4294967295);
    else if (name == "runtimeConfig") {
      if (v.isNull()) continue;
      if (!v.isObject()) { d.typeError(v, "NetConf", "runtimeConfig", "struct { Mac string \"json:\\\"mac,omitempty\\\"\" }"); continue; }
      const rk = v.keys();
      for (let j = 0; j < rk.length; j++) {
        if (matchField(rk[j], ["mac"]) != "mac") continue;
        c.runtimeMac = d.str(v.get(rk[j])!, c.runtimeMac, "NetConf", "runtimeConfig.mac");
      }
    } else if (name == "ipam") {
      if (v.isNull()) continue;
      if (!v.isObject()) { d.typeError(v, "NetConf", "ipam", "types.IPAM"); continue; }
      const ik = v.keys();
      for (let j = 0; j < ik.length; j++) {
        if (matchField(ik[j], ["type"]) == "type") c.ipamType = d.str(v.get(ik[j])!, c.ipamType, "NetConf", "ipam.type");
      }
    } else if (name == "dns") {
      if (v.isObject() && v.keys().length > 0) c.dns = v;
    } else if (name == "prevResult") {
      if (v.isObject()) c.prevResult = v;
    }
  }
}

/**
 * The config and CNI_ARGS. The master is not looked up here: that needs the
 * kernel (see resolveMaster in index.ts). `lenient` (DEL, STATUS, GC): only
 * what those need must decode, as the reference's DEL reads only the IPAM type.
 */
export function loadConf(req: Request, lenient: bool = false): Result<MacvlanConf, CniError> {
  const doc = parseConfig(req);
  if (doc === null) return Result.failure<MacvlanConf, CniError>(configDecodeError());
  const c = new MacvlanConf();
  const d = new Decoder();
  decode(d, doc, c);
  if (d.failed && !lenient) return Result.failure<MacvlanConf, CniError>(invalid("failed to load netconf: " + d.error()));
  c.masterConfigured = c.master.length > 0;
  if (lenient) return Result.success<MacvlanConf, CniError>(c);

  // CNI_ARGS MAC replaces "mac"; runtimeConfig.mac replaces both.
  const args = loadEnvArgs(req.args, ["MAC"], [ARG_STRING]);
  if (args.error.length > 0) {
    return Result.failure<MacvlanConf, CniError>(cniError(ERR_INVALID_ENV, args.error,
      "macvlan reads only MAC from CNI_ARGS; add IgnoreUnknown=1 to pass other keys (host-local's IP=) on to the IPAM plugin"));
  }
  let macFrom = "\"mac\"";
  if (c.runtimeMac.length > 0) { c.mac = c.runtimeMac; macFrom = "runtimeConfig.mac"; }
  else if (args.values[0].length > 0) { c.mac = args.values[0]; macFrom = "CNI_ARGS MAC"; }
  if (c.mac.length > 0) {
    const m = normalizeMac(c.mac);
    if (m.length == 0) {
      return Result.failure<MacvlanConf, CniError>(cniError(macFrom == "CNI_ARGS MAC" ? ERR_INVALID_ENV : ERR_INVALID_CONFIG,
        "invalid MAC address " + goQuote(c.mac) + " in " + macFrom, "a MAC address is six hex pairs, e.g. 0a:58:0a:0f:14:02"));
    }
    c.mac = m;
  }

  const mode = parseMode(c.modeName);
  if (mode < 0) {
    return Result.failure<MacvlanConf, CniError>(invalid("unknown macvlan mode: " + goQuote(c.modeName),
      "\"mode\" is one of bridge (the default), private, vepa, passthru"));
  }
  c.mode = <MacvlanMode>mode;
  return Result.success<MacvlanConf, CniError>(c);
}
