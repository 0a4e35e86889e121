// Everything a plugin imports: the host interfaces (generated from the WIT),
// their types, and the CNI/JSON/IP helpers kept here once for all plugins.
export * from "./generated/types";
export * from "./generated/imports";
export * from "./plugin";
export * from "./cni";
export * from "./json";
export * from "./ip";
export * from "./iface";
export * from "./check";
