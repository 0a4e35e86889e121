// firewall: the reference firewall plugin's effect on nftables. Chained after
// bridge (or any plugin that gives addresses): forwarded traffic from the
// attachment's addresses is accepted, and established/related traffic to
// them; `ingressPolicy` "same-bridge" isolates the bridge from the other
// isolated bridges (the reference's CNI-ISOLATION chains), "isolated" also
// keeps this container's port from its bridge's other isolated ports. The
// rules are the host's (one table, set elements per address: see
// host/kernel/forward.ts); this plugin only names the attachment's
// addresses, which the host checks against the prevResult.
//
// `backend` ("iptables", "firewalld", "" or anything: the reference treats
// unknown values as its default) always means nftables here;
// `iptablesAdminChainName` and `firewalldZone` are accepted and not used
// (operators put their rules in the one `admin` chain of inet cni_wasm_filter).
// 0.4.0 and later only, like the reference.
import {
  CniError, CniPlugin, ForwardAccept, IngressPolicy, JSONValue, Level, Request, Result,
  ERR_INCOMPATIBLE_VERSION, ERR_INTERNAL, ERR_INVALID_CONFIG, cniError, configDecodeError, firewall, hostFailure, log,
  parseCIDR, parseConfig, registerPlugin,
} from "../sdk";
import { versionAtLeast } from "../sdk/gocompat";

const VERSIONS: Array<string> = ["0.4.0", "1.0.0", "1.1.0"];

class FirewallConf {
  cniVersion: string = "";
  policy: IngressPolicy = IngressPolicy.Open;
  policyName: string = "";
  prevResult: JSONValue | null = null;
}

function fail(msg: string): CniError {
  return cniError(ERR_INTERNAL, msg);
}

function badType(key: string, want: string): CniError {
  return cniError(ERR_INVALID_CONFIG, "failed to load netconf: \"" + key + "\" must be " + want);
}

function loadConf(req: Request): Result<FirewallConf, CniError> {
  const doc = parseConfig(req);
  if (doc === null) return Result.failure<FirewallConf, CniError>(configDecodeError());
  const c = new FirewallConf();
  c.cniVersion = doc.getString("cniVersion");
  if (!versionAtLeast(c.cniVersion, "0.4.0")) {
    const q = new Array<string>();
    for (let i = 0; i < VERSIONS.length - 1; i++) q.push("\"" + VERSIONS[i] + "\"");
    return Result.failure<FirewallConf, CniError>(cniError(ERR_INCOMPATIBLE_VERSION,
      "incompatible CNI versions", "config is \"" + c.cniVersion + "\", plugin supports [" + q.join(" ") + "]"));
  }
  const keys: Array<string> = ["backend", "iptablesAdminChainName", "firewalldZone", "ingressPolicy"];
  for (let i = 0; i < keys.length; i++) {
    const v = doc.get(keys[i]);
    if (v !== null && !v.isNull() && !v.isString()) return Result.failure<FirewallConf, CniError>(badType(keys[i], "a string"));
  }
  const p = doc.getString("ingressPolicy");
  c.policyName = p;
  if (p == "" || p == "open") c.policy = IngressPolicy.Open;
  else if (p == "same-bridge") c.policy = IngressPolicy.SameBridge;
  else if (p == "isolated") c.policy = IngressPolicy.Isolated;
  else return Result.failure<FirewallConf, CniError>(cniError(ERR_INVALID_CONFIG, "unknown ingress policy: \"" + p + "\"",
    "ingressPolicy is one of \"open\" (the default), \"same-bridge\", \"isolated\""));
  const prev = doc.get("prevResult");
  if (prev !== null && !prev.isNull()) {
    if (!prev.isObject()) return Result.failure<FirewallConf, CniError>(cniError(ERR_INVALID_CONFIG, "could not parse prevResult: not an object"));
    c.prevResult = prev;
  }
  return Result.success<FirewallConf, CniError>(c);
}

/** One entry per address of the prevResult, with its bridge and port. */
function entries(c: FirewallConf): Result<Array<ForwardAccept>, CniError> {
  const out = new Array<ForwardAccept>();
  const prev = c.prevResult!;
  const ifs = prev.getArray("interfaces");
  let bridge = "", port = "";
  if (c.policy != IngressPolicy.Open) {
    if (ifs === null || ifs.length == 0 || !ifs[0].isObject()) {
      return Result.failure<Array<ForwardAccept>, CniError>(fail("interface needs to be set for ingress policy \"" + c.policyName +
        "\", make sure to chain \"firewall\" plugin with \"bridge\""));
    }
    bridge = ifs[0].getString("name");
    if (bridge.length == 0) return Result.failure<Array<ForwardAccept>, CniError>(fail("got empty bridge name"));
    // the host-side port: the first interface after the bridge without a sandbox
    for (let i = 1; i < ifs.length; i++) {
      if (ifs[i].isObject() && ifs[i].getString("sandbox").length == 0 && ifs[i].getString("name").length > 0) { port = ifs[i].getString("name"); break; }
    }
    if (c.policy == IngressPolicy.Isolated && port.length == 0) {
      return Result.failure<Array<ForwardAccept>, CniError>(fail("ingress policy \"isolated\" needs the host-side interface in prevResult, make sure to chain \"firewall\" plugin with \"bridge\""));
    }
  }
  const ips = prev.getArray("ips");
  if (ips !== null) {
    for (let i = 0; i < ips.length; i++) {
      const a = ips[i].isObject() ? parseCIDR(ips[i].getString("address")) : null;
      if (a === null) return Result.failure<Array<ForwardAccept>, CniError>(fail("could not parse prevResult: invalid address in ips[" + i.toString() + "]"));
      const e = new ForwardAccept();
      e.address = a.ip.toString();
      e.bridge = bridge;
      e.port = port;
      e.ingressPolicy = c.policy;
      out.push(e);
    }
  }
  return Result.success<Array<ForwardAccept>, CniError>(out);
}

class Firewall extends CniPlugin {
  add(req: Request): Result<string, CniError> {
    const cr = loadConf(req);
    if (!cr.ok) return Result.failure<string, CniError>(cr.error!);
    const c = cr.value;
    if (c.prevResult === null) return Result.failure<string, CniError>(fail("missing prevResult from earlier plugin"));
    const er = entries(c);
    if (!er.ok) return Result.failure<string, CniError>(er.error!);
    if (er.value.length > 0) {
      const e = firewall.forwardAcceptAdd(er.value);
      if (e !== null) return Result.failure<string, CniError>(hostFailure("failed to add forward rules", e));
    }
    return Result.success<string, CniError>(c.prevResult!.stringify());
  }

  del(req: Request): CniError | null {
    const cr = loadConf(req);
    if (!cr.ok) return cr.error!;
    const c = cr.value;
    // No prevResult (allowed at DEL): the host's ledger sweep removes what ADD added.
    if (c.prevResult === null) return null;
    const er = entries(c);
    if (!er.ok) {
      log.write(Level.Debug, "DEL: " + er.error!.msg + "; leaving it to the ledger sweep");
      return null;
    }
    if (er.value.length == 0) return null;
    const e = firewall.forwardAcceptDel(er.value);
    return e !== null ? hostFailure("failed to remove forward rules", e) : null;
  }

  check(req: Request): CniError | null {
    const cr = loadConf(req);
    if (!cr.ok) return cr.error!;
    const c = cr.value;
    if (c.prevResult === null) return fail("missing prevResult from earlier plugin");
    const er = entries(c);
    if (!er.ok) return er.error!;
    if (er.value.length == 0) return null;
    const e = firewall.forwardAcceptCheck(er.value);
    return e !== null ? hostFailure("firewall check failed", e) : null;
  }

  version(): Array<string> { return VERSIONS; }
}

registerPlugin(new Firewall());
