// Names shared by the packager and the loader. The WIT package is the contract.
export const WIT_PACKAGE = 'cni-wasm:plugin';
export const WIT_VERSION = '0.1.0';
/** Interfaces this host implements; a component importing anything else is refused. */
export const KNOWN_INTERFACES = new Set(['links', 'addresses', 'routes', 'sysctl', 'firewall', 'portmap', 'store', 'delegate', 'dns', 'tc', 'log', 'types', 'files', 'neighbours', 'groups', 'uplinks', 'dhcp', 'dhcp-wire']);
