// loopback: bring `lo` up inside the container, as the reference plugin does.
import {
  CniError, CniPlugin, CniResult, IPConfig, IpFamily, Netns, Request, Result,
  ERR_INTERNAL, addresses, cniError, configDecodeError, hostFailure, links, parseConfig, registerPlugin,
} from "../sdk";

// Whatever CNI_IFNAME says, as the reference does: this plugin is for `lo`,
// and a conflist runs it with the ifname meant for the main interface.
const LO = "lo";

class Loopback extends CniPlugin {
  add(req: Request): Result<string, CniError> {
    const conf = parseConfig(req);
    if (conf === null) return Result.failure<string, CniError>(configDecodeError());

    const up = links.setUp(Netns.Container, LO, true);
    if (up !== null) return Result.failure<string, CniError>(hostFailure("failed to set " + LO + " up", up!));

    // Chained after another plugin: pass its result through unchanged.
    const prev = conf.getObject("prevResult");
    if (prev !== null) return Result.success<string, CniError>(prev.stringify());

    const result = new CniResult();
    const idx = result.addInterface(LO, "00:00:00:00:00:00", req.netnsPath);
    const families: IpFamily[] = [IpFamily.V4, IpFamily.V6];
    for (let f = 0; f < families.length; f++) {
      const addrs = addresses.list(Netns.Container, LO, families[f]);
      if (!addrs.ok) return Result.failure<string, CniError>(hostFailure("failed to list addresses of " + LO, addrs.error!));
      for (let i = 0; i < addrs.value.length; i++) {
        const ip = new IPConfig();
        ip.address = addrs.value[i].cidr;
        ip.iface = idx;
        result.ips.push(ip);
      }
    }
    return Result.success<string, CniError>(result.stringify());
  }

  del(req: Request): CniError | null {
    // Nothing to undo when the namespace is already gone.
    if (!req.hasNetns) return null;
    const e = links.setUp(Netns.Container, LO, false);
    if (e !== null && e!.code != "ENETNS" && e!.code != "ENODEV") return hostFailure("failed to set " + LO + " down", e!);
    return null;
  }

  check(req: Request): CniError | null {
    const l = links.get(Netns.Container, LO);
    if (!l.ok) return hostFailure("failed to find " + LO, l.error!);
    if (!l.value.up) return cniError(ERR_INTERNAL, LO + " is down");
    return null;
  }
}


registerPlugin(new Loopback());
