// Package network gives a bulwark container a network beyond loopback:
// published ports and an egress allowlist, enforced by nftables inside the
// container's own network namespace.
//
// The runner creates the namespace owned by the host's user namespace and
// hands it to Manager.Setup before the container joins it. Setup then
//
//   - leases a /30 from the pool (10.88.0.0/16 by default): the host end of
//     a veth pair gets the first address, the container's eth0 the second,
//     and the container's default route points at the host end;
//   - installs table inet bulwark in the container's namespace: input and
//     output policy drop, except established/related traffic, loopback,
//     the published ports (input) and the allowed address:port pairs
//     (output, rejected at once otherwise); IPv6 is dropped except on
//     loopback. Root in the container has capabilities only in its own
//     user namespace, which does not own the network namespace, so it can
//     neither read nor change these rules;
//   - installs one host table, ip bulwark-NAME-TOKEN, with the DNAT rules
//     for the published ports and masquerading for egress, and enables
//     IPv4 forwarding.
//
// Every lease is written to disk (under the data directory) before any
// kernel object exists, so Teardown, bulwark stop and the sweep that runs
// before every Setup can remove what a crashed bulwark left behind. All
// of it is idempotent.
package network
