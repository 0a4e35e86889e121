// What CHECK verifies inside the container for every interface plugin, as
// the reference's ip.ValidateExpectedInterfaceIPs and ValidateExpectedRoute
// do: each result address on the interface with its prefix route, and each
// result route in the table; and what comes before, IPAM's CHECK and the prevResult.
import { CniError, Command, IpFamily, Netns, Request, Result, Route } from "./generated/types";
import { addresses, delegate, routes } from "./generated/imports";
import { CniResult, ERR_INTERNAL, cniError, hostFailure } from "./cni";
import { JSONValue } from "./json";
import { IPNet, parseCIDR, parseIP } from "./ip";

function fail(msg: string): CniError { return cniError(ERR_INTERNAL, msg); }
function q(s: string): string { return "\"" + s + "\""; }

/**
 * CHECK's first steps for an interface plugin, as the reference's: the IPAM
 * plugin's CHECK (when the config has IPAM), then the prevResult, which must
 * be there.
 */
export function checkIpamAndPrevResult(ipamType: string, req: Request, prev: JSONValue | null): Result<CniResult, CniError> {
  if (ipamType.length > 0) {
    const r = delegate.run(ipamType, Command.Check, req.config);
    if (!r.ok) return Result.failure<CniResult, CniError>(r.error!);
  }
  if (prev === null) return Result.failure<CniResult, CniError>(fail("Required prevResult missing"));
  return Result.success<CniResult, CniError>(CniResult.fromJSON(prev));
}

function sameNet(a: IPNet, b: IPNet): bool {
  return a.prefix == b.prefix && a.network().equals(b.network());
}

/** Each address on the interface, with its prefix route in the table. */
export function checkInterfaceIPs(ifname: string, result: CniResult): CniError | null {
  for (let i = 0; i < result.ips.length; i++) {
    const want = parseCIDR(result.ips[i].address);
    if (want === null) return fail("invalid address " + q(result.ips[i].address) + " in prevResult");
    const fam = want.isV4() ? IpFamily.V4 : IpFamily.V6;
    const have = addresses.list(Netns.Container, ifname, fam);
    if (!have.ok) return fail("Cannot find container link " + ifname);
    let match = false;
    for (let j = 0; j < have.value.length; j++) {
      const h = parseCIDR(have.value[j].cidr);
      if (h !== null && h.prefix == want.prefix && h.ip.equals(want.ip)) { match = true; break; }
    }
    if (!match) return fail("Failed to match addr " + want.toString() + " on interface " + ifname);
    const table = routes.list(Netns.Container, fam);
    if (!table.ok) return hostFailure("Error trying to find Gateway " + result.ips[i].gateway + " for interface " + ifname, table.error!);
    let prefixRoute = false;
    for (let j = 0; j < table.value.length; j++) {
      const d = parseCIDR(table.value[j].dst);
      if (d !== null && sameNet(d, want)) { prefixRoute = true; break; }
    }
    if (!prefixRoute) return fail("Failed to find Gateway " + result.ips[i].gateway + " for interface " + ifname);
  }
  return null;
}

/** The gateway a route without one was given at ADD: the first IP's of its family. */
function familyGateway(result: CniResult, v4: bool): string {
  for (let i = 0; i < result.ips.length; i++) {
    const g = parseIP(result.ips[i].gateway);
    if (g !== null && g.isV4() == v4) return result.ips[i].gateway;
  }
  return "";
}

export function checkExpectedRoutes(result: CniResult): CniError | null {
  for (let i = 0; i < result.routes.length; i++) {
    const r = result.routes[i];
    const dst = parseCIDR(r.dst);
    if (dst === null) return fail("Invalid static route found " + r.dst);
    const table = routes.list(Netns.Container, dst.isV4() ? IpFamily.V4 : IpFamily.V6);
    if (!table.ok) return hostFailure("Expected Route " + r.dst + " not route table lookup error", table.error!);
    const wantGw = parseIP(r.gw.length > 0 ? r.gw : familyGateway(result, dst.isV4()));
    let found = false;
    for (let j = 0; j < table.value.length && !found; j++) {
      const t: Route = table.value[j];
      const d = parseCIDR(t.dst);
      if (d === null || !sameNet(d, dst)) continue;
      // A default route is matched by destination alone, as the reference does.
      if (dst.prefix == 0) { found = true; break; }
      const g = parseIP(t.gw);
      if (wantGw === null ? g === null : (g !== null && g.equals(wantGw!))) found = true;
    }
    if (!found) return fail("Expected Route " + r.dst + (r.gw.length > 0 ? " via " + r.gw : "") + " not found in routing table");
  }
  return null;
}

