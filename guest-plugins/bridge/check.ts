// CHECK: is the attachment prevResult describes still there, as the
// reference bridge checks it? The bridge (a bridge, same MAC, promisc as
// configured), the container interface (a veth, same MAC, in this netns),
// a host veth enslaved to the bridge, the container's addresses with their
// prefix routes, and every result route.
import {
  CniError, Link, Netns, Request, ResultInterface,
  ERR_INTERNAL, checkExpectedRoutes, checkInterfaceIPs, checkIpamAndPrevResult, cniError, links,
} from "../sdk";
import { BridgeConf } from "./config";

function fail(msg: string): CniError {
  return cniError(ERR_INTERNAL, msg);
}

function q(s: string): string {
  return "\"" + s + "\"";
}

class Found {
  link: Link | null = null;
  err: CniError | null = null;
}

/** validateInterface: named, present in ns, and sandboxed exactly when expected. */
function lookup(intf: ResultInterface, ns: Netns, expectInSandbox: bool): Found {
  const f = new Found();
  if (intf.name.length == 0) { f.err = fail("Interface name missing "); return f; }
  const l = links.get(ns, intf.name);
  if (!l.ok) { f.err = fail("Interface name " + intf.name + " not found"); return f; }
  if (expectInSandbox && intf.sandbox.length == 0) { f.err = fail("Interface " + intf.name + " is expected to be in a sandbox"); return f; }
  if (!expectInSandbox && intf.sandbox.length > 0) { f.err = fail("Interface " + intf.name + " should not be in sandbox"); return f; }
  f.link = l.value;
  return f;
}

export function checkAttachment(req: Request, c: BridgeConf): CniError | null {
  if (!req.hasNetns) return cniError(3, "failed to open netns " + q(req.netnsPath) + ": no such network namespace");

  const pr = checkIpamAndPrevResult(c.ipamType, req, c.prevResult);
  if (!pr.ok) return pr.error!;
  const result = pr.value;

  let brMap = new ResultInterface(), contMap = new ResultInterface();
  for (let i = 0; i < result.interfaces.length; i++) {
    const it = result.interfaces[i];
    if (it.name == c.bridge) brMap = it;
    else if (it.name == req.ifname && it.sandbox == req.netnsPath) contMap = it;
  }

  // The bridge.
  const bf = lookup(brMap, Netns.Host, false);
  if (bf.err !== null) return bf.err;
  const br = bf.link!;
  if (br.kind != "bridge") return fail("Interface " + brMap.name + " does not have link type of bridge");
  if (brMap.mac.length > 0 && brMap.mac != br.mac) return fail("Bridge interface " + brMap.name + " Mac doesn't match: " + brMap.mac);
  if (br.promisc != c.promiscMode) {
    return fail("Bridge interface " + brMap.name + " configured Promisc Mode " + (c.promiscMode ? "true" : "false") +
      " doesn't match current state: " + (br.promisc ? "true" : "false") + " ");
  }

  if (req.netnsPath != contMap.sandbox) {
    return fail("Sandbox in prevResult " + contMap.sandbox + " doesn't match configured netns: " + req.netnsPath);
  }

  // The container end.
  const cf = lookup(contMap, Netns.Container, true);
  if (cf.err !== null) return cf.err;
  const cont = cf.link!;
  if (cont.kind != "veth") return fail("Error: Container interface " + cont.name + " not of type veth");
  if (contMap.mac.length > 0 && contMap.mac != cont.mac) {
    return fail("Interface " + contMap.name + " Mac " + contMap.mac + " doesn't match container Mac: " + cont.mac);
  }

  // The host end: a veth in the result, enslaved to the bridge.
  let vethFound = false;
  for (let i = 0; i < result.interfaces.length && !vethFound; i++) {
    const it = result.interfaces[i];
    if (it.name == brMap.name || it.name == contMap.name) continue;
    const vf = lookup(it, Netns.Host, false);
    if (vf.err !== null) return vf.err;
    const v = vf.link!;
    if (v.kind != "veth" || v.master != br.name) continue; // not what we created: skip it
    if (it.mac.length > 0 && it.mac != v.mac) return fail("Interface " + it.name + " Mac doesn't match: " + it.mac + " not found");
    vethFound = true;
  }
  if (!vethFound) return fail("CNI veth created for bridge " + c.bridge + " was not found");

  const ae = checkInterfaceIPs(req.ifname, result);
  if (ae !== null) return ae;
  return checkExpectedRoutes(result);
}
